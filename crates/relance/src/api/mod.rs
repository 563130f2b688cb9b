//! HTTP surfaces: thin handlers over the store, one file per resource.

pub mod actions;
pub mod auth;
pub mod contacts;
pub mod deliveries;
pub mod error;
pub mod explain;
pub mod extract;
pub mod openapi;
pub mod rules;
pub mod score;
pub mod simulate;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Settings;
use crate::store::Clock;
use crate::store::SharedStore;
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub rules: Arc<crate::live_rules::LiveRules>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub ui: Arc<crate::ui::UiState>,
    /// Recent authentication refusals on this instance (for the dashboard).
    pub refusals: Arc<auth::Refusals>,
}

/// Every documented route. A route is added here with `routes!`, which takes its path
/// and method from the handler's `#[utoipa::path]`: the OpenAPI document and the router
/// cannot disagree.
pub fn documented(state: &AppState) -> OpenApiRouter<AppState> {
    let webhooks = OpenApiRouter::new()
        .routes(routes!(webhooks::email))
        .routes(routes!(webhooks::behavior))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::webhook_auth));
    let admin = OpenApiRouter::new()
        .routes(routes!(contacts::list))
        .routes(routes!(contacts::import))
        .routes(routes!(contacts::get, contacts::put, contacts::erase))
        .routes(routes!(contacts::export))
        .routes(routes!(contacts::history))
        .routes(routes!(explain::get))
        .routes(routes!(score::post))
        .routes(routes!(simulate::post))
        .routes(routes!(contacts::events))
        .routes(routes!(deliveries::rejected))
        .routes(routes!(actions::list))
        .routes(routes!(actions::stats))
        .routes(routes!(actions::claim))
        .routes(routes!(actions::get))
        .routes(routes!(actions::cancel))
        .routes(routes!(actions::retry))
        .routes(routes!(actions::complete))
        .routes(routes!(actions::fail))
        .routes(routes!(actions::outbox))
        .routes(routes!(rules::get, rules::put))
        .routes(routes!(rules::export))
        .routes(routes!(rules::validate))
        .routes(routes!(rules::versions))
        .routes(routes!(rules::activate))
        .routes(routes!(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::admin_auth));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(webhooks)
        .merge(admin)
        .routes(routes!(webhooks::health))
}

pub fn router(state: AppState) -> anyhow::Result<Router> {
    let (api, doc) = documented(&state).split_for_parts();
    let docs = Arc::new(openapi::Documents::new(doc, &state.settings)?);
    Ok(api
        .merge(openapi::routes(docs))
        .merge(crate::ui::routes(&state))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this method is not allowed on this route; see /openapi.json".into())
        })
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(middleware::from_fn(announced_body_limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state))
}

/// A body announced over the limit is refused before a byte of it is read (bodies without
/// a length are cut while being read, in `webhooks::read_body`).
async fn announced_body_limit(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > webhooks::MAX_BODY_BYTES as u64) {
        return ApiError::PayloadTooLarge(webhooks::MAX_BODY_BYTES).into_response();
    }
    next.run(req).await
}

/// Bounds every request, body reading included (slow clients cannot hold a slot
/// forever). A webhook past its deadline gets 429 so that Brevo retries it.
async fn deadline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let webhook = req.uri().path().starts_with("/webhook/");
    match tokio::time::timeout(app.settings.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) if webhook => ApiError::RetryLater { retry_after: 5, detail: "request timed out" }.into_response(),
        Err(_) => ApiError::Unavailable("request timed out").into_response(),
    }
}

/// Prometheus metrics.
///
/// OpenMetrics text: events by source and trigger, actions by type and state, ingest
/// latency, delivery sizes, job lateness, jobs by state, queue depth.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "Metrics",
    responses(
        (status = 200, description = "OpenMetrics text", body = String,
         content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        openapi::AdminRefusals,
    ),
    security(("admin_token" = []))
)]
async fn metrics(State(app): State<AppState>) -> Result<Response, ApiError> {
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
