//! `GET /api/brevo/sync`: how the push of contact attributes to Brevo stands.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Query;
use super::openapi::AdminRefusals;
use crate::store::brevo_sync::{SyncProblem, SyncStatus};
use crate::web::AppState;
use crate::web::error::{ApiError, ErrorBody};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SyncParams {
    /// Contacts whose push failed, at most this many (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct SyncReport {
    /// Whether `[brevo.sync]` maps any attribute (and Brevo is configured).
    enabled: bool,
    /// The Brevo attribute each mapped field goes to.
    attributes: Vec<String>,
    status: SyncStatus,
    /// Contacts whose latest push did not reach Brevo (unknown to Brevo, no email,
    /// failed, retrying), newest first.
    problems: Vec<SyncProblem>,
}

/// Brevo contact sync status.
///
/// Counts of queued contacts by state, the latest request to Brevo's contacts API, and
/// the contacts whose push did not reach Brevo (a contact Brevo does not know is reported
/// here unless `create_missing_contacts` is set).
#[utoipa::path(
    get, path = "/api/brevo/sync", tag = "contacts", operation_id = "GetBrevoSync",
    params(SyncParams),
    responses(
        (status = 200, description = "The sync queue and its problems", body = SyncReport),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn status(State(app): State<AppState>, Query(p): Query<SyncParams>) -> Result<Response, ApiError> {
    let sync = app.settings.dispatch.brevo.as_ref().and_then(|b| b.sync.as_ref());
    let attributes = sync.map(|s| s.fields.attributes.iter().map(|(a, _)| a.clone()).collect()).unwrap_or_default();
    let status = app.store.brevo_sync_status().await?;
    let problems = app.store.brevo_sync_problems(p.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(SyncReport { enabled: sync.is_some(), attributes, status, problems }).into_response())
}
