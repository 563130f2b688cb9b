//! Scheduled actions: list, inspect, cancel, retry; and the `external` executor's API, so
//! that a Power Automate Desktop flow can pull its work.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use relance_core::ActionType;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::webhooks::{parse_json, read_body};
use crate::dispatch::executors::Executors;
use crate::store::jobs::{Attempt, ClaimRequest, Finish, JobFilter, JobFinish, JobState};
use crate::store::{ContactKey, Store};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    state: Option<String>,
    contact: Option<String>,
    action_type: Option<String>,
    limit: Option<usize>,
}

pub async fn list(State(app): State<AppState>, Query(p): Query<ListParams>) -> Result<Response, ApiError> {
    let state = match p.state.as_deref() {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| ApiError::BadRequest {
            error: "invalid_field",
            detail: format!("state: unknown state {s:?}"),
            field: Some("state".into()),
            accepted: JobState::NAMES.to_vec(),
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
    let filter = JobFilter { state, action_type, contact_id: None, limit: p.limit.unwrap_or(100).clamp(1, 1000) };
    let jobs = app.store.jobs(filter, contact).await?;
    Ok(Json(json!({"actions": jobs})).into_response())
}

pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match app.store.job(id.clone()).await? {
        Some((job, attempts)) => Ok(Json(json!({"action": job, "attempts": attempts})).into_response()),
        None => Err(ApiError::NotFound(format!("no action {id:?}"))),
    }
}

pub async fn cancel(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    app.store.cancel_job(id.clone()).await?;
    get(State(app), Path(id)).await
}

pub async fn retry(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    app.store.retry_job(id.clone()).await?;
    get(State(app), Path(id)).await
}

pub async fn stats(State(app): State<AppState>) -> Result<Response, ApiError> {
    let counts: Vec<_> = app
        .store
        .job_stats()
        .await?
        .into_iter()
        .map(|c| {
            let executor = c.action_type.parse::<ActionType>().ok().map(|a| app.settings.dispatch.route(a));
            json!({"state": c.state, "action_type": c.action_type, "executor": executor, "count": c.count})
        })
        .collect();
    let routes: serde_json::Map<String, serde_json::Value> =
        ActionType::ALL.iter().map(|a| (a.as_str().to_owned(), json!(app.settings.dispatch.route(*a)))).collect();
    Ok(Json(json!({"jobs": counts, "executors": routes})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxParams {
    limit: Option<usize>,
}

pub async fn outbox(State(app): State<AppState>, Query(p): Query<OutboxParams>) -> Result<Response, ApiError> {
    let rows = app.store.outbox(p.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(json!({"outbox": rows})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    executor: String,
    #[serde(default = "default_limit")]
    limit: usize,
    #[serde(default = "default_lease")]
    lease_seconds: u64,
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
        return Ok(
            Json(json!({"actions": [], "note": "no action type is routed to the external executor"})).into_response()
        );
    }
    let jobs = app
        .store
        .claim_jobs(ClaimRequest {
            limit: b.limit,
            lease: std::time::Duration::from_secs(b.lease_seconds),
            action_types: types,
        })
        .await?;
    let actions: Vec<_> = jobs.iter().map(Executors::action_payload).collect();
    Ok(Json(json!({"actions": actions})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    #[serde(default)]
    result: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
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

pub async fn complete(State(app): State<AppState>, Path(id): Path<String>, body: Body) -> Result<Response, ApiError> {
    let b: CompleteBody = body_of(&read_body(body).await?, "result (optional text)")?;
    let finish =
        JobFinish { finish: Finish::Done, error: None, attempt: attempt(&app, "done", b.result), outbox: None };
    app.store.finish_external(id.clone(), finish).await?;
    get(State(app), Path(id)).await
}

pub async fn fail(State(app): State<AppState>, Path(id): Path<String>, body: Body) -> Result<Response, ApiError> {
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
    app.store.finish_external(id.clone(), finish).await?;
    get(State(app), Path(id)).await
}
