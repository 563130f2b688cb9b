//! Reading and fixing data: contacts, their history, events.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Path, Query};
use super::openapi::{AdminRefusals, ContactKeyParam};
use super::webhooks::{parse_json, read_body};
use crate::import::ImportReport;
use crate::ops::export::export_contact;
use crate::store::audit::AuditKind;
use crate::store::{
    ContactFilter, ContactKey, ContactUpdate, ErasureReport, EventQuery, EventRow, HistoryRow, StoredContact,
};
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::error::{ApiError, ErrorBody};

fn key(raw: &str) -> Result<ContactKey, ApiError> {
    Ok(ContactKey::parse(raw)?)
}

/// Get a contact.
///
/// The contact by email or client code: identity, segment, score, tags, counters and
/// opt-out flags.
#[utoipa::path(
    get, path = "/api/contacts/{key}", tag = "contacts", operation_id = "GetContact",
    params(ContactKeyParam),
    responses(
        (status = 200, description = "The contact and its runs", body = ContactWithRuns),
        (status = 400, description = "The key is neither an email nor a client code", body = ErrorBody),
        (status = 404, description = "No such contact", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn get(State(app): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let key = key(&raw)?;
    let Some(contact) = app.store.contact(key.clone()).await? else {
        return Err(ApiError::NotFound(format!("no contact {raw:?}")));
    };
    let runs = contact_runs(&app, key).await?;
    Ok(Json(ContactWithRuns { contact, runs }).into_response())
}

/// A contact with its follow-up runs.
#[derive(Serialize, ToSchema)]
pub struct ContactWithRuns {
    #[serde(flatten)]
    contact: StoredContact,
    /// Active runs, and those that ended in the last 90 days, newest first.
    runs: Vec<crate::store::runs::RunView>,
}

/// A contact's active runs and those that ended in the last 90 days.
pub async fn contact_runs(app: &AppState, key: ContactKey) -> Result<Vec<crate::store::runs::RunView>, ApiError> {
    let filter = crate::store::runs::RunFilter {
        ended_since: Some((app.clock)() - chrono::Duration::days(90)),
        limit: 200,
        ..Default::default()
    };
    Ok(app.store.runs(filter, Some(key)).await?)
}

/// Create or update a contact.
///
/// Links an email and a client code, sets CRM data. Fields left out stay as they are.
/// Changing RFM, purchases or the last purchase date recomputes the formula's score.
#[utoipa::path(
    put, path = "/api/contacts/{key}", tag = "contacts", operation_id = "PutContact",
    params(ContactKeyParam),
    request_body(content = ContactUpdate, description = "The fields to set; absent fields are left as they are"),
    responses(
        (status = 200, description = "Updated", body = StoredContact),
        (status = 201, description = "Created", body = StoredContact),
        (status = 400, description = "Invalid field", body = ErrorBody),
        (status = 409, description = "The email or client code belongs to another contact", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn put(
    State(app): State<AppState>,
    actor: Actor,
    Path(raw): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    // Field names only: the values are personal data.
    let fields: Vec<&str> = value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    let audit = actor.audit(AuditKind::Contacts, "put").summary(format!("fields: {}", fields.join(", ")));
    let update: ContactUpdate = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_contact", format!("{e}; accepted fields: email, client_code, first_name, last_name, phone, segment, rfm_score (0..4), purchases, total_spent, last_purchase_at (RFC 3339), attributes")))?;
    let key = key(&raw)?;
    let (stored, created) = audited(&app, audit, |a| app.store.upsert_contact(key, update, a)).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// At most this many rows, newest last (1..10000, default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    /// The key asked for.
    contact: String,
    history: Vec<HistoryRow>,
}

/// A contact's history.
///
/// Every score, tag, segment and flag change, with the event and rule behind it and the
/// value before and after.
#[utoipa::path(
    get, path = "/api/contacts/{key}/history", tag = "contacts", operation_id = "GetContactHistory",
    params(ContactKeyParam, HistoryParams),
    responses(
        (status = 200, description = "The newest `limit` changes, oldest first", body = HistoryPage),
        (status = 400, description = "Invalid key or parameter", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn history(
    State(app): State<AppState>,
    Path(raw): Path<String>,
    Query(p): Query<HistoryParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(1000).clamp(1, 10_000);
    let rows = app.store.history(key(&raw)?, limit).await?;
    Ok(Json(HistoryPage { contact: raw, history: rows }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only this contact's events (email or client code).
    contact: Option<String>,
    /// Only events at or after this time (RFC 3339 or a date).
    since: Option<String>,
    /// At most this many events (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    events: Vec<EventRow>,
}

/// List stored events.
///
/// The seed's log fields (`timestamp, event_type, email, message_id, link, source`) plus
/// Relance's id, the sender's id, the trigger, the dedupe key and the raw payload.
#[utoipa::path(
    get, path = "/api/events", tag = "events", operation_id = "ListEvents",
    params(EventParams),
    responses(
        (status = 200, description = "Events in commit order", body = EventsPage),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn events(State(app): State<AppState>, Query(p): Query<EventParams>) -> Result<Response, ApiError> {
    let query = EventQuery {
        contact: p.contact.as_deref().map(key).transpose()?,
        since: p.since.as_deref().map(crate::ops::parse_since).transpose()?,
        after_seq: None,
        newest: false,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let rows = app.store.events(query).await?;
    Ok(Json(EventsPage { events: rows }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only contacts whose email or client code starts with this text.
    search: Option<String>,
    /// Only this segment.
    segment: Option<String>,
    /// Only contacts with this tag.
    tag: Option<String>,
    /// Score at least this (0..100).
    #[param(minimum = 0, maximum = 100)]
    score_min: Option<u8>,
    /// Score at most this (0..100).
    #[param(minimum = 0, maximum = 100)]
    score_max: Option<u8>,
    /// Only contacts changed at or after this time (RFC 3339 or a date).
    updated_since: Option<String>,
    /// Page size (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactsPage {
    contacts: Vec<StoredContact>,
    /// Pass back as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// List contacts.
///
/// Filters combine; pages are ordered by creation. Pass back `next_cursor` until it is
/// null.
#[utoipa::path(
    get, path = "/api/contacts", tag = "contacts", operation_id = "ListContacts",
    params(ListParams),
    responses(
        (status = 200, description = "One page of contacts", body = ContactsPage),
        (status = 400, description = "Invalid filter or cursor", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
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
                crate::ops::parse_since(raw).map_err(|_| {
                    ApiError::invalid_field("updated_since", "updated_since: expected RFC 3339 or a date (2026-01-31)")
                })
            })
            .transpose()?,
        search: p.search.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        after_id,
        limit,
    };
    let page = app.store.list_contacts(filter).await?;
    let next = (page.len() == limit).then(|| page.last().map(|c| format!("c{}", c.id))).flatten();
    Ok(Json(ContactsPage { contacts: page, next_cursor: next }).into_response())
}

/// Export everything held about a contact for GDPR access.
///
/// The contact, its history, its events with their payloads and its actions, in one
/// document: the answer to a subject-access request.
#[utoipa::path(
    get, path = "/api/contacts/{key}/export", tag = "contacts", operation_id = "ExportContact",
    params(ContactKeyParam),
    responses(
        (status = 200, description = "The contact, its history, events and actions", body = crate::ops::export::ContactExport),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 404, description = "No such contact", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn export(State(app): State<AppState>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    match export_contact(&*app.store, key(&raw)?, (app.clock)()).await? {
        Some(export) => Ok(Json(export).into_response()),
        None => Err(ApiError::NotFound(format!("no contact {raw:?}"))),
    }
}

#[derive(Serialize, ToSchema)]
pub struct Erased {
    /// Always `erased`.
    status: &'static str,
    report: ErasureReport,
}

/// Erase a contact under GDPR.
///
/// The contact's identity and personal data go, its events are anonymised and its pending
/// actions cancelled; anonymous counts stay.
#[utoipa::path(
    delete, path = "/api/contacts/{key}", tag = "contacts", operation_id = "EraseContact",
    params(ContactKeyParam),
    responses(
        (status = 200, description = "Erased", body = Erased),
        (status = 400, description = "Invalid key", body = ErrorBody),
        (status = 404, description = "No such contact", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn erase(State(app): State<AppState>, actor: Actor, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let key = key(&raw)?;
    let audit = actor.audit(AuditKind::Contacts, "erase").summary("GDPR erasure");
    let report = audited(&app, audit, |a| app.store.erase_contact(key, a)).await?;
    tracing::info!(?report, "contact erased");
    Ok(Json(Erased { status: "erased", report }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Import the valid rows and report the others, instead of importing nothing.
    #[serde(default)]
    skip_invalid: bool,
}

/// A refused import: the report of rejected rows, or an error about the request itself.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // Documentation only: the handler answers one or the other directly.
pub enum ImportRefused {
    Report(ImportReport),
    Error(ErrorBody),
}

/// Import contacts from a CRM CSV file.
///
/// Columns `client_code, email, first_name, last_name, phone, segment, rfm_score,
/// purchases, total_spent, last_purchase_date`. A bad row stops everything (400 with the
/// report) unless `skip_invalid=true`.
#[utoipa::path(
    post, path = "/api/contacts/import", tag = "contacts", operation_id = "ImportContacts",
    params(ImportParams),
    request_body(content = String, content_type = "text/csv", description = "The CSV file, header first"),
    responses(
        (status = 200, description = "Imported: rows created, updated and rejected", body = ImportReport),
        (status = 400, description = "Nothing imported: the rejected rows with line and reason, or an invalid request", body = ImportRefused),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn import(
    State(app): State<AppState>,
    actor: Actor,
    Query(p): Query<ImportParams>,
    body: Body,
) -> Result<Response, ApiError> {
    let data = read_body(body).await?;
    let options = crate::import::ImportOptions { default_country: app.settings.import_default_country.clone() };
    let audit =
        actor.audit(AuditKind::Contacts, "import").summary(format!("CSV import (skip_invalid={})", p.skip_invalid));
    let report = crate::import::import(&*app.store, &data, p.skip_invalid, &options, audit).await?;
    let status = if report.imported { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    Ok((status, Json(report)).into_response())
}

/// Export every contact as CSV.
///
/// One row per contact in id order: identity, segment, the lead score, one `score_<name>`
/// column per declared score (valued now, decay included), tags (`;`-separated),
/// purchases, total spent, last purchase and activity (ISO-8601 UTC) and the opt-out flags.
#[utoipa::path(
    get, path = "/api/contacts.csv", tag = "contacts", operation_id = "ExportContactsCsv",
    responses(
        (status = 200, description = "Every contact, header first", content_type = "text/csv", body = String),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn export_csv(State(app): State<AppState>) -> Result<Response, ApiError> {
    let rules = app.rules.current();
    let mut body = Vec::new();
    crate::ops::contacts_csv::write_contacts_csv(&*app.store, rules.engine.rules().scores(), (app.clock)(), &mut body)
        .await?;
    let disposition = "attachment; filename=\"contacts.csv\"";
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, disposition)], body)
        .into_response())
}
