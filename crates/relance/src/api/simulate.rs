//! `POST /api/simulate`: backtest candidate rules against the stored events.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use relance_core::backtest::BacktestReport;
use relance_core::{RuleFormat, RuleSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::openapi::AdminRefusals;
use super::webhooks::{parse_json, read_body};
use crate::ops::parse_since;
use crate::web::AppState;
use crate::web::error::{ApiError, ErrorBody};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateBody {
    /// The candidate rules: TOML text, seed-JSON text, or the seed-JSON array itself.
    #[schema(schema_with = candidate_rules_schema)]
    rules: Value,
    /// Replay only events at or after this time (RFC 3339 or a date).
    since: Option<String>,
    /// How many differing contacts to show (0..200, default 20).
    #[serde(default = "examples")]
    #[schema(minimum = 0, maximum = 200)]
    examples: usize,
}

fn candidate_rules_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Type};
    use utoipa::openapi::{ObjectBuilder, RefOr};
    let text = ObjectBuilder::new().schema_type(Type::String).description(Some("TOML or seed-JSON text"));
    let array = ArrayBuilder::new().items(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("RuleSpec")));
    OneOfBuilder::new().item(text).item(array).into()
}

/// The backtest's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SimulateAnswer {
    /// The live version compared against.
    live_version: i64,
    since: Option<DateTime<Utc>>,
    /// How long the replay took.
    seconds: f64,
    report: BacktestReport,
    /// How both sides start.
    note: &'static str,
}

fn examples() -> usize {
    20
}

/// Backtest candidate rules on the stored events.
///
/// Replays the stored events through the rules in force and through the candidate, from
/// the same starting contacts, with no side effect; reports actions per rule and type,
/// contacts ending differently (with examples) and emails no longer or newly sent.
#[utoipa::path(
    post, path = "/api/simulate", tag = "rules", operation_id = "SimulateRules",
    request_body(content = SimulateBody, description = "The candidate rules (TOML or the seed's JSON) and where in the history to start"),
    responses(
        (status = 200, description = "The difference between live and candidate", body = SimulateAnswer),
        (status = 400, description = "Invalid body or rules (`errors` lists every rule problem)", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
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
            return Ok(ErrorBody::invalid_rules(detail, errors));
        }
    };
    let since = b.since.as_deref().map(parse_since).transpose()?;
    let live = app.rules.current();
    let started = std::time::Instant::now();
    let report = crate::ops::backtest::against_history(
        &*app.store,
        &live.engine,
        candidate,
        crate::ops::backtest::Replay {
            since,
            max_examples: b.examples.min(200),
            now: (app.clock)(),
            pressure: &app.settings.dispatch.pressure,
            sync: app
                .settings
                .dispatch
                .brevo
                .as_ref()
                .and_then(|b| b.sync.as_ref())
                .map(|s| s.fields.clone())
                .unwrap_or_default(),
        },
    )
    .await?;
    Ok(Json(SimulateAnswer {
        live_version: live.version,
        since,
        seconds: started.elapsed().as_secs_f64(),
        report,
        note: "both rule sets start from each contact's CRM data (segment, RFM) without what events did, and see the same events",
    })
    .into_response())
}
