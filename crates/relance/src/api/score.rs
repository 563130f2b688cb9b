//! `POST /api/score`: the lead-score formula, term by term.

use axum::Json;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use relance_core::ScoreInputs;
use relance_core::score::ScoreBreakdown;
use serde::Deserialize;

use super::openapi::AdminRefusals;
use super::webhooks::{parse_json, read_body};
use crate::web::error::{ApiError, ErrorBody};

/// The formula's inputs.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreBody {
    /// RFM score from the CRM (0..4); `rfm_score` (the seed's name) is accepted too.
    #[serde(alias = "rfm_score")]
    #[schema(minimum = 0, maximum = 4)]
    rfm: f64,
    /// Opens and clicks counted by the CRM; `engagement_events` (the seed's name) is
    /// accepted too.
    #[serde(default, alias = "engagement_events")]
    #[schema(minimum = 0)]
    engagement: i64,
    #[serde(default)]
    #[schema(minimum = 0)]
    purchases: i64,
    /// Days since the last purchase; null or absent when none.
    #[schema(minimum = 0)]
    days_since_purchase: Option<i64>,
}

/// Compute the lead-score formula.
///
/// `50 + int(rfm×10) + min(engagement×2, 20) + min(purchases×5, 25) − recency penalty`
/// (5 after 30 days, 15 after 90, 30 after 180), clamped to 0..100, term by term.
#[utoipa::path(
    post, path = "/api/score", tag = "contacts", operation_id = "ComputeScore",
    request_body(content = ScoreBody, description = "The formula's inputs: RFM score, engagement events, purchases, days since the last purchase"),
    responses(
        (status = 200, description = "Each term and the score", body = ScoreBreakdown),
        (status = 400, description = "Invalid input; `field` names it", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
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
