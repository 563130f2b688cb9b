//! People and keys over the API (admin only): users, API keys, and the audit log.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Path, Query};
use super::openapi::AdminRefusals;
use super::webhooks::{parse_json, read_body};
use crate::access::Role;
use crate::ops::access::CreatedKey;
use crate::store::access::{KeyRow, UserRow};
use crate::store::audit::{AuditKind, AuditQuery, AuditRow};
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::error::{ApiError, ErrorBody};

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], accepted: &str) -> Result<T, ApiError> {
    serde_json::from_value(parse_json(bytes)?)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("{e}; accepted: {accepted}")))
}

/// List users.
///
/// Every user with their role, whether disabled, and failed sign-ins in a row.
#[utoipa::path(
    get, path = "/api/users", tag = "access", operation_id = "ListUsers",
    responses((status = 200, description = "Users by name", body = Vec<UserRow>), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn list_users(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(app.store.users().await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// Letters, digits, `-`, `_`, `.`.
    name: String,
    /// viewer, editor or admin.
    #[schema(value_type = String)]
    role: String,
    /// At least 12 characters; left out, one is generated and answered once.
    password: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    name: String,
    role: Role,
    /// The generated password, shown this once (absent when one was given).
    password: Option<String>,
}

/// Add a user.
#[utoipa::path(
    post, path = "/api/users", tag = "access", operation_id = "AddUser",
    request_body(content = NewUserBody, description = "The user's name, role and (optionally) password"),
    responses(
        (status = 201, description = "Created", body = CreatedUser),
        (status = 400, description = "Invalid name, role or password", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn add_user(State(app): State<AppState>, actor: Actor, b: Body) -> Result<Response, ApiError> {
    let b: NewUserBody = body(&read_body(b).await?, "name, role (viewer|editor|admin), password (optional)")?;
    let role: Role = b.role.parse().map_err(|m: String| ApiError::invalid_field("role", m))?;
    let audit = actor.audit(AuditKind::Users, "create");
    let password =
        audited(&app, audit, |a| crate::ops::access::add_user(&*app.store, &b.name, role, b.password, a)).await?;
    Ok((StatusCode::CREATED, Json(CreatedUser { name: b.name.trim().to_owned(), role, password })).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NameParam {
    /// The user's or key's name.
    name: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserSwitched {
    name: String,
    disabled: bool,
    /// Sessions ended (on every instance).
    sessions_ended: u64,
}

/// Disable a user.
///
/// Their sessions end at once, on every instance; they can no longer sign in.
#[utoipa::path(
    post, path = "/api/users/{name}/disable", tag = "access", operation_id = "DisableUser",
    params(NameParam),
    responses(
        (status = 200, description = "Disabled", body = UserSwitched),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn disable_user(
    State(app): State<AppState>,
    actor: Actor,
    Path(NameParam { name }): Path<NameParam>,
) -> Result<Response, ApiError> {
    switch_user(app, actor, name, true).await
}

/// Enable a user again.
#[utoipa::path(
    post, path = "/api/users/{name}/enable", tag = "access", operation_id = "EnableUser",
    params(NameParam),
    responses(
        (status = 200, description = "Enabled (and unlocked)", body = UserSwitched),
        (status = 404, description = "No such user", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn enable_user(
    State(app): State<AppState>,
    actor: Actor,
    Path(NameParam { name }): Path<NameParam>,
) -> Result<Response, ApiError> {
    switch_user(app, actor, name, false).await
}

async fn switch_user(app: AppState, actor: Actor, name: String, disabled: bool) -> Result<Response, ApiError> {
    let audit = actor.audit(AuditKind::Users, if disabled { "disable" } else { "enable" });
    let ended = audited(&app, audit, |a| crate::ops::access::set_disabled(&*app.store, &name, disabled, a)).await?;
    Ok(Json(UserSwitched { name, disabled, sessions_ended: ended }).into_response())
}

/// List API keys.
///
/// Name, role, visible prefix, who created it and when, when last used, whether revoked.
/// The keys themselves are never shown again.
#[utoipa::path(
    get, path = "/api/keys", tag = "access", operation_id = "ListKeys",
    responses((status = 200, description = "Keys, live ones first", body = Vec<KeyRow>), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn list_keys(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(app.store.keys().await?).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// What uses the key: `power-automate`, `website`.
    name: String,
    /// viewer, editor, admin or ingest (`/webhook/*` only).
    #[schema(value_type = String)]
    role: String,
}

/// Create an API key.
///
/// The answer holds the key: the only time it is shown (only its digest is kept).
#[utoipa::path(
    post, path = "/api/keys", tag = "access", operation_id = "CreateKey",
    request_body(content = NewKeyBody, description = "What uses the key, and its role"),
    responses(
        (status = 201, description = "Created; `key` is shown this once", body = CreatedKey),
        (status = 400, description = "Invalid name or role", body = ErrorBody),
        (status = 409, description = "The name is taken (also by a revoked key)", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn create_key(State(app): State<AppState>, actor: Actor, b: Body) -> Result<Response, ApiError> {
    let b: NewKeyBody = body(&read_body(b).await?, "name, role (viewer|editor|admin|ingest)")?;
    let role: Role = b.role.parse().map_err(|m: String| ApiError::invalid_field("role", m))?;
    let by = actor.principal.name.clone();
    let audit = actor.audit(AuditKind::Keys, "create");
    let created = audited(&app, audit, |a| crate::ops::access::create_key(&*app.store, &b.name, role, &by, a)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Revoke an API key.
///
/// Refused at once on every instance (keys are checked against the database on each
/// request).
#[utoipa::path(
    delete, path = "/api/keys/{name}", tag = "access", operation_id = "RevokeKey",
    params(NameParam),
    responses(
        (status = 200, description = "Revoked", body = KeyRevoked),
        (status = 404, description = "No unrevoked key of that name", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn revoke_key(
    State(app): State<AppState>,
    actor: Actor,
    Path(NameParam { name }): Path<NameParam>,
) -> Result<Response, ApiError> {
    let audit = actor.audit(AuditKind::Keys, "revoke");
    audited(&app, audit, |a| crate::ops::access::revoke_key(&*app.store, &name, a)).await?;
    Ok(Json(KeyRevoked { name, revoked: true }).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct KeyRevoked {
    name: String,
    /// Always true.
    revoked: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries from this time on (RFC 3339 or a date).
    since: Option<String>,
    /// Only this actor (a user's or key's name, `admin-token`, `cli:USER`…).
    actor: Option<String>,
    /// rules, actions, contacts, users, keys or sessions.
    kind: Option<String>,
    /// Entries older than this id (the last `id` of the previous page).
    before: Option<i64>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Read the audit log.
///
/// Every change made through the API, the dashboard or the CLI, newest first: who, when,
/// from where, what, and the outcome (refusals included).
#[utoipa::path(
    get, path = "/api/audit", tag = "access", operation_id = "ReadAudit",
    params(AuditParams),
    responses(
        (status = 200, description = "Entries, newest first", body = Vec<AuditRow>),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn audit(State(app): State<AppState>, Query(p): Query<AuditParams>) -> Result<Response, ApiError> {
    let kind = match p.kind.as_deref() {
        None => None,
        Some(k) => Some(AuditKind::parse(k).ok_or_else(|| {
            ApiError::invalid_field("kind", "one of rules, actions, contacts, users, keys, sessions")
        })?),
    };
    let query = AuditQuery {
        since: p.since.as_deref().map(crate::ops::parse_since).transpose()?,
        actor: p.actor,
        kind,
        before_id: p.before,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    Ok(Json(app.store.audit_log(query).await?).into_response())
}
