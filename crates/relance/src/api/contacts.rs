//! Reading and fixing data: contacts, their history, events.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::webhooks::{parse_json, read_body};
use crate::store::{ContactKey, ContactUpdate, EventQuery, Store};

fn key(raw: &str) -> Result<ContactKey, ApiError> {
    Ok(ContactKey::parse(raw)?)
}

pub async fn get(State(app): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    match app.store.contact(key(&raw)?).await? {
        Some(c) => Ok(Json(c).into_response()),
        None => Err(ApiError::NotFound(format!("no contact {raw:?}"))),
    }
}

pub async fn put(State(app): State<AppState>, Path(raw): Path<String>, body: Body) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    let update: ContactUpdate = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_contact", format!("{e}; accepted fields: email, client_code, first_name, last_name, phone, segment, rfm_score (0..4), purchases, total_spent, last_purchase_at (RFC 3339), attributes")))?;
    let (stored, created) = app.store.upsert_contact(key(&raw)?, update).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    limit: Option<usize>,
}

pub async fn history(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    Query(p): Query<HistoryParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(1000).clamp(1, 10_000);
    let rows = app.store.history(key(&raw)?, limit).await?;
    Ok(Json(json!({"contact": raw, "history": rows})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    contact: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
}

pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| {
            ApiError::invalid_field("since", "since: expected RFC 3339 (2026-01-31T08:00:00Z) or a date (2026-01-31)")
        })
}

pub async fn events(State(app): State<AppState>, Query(p): Query<EventParams>) -> Result<Response, ApiError> {
    let query = EventQuery {
        contact: p.contact.as_deref().map(key).transpose()?,
        since: p.since.as_deref().map(parse_since).transpose()?,
        after_seq: None,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let rows = app.store.events(query).await?;
    Ok(Json(json!({"events": rows})).into_response())
}
