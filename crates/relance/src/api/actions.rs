//! Scheduled actions: list, inspect, cancel, retry; and the `external` executor's API, so
//! that a Power Automate Desktop flow can pull its work.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use relance_core::ActionType;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Path, Query};
use super::openapi::AdminRefusals;
use super::webhooks::{parse_json, read_body};
use crate::config::ExecutorKind;
use crate::dispatch::payload::ActionPayload;
use crate::store::ContactKey;
use crate::store::audit::AuditKind;
use crate::store::jobs::{Attempt, ClaimRequest, Finish, JobFilter, JobFinish, JobRow, JobState, OutboxRow};
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::error::{ApiError, ErrorBody};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only actions in this state (also accepted: `deferred`, the pending actions contact
    /// pressure moved).
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Only this contact's actions (email or client code).
    contact: Option<String>,
    /// Only actions of this type.
    #[param(value_type = Option<ActionType>)]
    action_type: Option<String>,
    /// At most this many (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ActionsPage {
    actions: Vec<JobRow>,
}

/// One action with every attempt made.
#[derive(Serialize, ToSchema)]
pub struct ActionDetail {
    action: JobRow,
    attempts: Vec<Attempt>,
}

/// List scheduled actions.
///
/// Jobs in due order, filtered by state, contact and action type: what will run, what
/// ran, and what failed.
#[utoipa::path(
    get, path = "/api/actions", tag = "actions", operation_id = "ListActions",
    params(ListParams),
    responses(
        (status = 200, description = "Actions, soonest due first", body = ActionsPage),
        (status = 400, description = "Invalid filter; `accepted` lists the values", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]

pub async fn list(State(app): State<AppState>, Query(p): Query<ListParams>) -> Result<Response, ApiError> {
    // `deferred` is not a state: the pending jobs contact pressure moved.
    let deferred = p.state.as_deref() == Some("deferred");
    let state = match p.state.as_deref().filter(|s| *s != "deferred") {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| ApiError::BadRequest {
            error: "invalid_field",
            detail: format!("state: unknown state {s:?}"),
            field: Some("state".into()),
            accepted: JobState::NAMES.iter().copied().chain(["deferred"]).collect(),
        })?),
        None => None,
    };
    let action_type = match p.action_type.as_deref() {
        Some(s) => Some(s.parse::<ActionType>().map_err(|_| ApiError::BadRequest {
            error: "invalid_field",
            detail: format!("action_type: unknown action type {s:?}"),
            field: Some("action_type".into()),
            accepted: ActionType::NAMES.to_vec(),
        })?),
        None => None,
    };
    let contact = p.contact.as_deref().map(ContactKey::parse).transpose()?;
    let filter = JobFilter {
        state,
        deferred,
        action_type,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
        ..JobFilter::default()
    };
    let jobs = app.store.jobs(filter, contact).await?;
    Ok(Json(ActionsPage { actions: jobs }).into_response())
}

/// The `{id}` path parameter of the action routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ActionId {
    /// The action's (job's) id.
    id: String,
}

