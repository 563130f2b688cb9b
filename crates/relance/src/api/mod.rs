//! HTTP surfaces: thin handlers over the store, one file per resource.

pub mod actions;
pub mod brevo_sync;
pub mod contacts;
pub mod deliveries;
pub mod explain;
pub mod extract;
pub mod openapi;
pub mod rules;
pub mod score;
pub mod simulate;
pub mod webhooks;

use axum::extract::State;
use axum::middleware::{self};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::web::error::ApiError;
use crate::web::{AppState, auth};

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
        .routes(routes!(contacts::export_csv))
        .routes(routes!(contacts::history))
        .routes(routes!(explain::get))
        .routes(routes!(score::post))
        .routes(routes!(simulate::post))
        .routes(routes!(contacts::events))
        .routes(routes!(deliveries::rejected))
        .routes(routes!(brevo_sync::status))
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
        .routes(routes!(rules::runs))
        .routes(routes!(rules::pause))
        .routes(routes!(rules::resume))
        .routes(routes!(rules::versions))
        .routes(routes!(rules::activate))
        .routes(routes!(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::admin_auth));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(webhooks)
        .merge(admin)
        .routes(routes!(webhooks::health))
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
    m.runs.clear();
    for c in app.store.run_counts(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH).await? {
        let states = [("active", c.active), ("goal_reached", c.goal_reached), ("completed", c.completed)];
        for (state, n) in states.into_iter().chain([("cancelled", c.cancelled)]) {
            m.runs
                .get_or_create(&vec![("rule_id", crate::metrics::label_value(&c.rule_id)), ("state", state.into())])
                .set(n);
        }
    }
    m.pressure_held.clear();
    let week = (app.clock)() - chrono::Duration::days(7);
    for c in app.store.hourly_counts(week).await? {
        use crate::store::dashboard::CounterKind;
        if matches!(c.kind, CounterKind::Deferred | CounterKind::Skipped) {
            // Reasons come from the configuration and the rules (caps, budgets), not from
            // senders: a bounded label set.
            m.pressure_held
                .get_or_create(&vec![("outcome", c.kind.as_str().into()), ("reason", c.name)])
                .inc_by(c.count);
        }
    }
    m.queue_depth.set(app.store.queue_depth() as i64);
    Ok(([(axum::http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
        .into_response())
}
