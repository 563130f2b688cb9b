//! Rules as versioned data: read, replace (validated, a new version, active on every
//! instance within seconds), list versions, roll back, export in the seed's format.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use relance_core::{RuleFormat, RuleSet, RuleSpec};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use super::openapi::AdminRefusals;
use super::webhooks::read_body;
use crate::live_rules::hash_rules;
use crate::store::Store;

/// The rule set in force.
#[derive(Serialize, ToSchema)]
pub struct RulesInForce<'a> {
    /// Its stored version (every history row and job records the version that made it).
    version: i64,
    /// SHA-256 of the rules, to compare instances or files.
    hash: &'a str,
    rules: &'a [RuleSpec],
}

/// Get the rules in force.
#[utoipa::path(
    get, path = "/api/rules", tag = "rules", operation_id = "GetRules",
    responses((status = 200, description = "The active version and its rules", body = RulesInForce), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn get(State(app): State<AppState>) -> Response {
    let rules = app.rules.current();
    Json(RulesInForce { version: rules.version, hash: &rules.hash, rules: &rules.engine.rules().specs() })
        .into_response()
}

/// Export the rules in force in the seed's JSON format.
#[utoipa::path(
    get, path = "/api/rules/export", tag = "rules", operation_id = "ExportRules",
    responses((status = 200, description = "The seed's JSON export format", body = Vec<RuleSpec>), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn export(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], app.rules.current().engine.rules().to_seed_json()).into_response()
}

/// Replace the rules.
///
/// The body is TOML (`content-type: application/toml`, or `[[rule]]` tables) or the seed's
/// JSON (an array, or `{"rules": [...]}` as `GetRules` answers). Validated as a whole:
/// a 400 lists every problem with its rule and field path, and nothing changes.
/// Otherwise it becomes a new version, in force at once here and within seconds on every
/// other instance.
#[utoipa::path(
    put, path = "/api/rules", tag = "rules", operation_id = "PutRules",
    request_body(content(
        (Vec<RuleSpec> = "application/json"),
        (String = "application/toml"),
    ), description = "The whole rule set"),
    responses(
        (status = 200, description = "The new version, in force", body = RulesInForce),
        (status = 400, description = "Invalid rules: `errors` lists every problem; nothing changed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn put(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| ApiError::bad_request("invalid_rules", "the body is not UTF-8"))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = if content_type.contains("toml") { RuleFormat::Toml } else { RuleFormat::detect("", text) };
    let rules = match RuleSet::parse(text, format) {
        Ok(r) => r,
        Err(errors) => {
            let detail = format!("{} problem(s) in the rule set; nothing changed", errors.len());
            return Ok(ErrorBody::invalid_rules(detail, errors));
        }
    };
    let hash = hash_rules(&rules);
    let row = app.store.save_rule_set(rules.to_seed_json(), hash).await?;
    app.rules.swap(rules, row.version);
    tracing::info!(version = row.version, "new rule set active");
    Ok(get(State(app)).await)
}

#[derive(Serialize, ToSchema)]
pub struct VersionSummary {
    version: i64,
    hash: String,
    created_at: DateTime<Utc>,
    /// Whether this version is in force.
    active: bool,
    /// How many rules it holds.
    rules: usize,
}

#[derive(Serialize, ToSchema)]
pub struct VersionsPage {
    versions: Vec<VersionSummary>,
}

/// List the stored versions of the rules.
#[utoipa::path(
    get, path = "/api/rules/versions", tag = "rules", operation_id = "ListRuleVersions",
    responses((status = 200, description = "Every version, newest first", body = VersionsPage), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn versions(State(app): State<AppState>) -> Result<Response, ApiError> {
    let rows = app.store.rule_set_versions().await?;
    let versions = rows
        .into_iter()
        .map(|r| {
            let rules = serde_json::from_str::<Vec<serde_json::Value>>(&r.body).map(|v| v.len()).unwrap_or(0);
            VersionSummary { version: r.version, hash: r.hash, created_at: r.created_at, active: r.active, rules }
        })
        .collect();
    Ok(Json(VersionsPage { versions }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionParam {
    /// A version number from `ListRuleVersions`.
    version: i64,
}

/// Put a stored version back in force (rollback).
#[utoipa::path(
    post, path = "/api/rules/versions/{version}/activate", tag = "rules", operation_id = "ActivateRuleVersion",
    params(VersionParam),
    responses(
        (status = 200, description = "That version, in force", body = RulesInForce),
        (status = 400, description = "The version is not a number", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn activate(
    State(app): State<AppState>,
    Path(VersionParam { version }): Path<VersionParam>,
) -> Result<Response, ApiError> {
    let row = app.store.activate_rule_set(version).await.map_err(|e| match e {
        crate::store::StoreError::NotFound => ApiError::NotFound(format!("no rule-set version {version}")),
        other => other.into(),
    })?;
    let rules = RuleSet::parse(&row.body, RuleFormat::Json)
        .map_err(|errors| ApiError::Internal(anyhow::anyhow!("stored version {version} is invalid: {}", errors[0])))?;
    app.rules.swap(rules, row.version);
    tracing::info!(version, "rule set rolled back");
    Ok(get(State(app)).await)
}
