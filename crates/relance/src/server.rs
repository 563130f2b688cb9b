//! Starting and stopping `relance serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use relance_core::{RuleFormat, RuleSet};
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::dispatch::Dispatcher;
use crate::dispatch::scheduler::Scheduler;
use crate::live_rules::{LiveRules, hash_rules};
use crate::store::postgres::{PgSettings, PgStore};
use crate::store::sqlite::{SqliteSettings, SqliteStore, path_from_url};
use crate::store::{Clock, NewRuleSet, SharedStore, Store};
use crate::web::{AppState, AppStateFields};

/// Loads the rules file, or the seed's six defaults.
pub fn load_rules(path: Option<&Path>) -> anyhow::Result<RuleSet> {
    let Some(path) = path else { return Ok(RuleSet::defaults()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading rules {}", path.display()))?;
    RuleSet::parse(&text, RuleFormat::detect(&path.to_string_lossy(), &text)).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        anyhow::anyhow!("{} has {} problem(s):\n{}", path.display(), errors.len(), list.join("\n"))
    })
}

/// The database URL forms, for error messages.
const ACCEPTED_URLS: &str = "sqlite://FILE (sqlite://relance.db, sqlite:///var/lib/relance/relance.db) or \
     postgres://USER:PASSWORD@HOST[:PORT]/DATABASE";

/// Refuses a database URL of an unknown kind, naming only its scheme (the rest may hold
/// a password).
pub fn check_database_url(url: &str) -> anyhow::Result<()> {
    let known = ["sqlite://", "sqlite:", "postgres://", "postgresql://"];
    if known.iter().any(|k| url.starts_with(k)) {
        return Ok(());
    }
    let scheme = url.split_once("://").map(|(s, _)| format!("{s}://")).unwrap_or_else(|| "no scheme".into());
    anyhow::bail!("database URL ({scheme}) not understood: use {ACCEPTED_URLS} (--database / RELANCE_DATABASE_URL)")
}

/// Opens the database the URL names: `sqlite://FILE` (embedded) or `postgres://…`.
pub async fn open_store(settings: &Settings, rules: Arc<LiveRules>, clock: Clock) -> anyhow::Result<SharedStore> {
    let url = settings.database_url.as_str();
    check_database_url(url)?;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = PgSettings {
            default_segment: settings.default_segment.clone(),
            pool_size: settings.pg_pool_size,
            statement_timeout: settings.pg_statement_timeout,
            queue_capacity: settings.ingest_queue_capacity,
            pressure: settings.dispatch.pressure.clone(),
            brevo_sync: sync_fields(settings),
            ..PgSettings::default()
        };
        return Ok(Arc::new(PgStore::open(url, rules, clock, pg).await?));
    }
    let path = path_from_url(url)?;
    Ok(Arc::new(SqliteStore::open(
        &path,
        rules,
        clock,
        SqliteSettings {
            default_segment: settings.default_segment.clone(),
            queue_capacity: settings.ingest_queue_capacity,
            max_batch: settings.ingest_max_batch,
            contact_cache: settings.sqlite_contact_cache,
            pressure: settings.dispatch.pressure.clone(),
            brevo_sync: sync_fields(settings),
            ..SqliteSettings::default()
        },
    )?))
}

/// The fields the planner watches for the Brevo contact sync (none: no sync).
fn sync_fields(settings: &Settings) -> Arc<relance_core::sync_fields::SyncFields> {
    let sync = settings.dispatch.brevo.as_ref().and_then(|b| b.sync.as_ref());
    sync.map(|s| s.fields.clone()).unwrap_or_default()
}

