//! `POST /api/simulate`: backtest candidate rules against the stored events.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use relance_core::{RuleFormat, RuleSet};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::contacts::parse_since;
use super::error::ApiError;
use super::webhooks::{parse_json, read_body};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulateBody {
    /// The candidate: TOML text, seed-JSON text, or the seed-JSON array itself.
    rules: Value,
    since: Option<String>,
    #[serde(default = "examples")]
    examples: usize,
}

fn examples() -> usize {
    20
}

pub async fn post(State(app): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    let b: SimulateBody = serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("{e}; accepted: rules (TOML or seed JSON), since, examples"))
    })?;
    let text = match &b.rules {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let candidate = match RuleSet::parse(&text, RuleFormat::detect("", &text)) {
        Ok(r) => r,
        Err(errors) => {
            let detail = format!("{} problem(s) in the candidate rules", errors.len());
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_rules", "detail": detail, "errors": errors})),
            )
                .into_response());
        }
    };
    let since = b.since.as_deref().map(parse_since).transpose()?;
    let live = app.rules.current();
    let started = std::time::Instant::now();
    let report = crate::backtest::against_history(
        &*app.store,
        &live.engine,
        candidate,
        since,
        b.examples.min(200),
        (app.clock)(),
    )
    .await?;
    Ok(Json(json!({
        "live_version": live.version,
        "since": since,
        "seconds": started.elapsed().as_secs_f64(),
        "report": report,
        "note": "both rule sets start from each contact's CRM data (segment, RFM) without what events did, and see the same events",
    }))
    .into_response())
}
