//! The one place where errors become HTTP: stable `{error, detail}` bodies for 4xx, an
//! opaque 500, and 429 with `Retry-After` whenever an event could not be stored (Brevo
//! retries 429 and drops 5xx).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relance_core::InboundError;
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { error: &'static str, detail: String, field: Option<String>, accepted: Vec<&'static str> },
    #[error("missing or wrong token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// Could not be stored now; retry after this many seconds.
    #[error("{detail}")]
    RetryLater { retry_after: u64, detail: &'static str },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest { error, detail: detail.into(), field: None, accepted: Vec::new() }
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            error: "invalid_field",
            detail: detail.into(),
            field: Some(field.to_owned()),
            accepted: Vec::new(),
        }
    }
}

impl From<InboundError> for ApiError {
    fn from(e: InboundError) -> Self {
        ApiError::BadRequest {
            error: "invalid_event",
            detail: e.to_string(),
            field: Some(e.field),
            accepted: e.accepted,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Overloaded => ApiError::RetryLater { retry_after: 1, detail: "busy: the ingest queue is full" },
            StoreError::Unavailable(source) => {
                tracing::warn!(error = format!("{source:#}"), "storage unavailable");
                ApiError::RetryLater { retry_after: 5, detail: "storage temporarily unavailable" }
            }
            StoreError::NotFound => ApiError::NotFound("no such contact".into()),
            StoreError::Invalid { field, message } => ApiError::invalid_field(&field, format!("{field}: {message}")),
            StoreError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::BadRequest { error, detail, field, accepted } => {
                let mut body = json!({"error": error, "detail": detail});
                if let Some(f) = field {
                    body["field"] = json!(f);
                }
                if !accepted.is_empty() {
                    body["accepted"] = json!(accepted);
                }
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::Unauthorized => {
                (StatusCode::UNAUTHORIZED, json!({"error": "unauthorized", "detail": self.to_string()}))
            }
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, json!({"error": "not_found", "detail": d})),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, json!({"error": "conflict", "detail": d})),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({"error": "payload_too_large", "detail": self.to_string()}))
            }
            ApiError::RetryLater { retry_after, detail } => {
                let mut resp = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"error": "retry_later", "detail": detail, "retry_after": retry_after})),
                )
                    .into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                return resp;
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "internal", "detail": "internal error"}))
            }
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
