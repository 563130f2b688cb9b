//! `POST /webhook/email`, `POST /webhook/behavior`, `GET /webhook/health`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use relance_core::inbound::{BrevoOptions, parse_behavior, parse_brevo, parse_many};
use relance_core::{Contact, InboundEvent};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::openapi::payloads::{BehaviorDelivery, BrevoDelivery, IdempotencyKey};
use crate::store::{ActionRecord, IngestResult, Store};

/// Bodies above this are refused with 413 (Brevo batches are at most 500 small events).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")))
}

/// Receive Brevo email events.
///
/// Brevo transactional and marketing webhooks: one event or an array of them (all stored
/// or none). Answered only once the events, the contact changes and the scheduled actions
/// are committed; a duplicate delivery answers `duplicate: true` and changes nothing.
#[utoipa::path(
    post, path = "/webhook/email", tag = "webhooks", operation_id = "ReceiveBrevoEvent",
    request_body(content = BrevoDelivery, description = "One Brevo event, or an array of them"),
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Stored (or a duplicate); the answer for each event", body = WebhookAnswer),
        (status = 400, description = "Not a known Brevo event; `field` and `accepted` say why", body = ErrorBody),
        (status = 401, description = "Missing or wrong webhook token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 429, description = "Could not be stored now; retry after `Retry-After` seconds", body = ErrorBody),
    ),
    security(("webhook_token" = []))
)]
#[tracing::instrument(name = "webhook_email", skip_all)]
pub async fn email(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    let now = (app.clock)();
    let opts = BrevoOptions { proxy_opens_are_opens: app.settings.proxy_opens_are_opens };
    let events = parse_many(&value, |v| parse_brevo(v, now, opts))?;
    ingest(&app, &headers, value.is_array(), events).await
}

/// Receive website behaviour events.
///
/// Visits, clicks, forms and purchases from the website or a flow: one event or an array
/// (all stored or none). `event_id` or an `Idempotency-Key` header makes a redelivery a
/// no-op.
#[utoipa::path(
    post, path = "/webhook/behavior", tag = "webhooks", operation_id = "ReceiveBehaviorEvent",
    request_body(content = BehaviorDelivery, description = "One behaviour event, or an array of them"),
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Stored (or a duplicate); the answer for each event", body = WebhookAnswer),
        (status = 400, description = "Invalid event; `field` and `accepted` say why", body = ErrorBody),
        (status = 401, description = "Missing or wrong webhook token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 429, description = "Could not be stored now; retry after `Retry-After` seconds", body = ErrorBody),
    ),
    security(("webhook_token" = []))
)]
#[tracing::instrument(name = "webhook_behavior", skip_all)]
pub async fn behavior(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    let now = (app.clock)();
    let events = parse_many(&value, |v| parse_behavior(v, now))?;
    ingest(&app, &headers, value.is_array(), events).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    status: &'static str,
    /// `ok` or `unavailable`.
    database: &'static str,
    version: &'static str,
}

/// Health check.
///
/// For load balancers and uptime checks; no token needed.
#[utoipa::path(
    get, path = "/webhook/health", tag = "webhooks", operation_id = "Health",
    responses(
        (status = 200, description = "Up, database reachable", body = Health),
        (status = 503, description = "Up, database unreachable", body = Health),
    )
)]
pub async fn health(State(app): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    match app.store.ping().await {
        Ok(()) => Json(Health { status: "ok", database: "ok", version }).into_response(),
        Err(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: "degraded", database: "unavailable", version }))
                .into_response()
        }
    }
}

/// `Idempotency-Key` gives a dedupe key to events that have none of their own.
fn apply_idempotency_key(headers: &HeaderMap, events: &mut [InboundEvent]) -> Result<(), ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(()) };
    let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200).ok_or_else(|| {
        ApiError::invalid_field("Idempotency-Key", "Idempotency-Key must be 1 to 200 visible ASCII characters")
    })?;
    let many = events.len() > 1;
    for (i, e) in events.iter_mut().enumerate().filter(|(_, e)| e.dedupe_key.is_none()) {
        e.dedupe_key = Some(if many { format!("idem:{key}:{i}") } else { format!("idem:{key}") });
    }
    Ok(())
}

