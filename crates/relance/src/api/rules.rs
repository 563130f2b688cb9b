//! Rules as versioned data: read, replace (validated, a new version, active on every
//! instance within seconds), list versions, roll back, export in the seed's format.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relance_core::{RuleFormat, RuleSet};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::webhooks::read_body;
use crate::live_rules::hash_rules;
use crate::store::Store;

pub async fn get(State(app): State<AppState>) -> Response {
    let rules = app.rules.current();
    Json(json!({"version": rules.version, "hash": rules.hash, "rules": rules.engine.rules().specs()})).into_response()
}

pub async fn export(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], app.rules.current().engine.rules().to_seed_json()).into_response()
}

/// The body is TOML (`content-type: application/toml` or `text/x-toml`, or `[[rule]]`
/// tables) or the seed's JSON (an array, or `{"rules": [...]}` as `GET` answers).
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
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_rules", "detail": detail, "errors": errors})),
            )
                .into_response());
        }
    };
    let hash = hash_rules(&rules);
    let row = app.store.save_rule_set(rules.to_seed_json(), hash).await?;
    app.rules.swap(rules, row.version);
    tracing::info!(version = row.version, "new rule set active");
    Ok(get(State(app)).await)
}

pub async fn versions(State(app): State<AppState>) -> Result<Response, ApiError> {
    let rows = app.store.rule_set_versions().await?;
    let list: Vec<_> = rows
        .iter()
        .map(|r| {
            let count = serde_json::from_str::<Vec<serde_json::Value>>(&r.body).map(|v| v.len()).unwrap_or(0);
            json!({"version": r.version, "hash": r.hash, "created_at": r.created_at, "active": r.active, "rules": count})
        })
        .collect();
    Ok(Json(json!({"versions": list})).into_response())
}

pub async fn activate(State(app): State<AppState>, Path(version): Path<i64>) -> Result<Response, ApiError> {
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