/// Settles which rule set is in force at start, and says so.
///
/// - No rules file: the stored active version; with nothing stored, the six defaults
///   become version 1.
/// - A rules file: imported as a new version only when **the file** changed since it was
///   last imported (its hash is kept per path, apart from the active version's), so that
///   a restart never undoes a version activated since from the dashboard or the API. When
///   an import does replace such a version, it says so loudly, and the rules page offers
///   to roll back.
pub async fn sync_rules(
    store: &dyn Store,
    live: &LiveRules,
    file_rules: RuleSet,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let hash = hash_rules(&file_rules);
    let active = store.active_rule_set().await.map_err(|e| anyhow::anyhow!("reading the rule sets: {e}"))?;
    let save = |source: String, replaced_version: Option<i64>| {
        let new = NewRuleSet { body: file_rules.to_seed_json(), hash: hash.clone(), source, replaced_version };
        let audit =
            crate::store::audit::Audit::system("start: rules file", crate::store::audit::AuditKind::Rules, "put")
                .summary(format!("rule set imported at start ({})", new.source));
        async move { store.save_rule_set(new, audit).await.map_err(|e| anyhow::anyhow!("storing the rule set: {e}")) }
    };
    let row = match (file, active) {
        (None, Some(active)) => active,
        (None, None) => save("defaults".into(), None).await?,
        (Some(path), active) => {
            // The same file however it was named on the command line.
            let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
            let last = store.rules_file_hash(key.clone()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            // Never imported from this path: import unless it is what is in force already.
            let changed = match &last {
                Some(h) => *h != hash,
                None => active.as_ref().is_none_or(|a| a.hash != hash),
            };
            let row = match active {
                Some(active) if !changed || active.hash == hash => active,
                Some(active) => {
                    let replaced = active.chosen_by_a_person().then_some(active.version);
                    let row = save(format!("file:{key}"), replaced).await?;
                    if replaced.is_some() {
                        tracing::warn!(
                            file = %key,
                            new_version = row.version,
                            replaced_version = active.version,
                            replaced_activated_via = %active.activated_via,
                            "the rules file changed since its last import: it replaces version {} that was \
                             activated from the {}; roll back on the dashboard's rules page if that was not meant",
                            active.version,
                            match active.activated_via.as_str() {
                                "api" => "API",
                                "cli" => "command line",
                                other => other,
                            }
                        );
                    }
                    row
                }
                None => save(format!("file:{key}"), None).await?,
            };
            if last.as_deref() != Some(hash.as_str()) {
                store.record_rules_file(key, hash.clone(), row.version).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            if !changed && row.hash != hash {
                tracing::info!(
                    file = %path.display(),
                    "the rules file is unchanged since its last import; version {} (activated via {}) stays in force",
                    row.version,
                    row.activated_via
                );
            }
            row
        }
    };
    let rules = if row.hash == hash {
        file_rules
    } else {
        RuleSet::parse(&row.body, RuleFormat::Json)
            .map_err(|errors| anyhow::anyhow!("stored rule set version {} is invalid: {}", row.version, errors[0]))?
    };
    live.swap(rules, row.version, row.activated_seq);
    tracing::info!(
        version = row.version,
        source = %row.source,
        activated_via = %row.activated_via,
        saved = %row.created_at.to_rfc3339(),
        "rules in force"
    );
    Ok(())
}

/// A server bound to its port, not yet serving.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    /// Held while serving: a second `serve` on the same SQLite file is refused.
    _lock: Option<crate::store::sqlite::lock::ServeLock>,
}

impl Server {
    pub async fn build(settings: Settings, clock: Clock) -> anyhow::Result<Server> {
        settings.check()?;
        check_database_url(&settings.database_url)?;
        let file_rules = load_rules(settings.rules.as_deref())?;
        // The port first: a port in use is the commonest mistake, and nothing else should
        // have started (or logged) by then.
        let listener = TcpListener::bind(settings.bind).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                "cannot listen on {}: the address is already in use (another relance serve?); \
                 choose another with --bind or RELANCE_BIND (e.g. --bind 127.0.0.1:8081)",
                settings.bind
            ),
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "cannot listen on {}: permission denied (ports below 1024 need privileges); \
                 choose another with --bind or RELANCE_BIND",
                settings.bind
            ),
            _ => anyhow::anyhow!("cannot listen on {}: {e}; change --bind or RELANCE_BIND", settings.bind),
        })?;
        let lock = if settings.database_url.starts_with("sqlite:") {
            let path = path_from_url(&settings.database_url)?;
            Some(crate::store::sqlite::lock::ServeLock::acquire(&path, listener.local_addr()?)?)
        } else {
            None
        };
        let live = LiveRules::new(file_rules.clone());
        let store = open_store(&settings, live.clone(), clock.clone()).await?;
        if store.backend() == "sqlite" {
            crate::sched::yield_to_the_writer();
        }
        sync_rules(&*store, &live, file_rules, settings.rules.as_deref()).await?;
        tracing::info!(
            addr = %listener.local_addr()?,
            database = %crate::config::shown_url(&settings.database_url),
            rules = live.current().engine.rules().rules().len(),
            rule_version = live.version(),
            webhook_auth = settings.webhook_token.is_some(),
            admin_auth = settings.admin_token.is_some(),
            "relance listening"
        );
        let metrics = Arc::new(crate::metrics::Metrics::default());
        Ok(Server {
            listener,
            state: AppStateFields {
                store,
                metrics,
                rules: live,
                sign_in_throttle: Arc::default(),
                closing: Arc::new(tokio::sync::watch::channel(false).0),
                refusals: Arc::default(),
                started: std::time::Instant::now(),
                settings: Arc::new(settings),
                clock,
            }
            .into(),
            _lock: lock,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests
    /// finish, drains the ingest queue and commits.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let app = app(self.state.clone()).context("describing the API")?;
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
                rules: self.state.rules.clone(),
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
        let contact_sync = if self.state.settings.dispatch.enabled {
            let sync = crate::dispatch::brevo_sync::ContactSync::new(
                store.clone(),
                Arc::new(self.state.settings.dispatch.clone()),
                self.state.clock.clone(),
            )?;
            sync.map(|s| {
                let mut rx = stop_rx.clone();
                tokio::spawn(s.with_metrics(self.state.metrics.clone()).run(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                }))
            })
        } else {
            None
        };
        // Rule sets saved on any instance reach this one within seconds.
        let reloader = {
            let (store, live, mut rx) = (store.clone(), self.state.rules.clone(), stop_rx.clone());
            let every = self.state.settings.dispatch.poll_interval.min(Duration::from_secs(2));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = rx.wait_for(|stop| *stop) => return,
                    }
                    match store.active_rule_set().await {
                        // Newer activations only: this read may predate a swap made since
                        // by this instance's own API.
                        Ok(Some(active)) if active.activated_seq > live.activation() => {
                            match RuleSet::parse(&active.body, RuleFormat::Json) {
                                Ok(rules) => {
                                    if live.swap(rules, active.version, active.activated_seq) {
                                        tracing::info!(version = active.version, "rule set reloaded");
                                    }
                                }
                                Err(errors) => {
                                    tracing::warn!(version = active.version, error = %errors[0], "stored rule set is invalid; keeping the current one")
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "cannot check the active rule set"),
                    }
                }
            })
        };
        let backups = self.state.settings.backup.clone().map(|schedule| {
            let (url, mut rx) = (self.state.settings.database_url.clone(), stop_rx.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(schedule.every) => {}
                        _ = rx.wait_for(|stop| *stop) => return,
                    }
                    let (url, schedule) = (url.clone(), schedule.clone());
                    let taken = tokio::task::spawn_blocking(move || {
                        let database = crate::store::sqlite::path_from_url(&url)?;
                        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                        crate::ops::backup::scheduled(&database, &schedule.dir, schedule.keep, &stamp)
                    })
                    .await;
                    match taken {
                        Ok(Ok(s)) => {
                            tracing::info!(file = %s.path.display(), bytes = s.bytes, events = s.events, "backup taken")
                        }
                        Ok(Err(e)) => tracing::error!(error = %format!("{e:#}"), "scheduled backup failed"),
                        Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
                    }
                }
            })
        });
        let retention = {
            let (state, mut rx) = (self.state.clone(), stop_rx.clone());
            tokio::spawn(async move {
                let policy = state.settings.retention.clone();
                // The first pass soon after start, so that a server restarted more often
                // than `every_minutes` still prunes.
                let mut wait = policy.every.min(Duration::from_secs(10));
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = rx.wait_for(|stop| *stop) => return,
                    }
                    wait = policy.every;
                    let stopping = rx.clone();
                    let now = (state.clock)();
                    let metrics = state.metrics.clone();
                    let counted = move |kind: crate::store::retention::PruneKind, n: u64| {
                        metrics.pruned.get_or_create(&vec![("kind", kind.as_str().to_owned())]).inc_by(n);
                    };
                    let pass =
                        crate::ops::retention::prune_pass(&*state.store, &policy, now, || *stopping.borrow(), counted);
                    match pass.await {
                        Ok(report) => {
                            if report.total() > 0 {
                                tracing::info!(pruned = ?report.pruned, batches = report.batches, "retention pass");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "retention pass failed; retried at the next one"),
                    }
                }
            })
        };
        let mut rx = stop_rx;
        let state = self.state.clone();
        tokio::spawn(async move {
            shutdown.await;
            // Live feeds end first, so that the drain below need not wait for them.
            state.close();
            let _ = stop_tx.send(true);
        });
        let limits = crate::http::Limits {
            header_read_timeout: self.state.settings.header_read_timeout,
            max_connections: self.state.settings.max_connections,
            drain: self.state.settings.request_timeout + Duration::from_secs(1),
            trusted_proxies: self.state.settings.trusted_proxies.clone(),
        };
        crate::http::serve(self.listener, app, limits, async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
        .await;
        let _ = reloader.await;
        for task in [dispatcher, scheduler, contact_sync, backups, Some(retention)].into_iter().flatten() {
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

/// Each request's span: method, path (never the query: it may carry a token) and the
/// client, as a trusted proxy forwards it. The one span a request opens: at the default
/// `info` level spans are recorded, and each one costs the Tokio thread thousands of
/// instructions per request (callgrind); the webhook handlers no longer add their own.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let client: &dyn std::fmt::Display = match req.extensions().get::<crate::web::client::Client>() {
        Some(client) => &client.ip,
        None => &"-",
    };
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), client = %client)
}

