//! `POST /api/score`: the lead-score formula, term by term.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use relance_core::ScoreInputs;
use serde::Deserialize;

use super::error::ApiError;
use super::webhooks::{parse_json, read_body};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreBody {
    rfm: f64,
    #[serde(default)]
    engagement: i64,
    #[serde(default)]
    purchases: i64,
    days_since_purchase: Option<i64>,
}

pub async fn post(body: Body) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    let b: ScoreBody = serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "{e}; accepted: rfm (0..4, required), engagement, purchases, days_since_purchase (whole numbers ≥ 0)"
            ),
        )
    })?;
    let inputs = ScoreInputs::parse(b.rfm, b.engagement, b.purchases, b.days_since_purchase).map_err(|e| {
        let field = match &e {
            relance_core::score::ScoreInputError::Rfm(_) => "rfm",
            relance_core::score::ScoreInputError::Negative { field, .. } => field,
        };
        ApiError::invalid_field(field, e.to_string())
    })?;
    Ok(Json(inputs.breakdown()).into_response())
}
