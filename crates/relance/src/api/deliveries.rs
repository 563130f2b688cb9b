//! `GET /api/deliveries/rejected`: webhook items that could never be stored.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Query;
use super::openapi::AdminRefusals;
use crate::store::rejected::RejectedDelivery;
use crate::web::AppState;
use crate::web::error::{ApiError, ErrorBody};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RejectedParams {
    /// At most this many, most recently received first (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RejectedPage {
    rejected: Vec<RejectedDelivery>,
}

/// List rejected webhook items.
///
/// Items of a Brevo delivery that can never be stored (not an object, no email, not
/// JSON), kept as received with the reason. The batch they came in was answered 200 so
/// that Brevo kept its other items; a redelivered item counts up `times`.
#[utoipa::path(
    get, path = "/api/deliveries/rejected", tag = "events", operation_id = "ListRejectedDeliveries",
    params(RejectedParams),
    responses(
        (status = 200, description = "Rejected items, most recent first", body = RejectedPage),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn rejected(State(app): State<AppState>, Query(p): Query<RejectedParams>) -> Result<Response, ApiError> {
    let rows = app.store.rejected_deliveries(p.limit.unwrap_or(100).clamp(1, 1000)).await?;
    Ok(Json(RejectedPage { rejected: rows }).into_response())
}
