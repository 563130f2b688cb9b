//! `GET /api/contacts/{key}/explain`, over [`crate::ops::explain`].

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::extract::Path;
use super::openapi::{AdminRefusals, ContactKeyParam};
use crate::ops::explain::{Explanation, explain_contact};
use crate::store::ContactKey;
use crate::web::AppState;
use crate::web::error::{ApiError, ErrorBody};

/// Explain a contact's score, tags and suppression.
///
/// The score as the formula's baseline plus each rule's change (with its event), each tag
/// with the rule that added it, why the contact is suppressed, and its pending actions.
#[utoipa::path(
    get, path = "/api/contacts/{key}/explain", tag = "contacts", operation_id = "ExplainContact",
    params(ContactKeyParam),
    responses(
        (status = 200, description = "The explanation", body = Explanation),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 404, description = "No such contact", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn get(State(app): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let key = ContactKey::parse(&raw)?;
    match explain_contact(&*app.store, key, (app.clock)(), app.rules.current().engine.rules().scores()).await? {
        Some(e) => Ok(Json(e).into_response()),
        None => Err(ApiError::NotFound(format!("no contact {raw:?}"))),
    }
}
