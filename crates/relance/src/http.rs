//! The accept loop. `axum::serve` reads request headers with no deadline and accepts
//! connections without bound, so a slowloris client (headers trickled a byte at a time)
//! could hold connections forever. Here headers must arrive within
//! `header_read_timeout`, bodies within the request deadline (`web::limits`),
//! and beyond `max_connections` new connections are closed at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use crate::server::App;

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// How long open requests may take to finish after shutdown begins.
    pub drain: Duration,
    /// Whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

/// Serves `app` until `shutdown` resolves, then lets open requests finish.
pub async fn serve(listener: TcpListener, app: App, limits: Limits, shutdown: impl Future<Output = ()>) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(limit = limits.max_connections, "too many connections; closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer (axum's `ConnectInfo`) and the client behind a trusted proxy, for logs,
        // refusal counts and `Secure` cookies.
        let trusted = limits.trusted_proxies.clone();
        let service =
            TowerToHyperService::new(app.clone().map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                let client = crate::web::client::Client::resolve(peer.ip(), req.headers(), &trusted);
                req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                req.extensions_mut().insert(client);
                req
            }));
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish in time; closing them");
    }
}
