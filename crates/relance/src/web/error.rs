//! The one place where errors become HTTP: stable `{error, detail}` bodies for 4xx, an
//! opaque 500, and 429 with `Retry-After` whenever an event could not be stored (Brevo
//! retries 429 and drops 5xx).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use relance_core::InboundError;
use relance_core::rules::RuleError;
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { error: &'static str, detail: String, field: Option<String>, accepted: Vec<&'static str> },
    /// Names what was wrong and which credential the route expects, in which form; never
    /// a token's value.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the request lacks what it needs (a dashboard session's CSRF token).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Authenticated, but the caller's role does not open this route (names both roles).
    #[error("{0}")]
    RoleTooLow(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Not a webhook, and could not be answered in time.
    #[error("{0}")]
    Unavailable(&'static str),
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
            e @ StoreError::NotFound(_) => ApiError::NotFound(e.to_string()),
            StoreError::Invalid { field, message } => ApiError::invalid_field(&field, format!("{field}: {message}")),
            StoreError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

/// Every error answer (4xx, 429 and the opaque 500) has this shape.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `invalid_event`, `invalid_field`, `invalid_json`, `invalid_rules`,
    /// `unauthorized`, `not_found`, `conflict`, `payload_too_large`, `retry_later`, …
    pub error: String,
    /// What went wrong, for a human.
    pub detail: String,
    /// The offending field, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The values the field accepts, when they are a closed list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<String>,
    /// For 429: seconds to wait before retrying (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// For `invalid_rules`: every problem, located by rule and field path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RuleError>,
}

impl ErrorBody {
    pub fn new(error: &str, detail: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: error.to_owned(),
            detail: detail.into(),
            field: None,
            accepted: Vec::new(),
            retry_after: None,
            errors: Vec::new(),
        }
    }

    /// A rule set that does not validate: 400 with every problem.
    pub fn invalid_rules(detail: String, errors: Vec<RuleError>) -> Response {
        (StatusCode::BAD_REQUEST, Json(ErrorBody { errors, ..ErrorBody::new("invalid_rules", detail) })).into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            ApiError::BadRequest { error, detail, field, accepted } => {
                let body = ErrorBody {
                    field: field.clone(),
                    accepted: accepted.iter().map(|a| (*a).to_owned()).collect(),
                    ..ErrorBody::new(error, detail.clone())
                };
                (StatusCode::BAD_REQUEST, body)
            }
            ApiError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, ErrorBody::new("unauthorized", d.clone())),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, ErrorBody::new("forbidden", *d)),
            ApiError::RoleTooLow(d) => (StatusCode::FORBIDDEN, ErrorBody::new("role_too_low", d.clone())),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, ErrorBody::new("not_found", d.clone())),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, ErrorBody::new("conflict", d.clone())),
            ApiError::MethodNotAllowed(d) => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorBody::new("method_not_allowed", d.clone()))
            }
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, ErrorBody::new("unavailable", *d)),
            ApiError::PayloadTooLarge(_) => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorBody::new("payload_too_large", self.to_string()))
            }
            ApiError::RetryLater { retry_after, detail } => {
                let body = ErrorBody { retry_after: Some(*retry_after), ..ErrorBody::new("retry_later", *detail) };
                let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
                return resp;
            }
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorBody::new("internal", "internal error"))
            }
        };
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}
