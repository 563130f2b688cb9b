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
use crate::store::jobs::JobFilter;
use crate::store::{ContactFilter, ContactKey, ContactUpdate, EventQuery, Store};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    segment: Option<String>,
    tag: Option<String>,
    score_min: Option<u8>,
    score_max: Option<u8>,
    updated_since: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/contacts`: filters and cursor pagination (the cursor is opaque; pass back
/// `next_cursor` until it is null).
pub async fn list(State(app): State<AppState>, Query(p): Query<ListParams>) -> Result<Response, ApiError> {
    if let (Some(lo), Some(hi)) = (p.score_min, p.score_max)
        && lo > hi
    {
        return Err(ApiError::invalid_field("score_min", "score_min is above score_max"));
    }
    if p.score_min.is_some_and(|s| s > 100) || p.score_max.is_some_and(|s| s > 100) {
        return Err(ApiError::invalid_field("score_min", "scores are between 0 and 100"));
    }
    let after_id = match p.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.strip_prefix('c').and_then(|n| n.parse::<i64>().ok()).ok_or_else(|| {
            ApiError::invalid_field("cursor", "cursor: pass back the next_cursor of the previous page")
        })?,
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let filter = ContactFilter {
        segment: p.segment,
        tag: p.tag,
        score_min: p.score_min,
        score_max: p.score_max,
        updated_since: p
            .updated_since
            .as_deref()
            .map(|raw| {
                parse_since(raw).map_err(|_| {
                    ApiError::invalid_field("updated_since", "updated_since: expected RFC 3339 or a date (2026-01-31)")
                })
            })
            .transpose()?,
        after_id,
        limit,
    };
    let page = app.store.list_contacts(filter).await?;
    let next = (page.len() == limit).then(|| page.last().map(|c| format!("c{}", c.id))).flatten();
    Ok(Json(json!({"contacts": page, "next_cursor": next})).into_response())
}

/// `GET /api/contacts/{key}/export`: everything held about a contact (GDPR access).
pub async fn export(State(app): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let key = key(&raw)?;
    let Some(contact) = app.store.contact(key.clone()).await? else {
        return Err(ApiError::NotFound(format!("no contact {raw:?}")));
    };
    let history = app.store.history(key.clone(), 100_000).await?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = app
            .store
            .events(EventQuery {
                contact: Some(key.clone()),
                after_seq: Some(after),
                limit: 1000,
                ..EventQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page);
    }
    let jobs = app.store.jobs(JobFilter { limit: 100_000, ..JobFilter::default() }, Some(key)).await?;
    Ok(Json(json!({
        "exported_at": (app.clock)(),
        "contact": contact,
        "history": history,
        "events": events,
        "actions": jobs,
    }))
    .into_response())
}

/// `DELETE /api/contacts/{key}`: GDPR erasure. The contact's identity and personal data
/// go; anonymous counts stay.
pub async fn erase(State(app): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let report = app.store.erase_contact(key(&raw)?).await?;
    tracing::info!(?report, "contact erased");
    Ok(Json(json!({"status": "erased", "report": report})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    #[serde(default)]
    skip_invalid: bool,
}

/// `POST /api/contacts/import` with a CSV body: a report of rows created, updated and
/// rejected (line and reason). A bad row stops everything unless `?skip_invalid=true`.
pub async fn import(
    State(app): State<AppState>,
    Query(p): Query<ImportParams>,
    body: Body,
) -> Result<Response, ApiError> {
    let data = read_body(body).await?;
    let report = crate::import::import(&*app.store, &data, p.skip_invalid).await?;
    let status = if report.imported { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok((status, Json(report)).into_response())
}
