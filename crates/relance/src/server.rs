//! Starting and stopping `relance serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use relance_core::{Engine, RuleFormat, RuleSet};
use tokio::net::TcpListener;

use crate::api::{AppState, router};
use crate::config::Settings;
use crate::dispatch::Dispatcher;
use crate::dispatch::scheduler::Scheduler;
use crate::store::postgres::{PgSettings, PgStore};
use crate::store::sqlite::{SqliteSettings, SqliteStore, path_from_url};
use crate::store::{AnyStore, Clock, Store};

/// Loads the rules file, or the seed's six defaults.
pub fn load_rules(path: Option<&Path>) -> anyhow::Result<RuleSet> {
    let Some(path) = path else { return Ok(RuleSet::defaults()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading rules {}", path.display()))?;
    RuleSet::parse(&text, RuleFormat::detect(&path.to_string_lossy(), &text)).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!("{} has {} problem(s):\n{}", path.display(), errors.len(), list.join("\n"))
    })
}

/// Opens the database the URL names: `sqlite://FILE` (embedded) or `postgres://…`.
pub async fn open_store(settings: &Settings, engine: Arc<Engine>, clock: Clock) -> anyhow::Result<AnyStore> {
    let url = settings.database_url.as_str();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = PgSettings {
            default_segment: settings.default_segment.clone(),
            pool_size: settings.pg_pool_size,
            statement_timeout: settings.pg_statement_timeout,
            queue_capacity: settings.ingest_queue_capacity,
            ..PgSettings::default()
        };
        return Ok(AnyStore::Postgres(PgStore::open(url, engine, clock, pg).await?));
    }
    let path = path_from_url(url)?;
    Ok(AnyStore::Sqlite(SqliteStore::open(
        &path,
        engine,
        clock,
        SqliteSettings {
            default_segment: settings.default_segment.clone(),
            queue_capacity: settings.ingest_queue_capacity,
            max_batch: settings.ingest_max_batch,
            ..SqliteSettings::default()
        },
    )?))
}

/// A server bound to its port, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    engine: Arc<Engine>,
}

impl Server {
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Server> {
        settings.check()?;
        let rules = load_rules(settings.rules.as_deref())?;
        let engine = Arc::new(Engine::new(rules));
        let store = Arc::new(open_store(&settings, engine.clone(), clock.clone()).await?);
        let listener = TcpListener::bind(settings.bind).await.with_context(|| format!("binding {}", settings.bind))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            database = %settings.database_url,
            rules = engine.rules().rules().len(),
            webhook_auth = settings.webhook_token.is_some(),
            admin_auth = settings.admin_token.is_some(),
            "relance listening"
        );
        let metrics = Arc::new(crate::metrics::Metrics::default());
        Ok(Server { listener, state: AppState { store, metrics, settings: Arc::new(settings), clock }, engine })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish, drains the ingest queue and commits.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        // One shutdown signal, two listeners: the HTTP server and the dispatcher.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let dispatcher = if self.state.settings.dispatch.enabled {
            let d = Dispatcher::new(
                store.clone(),
                Arc::new(self.state.settings.dispatch.clone()),
                self.state.clock.clone(),
            )?
            .with_metrics(self.state.metrics.clone());
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(d.run(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })))
        } else {
            None
        };
        let scheduler = if self.state.settings.dispatch.enabled {
            let s = Scheduler {
                store: store.clone(),
                engine: self.engine.clone(),
                clock: self.state.clock.clone(),
                poll_interval: self.state.settings.dispatch.poll_interval.max(Duration::from_millis(10)),
            };
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(s.run(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })))
        } else {
            None
        };
        let mut rx = stop_rx;
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|stop| *stop).await;
            })
            .await
            .context("serving")?;
        for task in [dispatcher, scheduler].into_iter().flatten() {
            let _ = task.await;
        }
        store.shutdown().await;
        tracing::info!("relance stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}
