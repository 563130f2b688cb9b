//! HTTP surfaces: thin handlers over the store, one file per resource.

pub mod access;
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
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::{Need, Role};
use crate::web::AppState;
use crate::web::auth::{Guard, RouteRole};
use crate::web::error::ApiError;

const fn route(method: &'static str, path: &'static str, need: Need) -> RouteRole {
    RouteRole { method, path, need }
}
const PUBLIC: Need = Need::Public;
const INGEST: Need = Need::Ingest;
const VIEWER: Need = Need::Role(Role::Viewer);
const EDITOR: Need = Need::Role(Role::Editor);
const ADMIN: Need = Need::Role(Role::Admin);

/// Who may call each documented route: the one table the authorising layer reads, the
/// OpenAPI descriptions and the connector state, and a test walks (every route of the
/// router has its row, every row its route). Viewers read everything but personal-data
/// exports; editors change rules, actions and contacts; admins manage people, keys,
/// GDPR exports and erasure; ingest keys post events only.
pub const ROUTE_ROLES: &[RouteRole] = &[
    route("GET", "/webhook/health", PUBLIC),
    route("POST", "/webhook/email", INGEST),
    route("POST", "/webhook/behavior", INGEST),
    route("GET", "/api/contacts", VIEWER),
    route("GET", "/api/contacts/{key}", VIEWER),
    route("GET", "/api/contacts/{key}/history", VIEWER),
    route("GET", "/api/contacts/{key}/explain", VIEWER),
    route("GET", "/api/events", VIEWER),
    route("POST", "/api/score", VIEWER),
    route("GET", "/api/deliveries/rejected", VIEWER),
    route("GET", "/api/brevo/sync", VIEWER),
    route("GET", "/api/actions", VIEWER),
    route("GET", "/api/actions/stats", VIEWER),
    route("GET", "/api/actions/{id}", VIEWER),
    route("GET", "/api/outbox", VIEWER),
    route("GET", "/api/rules", VIEWER),
    route("GET", "/api/rules/export", VIEWER),
    route("GET", "/api/rules/versions", VIEWER),
    route("GET", "/api/rules/{rule_id}/runs", VIEWER),
    route("GET", "/metrics", VIEWER),
    route("PUT", "/api/contacts/{key}", EDITOR),
    route("POST", "/api/contacts/import", EDITOR),
    route("PUT", "/api/rules", EDITOR),
    route("POST", "/api/rules/validate", EDITOR),
    route("POST", "/api/simulate", EDITOR),
    route("POST", "/api/rules/versions/{version}/activate", EDITOR),
    route("POST", "/api/rules/{rule_id}/pause", EDITOR),
    route("POST", "/api/rules/{rule_id}/resume", EDITOR),
    route("POST", "/api/actions/claim", EDITOR),
    route("POST", "/api/actions/{id}/cancel", EDITOR),
    route("POST", "/api/actions/{id}/retry", EDITOR),
    route("POST", "/api/actions/{id}/complete", EDITOR),
    route("POST", "/api/actions/{id}/fail", EDITOR),
    route("GET", "/api/contacts/{key}/export", ADMIN),
    route("GET", "/api/contacts.csv", ADMIN),
    route("DELETE", "/api/contacts/{key}", ADMIN),
    route("GET", "/api/users", ADMIN),
    route("POST", "/api/users", ADMIN),
    route("POST", "/api/users/{name}/disable", ADMIN),
    route("POST", "/api/users/{name}/enable", ADMIN),
    route("GET", "/api/keys", ADMIN),
    route("POST", "/api/keys", ADMIN),
    route("DELETE", "/api/keys/{name}", ADMIN),
    route("GET", "/api/audit", ADMIN),
];

/// Every documented route. A route is added here with `routes!`, which takes its path
/// and method from the handler's `#[utoipa::path]`: the OpenAPI document and the router
/// cannot disagree.
pub fn documented(state: &AppState) -> OpenApiRouter<AppState> {
    let guarded = OpenApiRouter::new()
        .routes(routes!(webhooks::email))
        .routes(routes!(webhooks::behavior))
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
        .routes(routes!(access::list_users, access::add_user))
        .routes(routes!(access::disable_user))
        .routes(routes!(access::enable_user))
        .routes(routes!(access::list_keys, access::create_key))
        .routes(routes!(access::revoke_key))
        .routes(routes!(access::audit))
        .route_layer(Guard { app: state.clone(), table: ROUTE_ROLES });
    let mut router =
        OpenApiRouter::with_openapi(openapi::ApiDoc::openapi()).merge(guarded).routes(routes!(webhooks::health));
    openapi::describe_roles(router.get_openapi_mut(), ROUTE_ROLES);
    router
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
