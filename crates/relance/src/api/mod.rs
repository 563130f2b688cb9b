//! HTTP surfaces: thin handlers over the store, one file per resource.

pub mod actions;
pub mod auth;
pub mod contacts;
pub mod error;
pub mod explain;
pub mod rules;
pub mod score;
pub mod simulate;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Settings;
use crate::store::AnyStore;
use crate::store::Clock;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<AnyStore>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub rules: Arc<crate::live_rules::LiveRules>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
}

pub fn router(state: AppState) -> Router {
    let webhooks = Router::new()
        .route("/webhook/email", post(webhooks::email))
        .route("/webhook/behavior", post(webhooks::behavior))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::webhook_auth));
    let admin = Router::new()
        .route("/api/contacts", get(contacts::list))
        .route("/api/contacts/import", post(contacts::import))
        .route("/api/contacts/{key}", get(contacts::get).put(contacts::put).delete(contacts::erase))
        .route("/api/contacts/{key}/export", get(contacts::export))
        .route("/api/contacts/{key}/history", get(contacts::history))
        .route("/api/contacts/{key}/explain", get(explain::get))
        .route("/api/score", post(score::post))
        .route("/api/simulate", post(simulate::post))
        .route("/api/events", get(contacts::events))
        .route("/api/actions", get(actions::list))
        .route("/api/actions/stats", get(actions::stats))
        .route("/api/actions/claim", post(actions::claim))
        .route("/api/actions/{id}", get(actions::get))
        .route("/api/actions/{id}/cancel", post(actions::cancel))
        .route("/api/actions/{id}/retry", post(actions::retry))
        .route("/api/actions/{id}/complete", post(actions::complete))
        .route("/api/actions/{id}/fail", post(actions::fail))
        .route("/api/outbox", get(actions::outbox))
        .route("/api/rules", get(rules::get).put(rules::put))
        .route("/api/rules/export", get(rules::export))
        .route("/api/rules/versions", get(rules::versions))
        .route("/api/rules/versions/{version}/activate", post(rules::activate))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::admin_auth));
    Router::new()
        .merge(webhooks)
        .merge(admin)
        .route("/webhook/health", get(webhooks::health))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Bounds every request, body reading included (slow clients cannot hold a slot
/// forever). A webhook past its deadline gets 429 so that Brevo retries it.
async fn deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let webhook = req.uri().path().starts_with("/webhook/");
    match tokio::time::timeout(app.settings.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) if webhook => ApiError::RetryLater { retry_after: 5, detail: "request timed out" }.into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out").into_response(),
    }
}

/// Prometheus (OpenMetrics text): counters kept in memory, job counts read on scrape.
async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
    use crate::store::Store;
    let m = &app.metrics;
    m.jobs.clear();
    for c in app.store.job_stats().await? {
        let executor = c
            .action_type
            .parse::<relance_core::ActionType>()
            .map(|a| app.settings.dispatch.route(a).as_str())
            .unwrap_or("unknown");
        m.jobs
            .get_or_create(&vec![("state", c.state), ("action_type", c.action_type), ("executor", executor.to_owned())])
            .set(c.count);
    }
    m.queue_depth.set(app.store.queue_depth() as i64);
    Ok(([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
        .into_response())
}