/// The whole HTTP application: the router inside the layers every request runs through
/// (its span, then its limits). They wrap the router once instead of being added with
/// `Router::layer`, which wraps every route and so clones and boxes each layer's stack
/// per request (see `web::limits`).
pub type App = tower_http::trace::Trace<
    crate::web::limits::RequestLimits<axum::Router>,
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&axum::http::Request<hyper::body::Incoming>) -> tracing::Span,
>;

pub fn app(state: AppState) -> anyhow::Result<App> {
    let deadline = state.settings.request_timeout;
    let router = router(state)?;
    Ok(tower::ServiceBuilder::new()
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span as fn(&_) -> _))
        .layer(crate::web::limits::RequestLimitsLayer { deadline })
        .service(router))
}

/// The API, its descriptions and the dashboard over one state.
pub fn router(state: AppState) -> anyhow::Result<axum::Router> {
    let (api, doc) = crate::api::documented(&state).split_for_parts();
    let docs = Arc::new(crate::api::openapi::Documents::new(doc, &state.settings)?);
    Ok(api
        .merge(crate::api::openapi::routes(docs))
        .merge(crate::ui::routes(&state))
        .fallback(|| async { crate::web::error::ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            crate::web::error::ApiError::MethodNotAllowed(
                "this method is not allowed on this route; see /openapi.json".into(),
            )
        })
        .with_state(state))
}