async fn ingest(
    app: &AppState,
    headers: &HeaderMap,
    array: bool,
    mut events: Vec<InboundEvent>,
) -> Result<Response, ApiError> {
    apply_idempotency_key(headers, &mut events)?;
    let sources: Vec<&'static str> = events.iter().map(|e| e.event.source.as_str()).collect();
    let started = std::time::Instant::now();
    let results = match app.store.ingest(events).await {
        Ok(r) => r,
        Err(e) => {
            let reason = if matches!(e, crate::store::StoreError::Overloaded) { "overloaded" } else { "unavailable" };
            app.metrics.refused.get_or_create(&vec![("reason", reason.to_owned())]).inc();
            return Err(e.into());
        }
    };
    let m = &app.metrics;
    m.ingest_seconds.observe(started.elapsed().as_secs_f64());
    m.delivery_events.observe(results.len() as f64);
    for (r, source) in results.iter().zip(sources) {
        if r.duplicate {
            m.duplicates.get_or_create(&vec![("source", source.to_owned())]).inc();
            continue;
        }
        let trigger = r.trigger.map(|t| t.as_str()).unwrap_or("none").to_owned();
        m.events.get_or_create(&vec![("source", source.to_owned()), ("trigger", trigger)]).inc();
        for a in &r.actions {
            let labels = vec![
                ("action_type", a.fired.action_type.as_str().to_owned()),
                ("status", a.fired.status.as_str().to_owned()),
            ];
            m.actions.get_or_create(&labels).inc();
        }
    }
    let answers: Vec<EventAnswer> = results.into_iter().map(EventAnswer::from).collect();
    let body = if array {
        WebhookAnswer::Batch(BatchAnswer { status: "received", results: answers })
    } else {
        // `parse_many` yields at least one event for a non-array body.
        let one = answers.into_iter().next().ok_or_else(|| anyhow::anyhow!("no answer for a single event"))?;
        WebhookAnswer::One(Box::new(one))
    };
    Ok(Json(body).into_response())
}

/// The answer to a webhook: one event's answer for an object body, `results` for an array.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum WebhookAnswer {
    One(Box<EventAnswer>),
    Batch(BatchAnswer),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    /// Always `received`.
    status: &'static str,
    /// One answer per event, in the order sent.
    results: Vec<EventAnswer>,
}

/// What a sender learns about one event (DESIGN §6).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventAnswer {
    /// Always `received`.
    status: &'static str,
    /// Relance's id of the stored event (the first delivery's id for a duplicate).
    event_id: String,
    /// `true` when this event was already stored: nothing changed.
    duplicate: bool,
    /// The trigger the event maps to, or null when it triggers nothing.
    trigger: Option<&'static str>,
    contact: ContactSummary,
    /// Every action the rules fired, with its job when it runs later or outside.
    actions: Vec<ActionRecord>,
}

/// The contact after the event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactSummary {
    email: Option<String>,
    client_code: Option<String>,
    segment: String,
    score: u8,
    tags: Vec<String>,
    unsubscribed: bool,
    complained: bool,
    email_invalid: bool,
    purchases: u32,
}

impl From<Contact> for ContactSummary {
    fn from(c: Contact) -> Self {
        ContactSummary {
            email: c.email.map(|e| e.to_string()),
            client_code: c.client_code.map(|c| c.to_string()),
            segment: c.segment,
            score: c.score.value(),
            tags: c.tags.into_iter().collect(),
            unsubscribed: c.unsubscribed,
            complained: c.complained,
            email_invalid: c.email_invalid,
            purchases: c.purchases,
        }
    }
}

impl From<IngestResult> for EventAnswer {
    fn from(r: IngestResult) -> Self {
        EventAnswer {
            status: "received",
            event_id: r.event_id,
            duplicate: r.duplicate,
            trigger: r.trigger.map(|t| t.as_str()),
            contact: r.contact.into(),
            actions: r.actions,
        }
    }
}