/// Get an action and its attempts.
///
/// The job with its configuration, state and every attempt (time, outcome, HTTP status,
/// response excerpt).
#[utoipa::path(
    get, path = "/api/actions/{id}", tag = "actions", operation_id = "GetAction",
    params(ActionId),
    responses(
        (status = 200, description = "The action", body = ActionDetail),
        (status = 404, description = "No such action", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]

pub async fn get(State(app): State<AppState>, Path(ActionId { id }): Path<ActionId>) -> Result<Response, ApiError> {
    detail(&app, id).await
}

async fn detail(app: &AppState, id: String) -> Result<Response, ApiError> {
    match app.store.job(id.clone()).await? {
        Some((action, attempts)) => Ok(Json(ActionDetail { action, attempts }).into_response()),
        None => Err(ApiError::NotFound(format!("no action {id:?}"))),
    }
}

/// Cancel a pending action.
///
/// A pending or failed job becomes `cancelled` and never runs; any other state answers 409.
#[utoipa::path(
    post, path = "/api/actions/{id}/cancel", tag = "actions", operation_id = "CancelAction",
    params(ActionId),
    responses(
        (status = 200, description = "Cancelled", body = ActionDetail),
        (status = 404, description = "No such action", body = ErrorBody),
        (status = 409, description = "The action has already run or ended", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn cancel(
    State(app): State<AppState>,
    actor: Actor,
    Path(ActionId { id }): Path<ActionId>,
) -> Result<Response, ApiError> {
    let audit = actor.audit(AuditKind::Actions, "cancel").summary("cancelled");
    audited(&app, audit, |a| app.store.cancel_job(id.clone(), a)).await?;
    detail(&app, id).await
}

/// Retry a failed, dead or cancelled action now.
///
/// The job runs at once with a fresh attempt budget; its earlier attempts stay recorded.
#[utoipa::path(
    post, path = "/api/actions/{id}/retry", tag = "actions", operation_id = "RetryAction",
    params(ActionId),
    responses(
        (status = 200, description = "Pending again, due now", body = ActionDetail),
        (status = 404, description = "No such action", body = ErrorBody),
        (status = 409, description = "The action cannot be retried in its state", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn retry(
    State(app): State<AppState>,
    actor: Actor,
    Path(ActionId { id }): Path<ActionId>,
) -> Result<Response, ApiError> {
    let audit = actor.audit(AuditKind::Actions, "retry").summary("pending again, due now");
    audited(&app, audit, |a| app.store.retry_job(id.clone(), a)).await?;
    detail(&app, id).await
}

#[derive(Serialize, ToSchema)]
pub struct JobStat {
    state: String,
    action_type: String,
    /// Where this action type is carried out now.
    executor: Option<ExecutorKind>,
    count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ActionStats {
    jobs: Vec<JobStat>,
    /// Each action type's executor.
    executors: std::collections::BTreeMap<String, ExecutorKind>,
}

/// Count actions by state and type, and show where each type is routed.
///
/// Job counts by state, action type and executor, and the executor each action type is
/// routed to by the configuration.
#[utoipa::path(
    get, path = "/api/actions/stats", tag = "actions", operation_id = "ActionStats",
    responses((status = 200, description = "Counts and routes", body = ActionStats), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn stats(State(app): State<AppState>) -> Result<Response, ApiError> {
    let counts: Vec<_> = app
        .store
        .job_stats()
        .await?
        .into_iter()
        .map(|c| {
            let executor = c.action_type.parse::<ActionType>().ok().map(|a| app.settings.dispatch.route(a));
            JobStat { state: c.state, action_type: c.action_type, executor, count: c.count }
        })
        .collect();
    let executors = ActionType::ALL.iter().map(|a| (a.as_str().to_owned(), app.settings.dispatch.route(*a))).collect();
    Ok(Json(ActionStats { jobs: counts, executors }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// At most this many, newest first (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct OutboxPage {
    outbox: Vec<OutboxRow>,
}

/// What the outbox executor recorded instead of sending.
///
/// With no Brevo key, emails and SMS go to the outbox: the exact request Brevo would have
/// received.
#[utoipa::path(
    get, path = "/api/outbox", tag = "actions", operation_id = "ListOutbox",
    params(OutboxParams),
    responses(
        (status = 200, description = "Outbox records", body = OutboxPage),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn outbox(State(app): State<AppState>, Query(p): Query<OutboxParams>) -> Result<Response, ApiError> {
    let rows = app.store.outbox(p.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(OutboxPage { outbox: rows }).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// Only `external` jobs can be claimed.
    #[schema(pattern = "^external$", example = "external")]
    executor: String,
    /// At most this many actions (1..100, default 10).
    #[serde(default = "default_limit")]
    #[schema(minimum = 1, maximum = 100)]
    limit: usize,
    /// How long the claim holds; unfinished actions come back after it (10..86400, default
    /// 300).
    #[serde(default = "default_lease")]
    #[schema(minimum = 10, maximum = 86400)]
    lease_seconds: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimedActions {
    /// The claimed actions; empty when nothing is due.
    actions: Vec<ActionPayload>,
    /// Set when no action type is routed to the external executor.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'static str>,
}

fn default_limit() -> usize {
    10
}

fn default_lease() -> u64 {
    300
}

fn body_of<T: serde::de::DeserializeOwned>(bytes: &[u8], accepted: &str) -> Result<T, ApiError> {
    let value = if bytes.iter().all(u8::is_ascii_whitespace) { json!({}) } else { parse_json(bytes)? };
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("{e}; accepted: {accepted}")))
}

/// Claim due external actions.
///
/// For a Power Automate Desktop flow (or any worker): due actions routed to the
/// `external` executor, leased for `lease_seconds`. Report each with `complete` or
/// `fail`.
#[utoipa::path(
    post, path = "/api/actions/claim", tag = "actions", operation_id = "ClaimActions",
    request_body(content = ClaimBody, description = "Which executor's due actions to lease, how many and for how long"),
    responses(
        (status = 200, description = "The claimed actions", body = ClaimedActions),
        (status = 400, description = "Invalid body", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn claim(State(app): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let b: ClaimBody =
        body_of(&read_body(body).await?, "executor (\"external\"), limit (1..100), lease_seconds (10..86400)")?;
    if b.executor != "external" {
        return Err(ApiError::BadRequest {
            error: "invalid_field",
            detail: format!("executor: only \"external\" jobs can be claimed through the API (got {:?})", b.executor),
            field: Some("executor".into()),
            accepted: vec!["external"],
        });
    }
    if !(1..=100).contains(&b.limit) || !(10..=86_400).contains(&b.lease_seconds) {
        return Err(ApiError::invalid_field("limit", "limit must be 1..100 and lease_seconds 10..86400"));
    }
    let types = app.settings.dispatch.external_types();
    if types.is_empty() {
        return Ok(Json(ClaimedActions {
            actions: Vec::new(),
            note: Some("no action type is routed to the external executor"),
        })
        .into_response());
    }
    let jobs = app
        .store
        .claim_jobs(ClaimRequest {
            limit: b.limit,
            lease: std::time::Duration::from_secs(b.lease_seconds),
            action_types: types,
            // External workers send too: the same governor.
            pressure: Some(app.settings.dispatch.pressure.clone()),
        })
        .await?;
    let actions = jobs.iter().map(ActionPayload::of).collect();
    Ok(Json(ClaimedActions { actions, note: None }).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// What was done, kept with the attempt.
    #[serde(default)]
    result: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    /// What went wrong, kept with the attempt.
    reason: String,
    /// `false` when retrying cannot help: the job goes dead at once.
    #[serde(default = "retry_default")]
    retry: bool,
}

fn retry_default() -> bool {
    true
}

fn attempt(app: &AppState, status: &str, response: Option<String>) -> Attempt {
    Attempt { started_at: (app.clock)(), duration_ms: 0, status: status.into(), http_status: None, response }
}

/// Report a claimed action done.
///
/// An external worker ends a job it claimed; the optional `result` is kept as the
/// attempt's response.
#[utoipa::path(
    post, path = "/api/actions/{id}/complete", tag = "actions", operation_id = "CompleteAction",
    params(ActionId),
    request_body(content = CompleteBody, description = "Optional; an empty body is accepted"),
    responses(
        (status = 200, description = "Done", body = ActionDetail),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
        (status = 409, description = "The action is not claimed (lease expired or already finished)", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn complete(
    State(app): State<AppState>,
    actor: Actor,
    Path(ActionId { id }): Path<ActionId>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: CompleteBody = body_of(&read_body(body).await?, "result (optional text)")?;
    let finish =
        JobFinish { finish: Finish::Done, error: None, attempt: attempt(&app, "done", b.result), outbox: None };
    let audit = actor.audit(AuditKind::Actions, "complete").summary("done, reported by the worker");
    audited(&app, audit, |a| app.store.finish_external(id.clone(), finish, a)).await?;
    detail(&app, id).await
}

/// Report a claimed action failed.
///
/// Retried later with the configured backoff, or dead at once with `retry: false`.
#[utoipa::path(
    post, path = "/api/actions/{id}/fail", tag = "actions", operation_id = "FailAction",
    params(ActionId),
    request_body(content = FailBody, description = "Why the action failed, and whether to retry it"),
    responses(
        (status = 200, description = "Scheduled for retry, or dead", body = ActionDetail),
        (status = 400, description = "Invalid body", body = ErrorBody),
        (status = 404, description = "No such action", body = ErrorBody),
        (status = 409, description = "The action is not claimed (lease expired or already finished)", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn fail(
    State(app): State<AppState>,
    actor: Actor,
    Path(ActionId { id }): Path<ActionId>,
    body: Body,
) -> Result<Response, ApiError> {
    let b: FailBody = body_of(&read_body(body).await?, "reason (text, required), retry (bool, default true)")?;
    let attempts = match app.store.job(id.clone()).await? {
        Some((job, _)) => job.attempts,
        None => return Err(ApiError::NotFound(format!("no action {id:?}"))),
    };
    let delay = if b.retry { crate::dispatch::backoff(&app.settings.dispatch, attempts, None) } else { None };
    let (finish, status) = match delay {
        Some(d) => {
            (Finish::Retry { at: (app.clock)() + chrono::Duration::milliseconds(d.as_millis() as i64) }, "retry")
        }
        None => (Finish::Dead, "dead"),
    };
    let finish = JobFinish {
        finish,
        error: Some(b.reason.clone()),
        attempt: attempt(&app, status, Some(b.reason)),
        outbox: None,
    };
    let audit = actor.audit(AuditKind::Actions, "fail").summary(format!("failed, reported by the worker: {status}"));
    audited(&app, audit, |a| app.store.finish_external(id.clone(), finish, a)).await?;
    detail(&app, id).await
}
