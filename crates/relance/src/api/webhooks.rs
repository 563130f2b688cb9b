//! `POST /webhook/email`, `POST /webhook/behavior`, `GET /webhook/health`.

use anyhow::Context;
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use relance_core::inbound::{BrevoOptions, parse_behavior, parse_brevo, parse_each, parse_many};
use relance_core::{Contact, InboundEvent};
use serde::Serialize;
use serde_json::Value;

use super::openapi::payloads::{BehaviorDelivery, BrevoDelivery, IdempotencyKey};
use crate::metrics::{ActionLabels, EventLabels, SourceLabels};
use crate::store::rejected::NewRejected;
use crate::store::{ActionRecord, IngestResult};
use crate::web::AppState;
use crate::web::error::{ApiError, ErrorBody};

/// Bodies above this are refused with 413 (Brevo batches are at most 500 small events).
use crate::web::MAX_BODY_BYTES;

pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| ApiError::PayloadTooLarge(MAX_BODY_BYTES))
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        // Power Automate Desktop's "Invoke web service" URL-encodes the body when its
        // "Encode request body" option is on: `%7B%22client_code%22…`.
        let start: Vec<u8> = bytes.iter().take(3).map(u8::to_ascii_uppercase).collect();
        if start == b"%7B" || start == b"%5B" {
            return ApiError::bad_request(
                "invalid_json",
                "the body is URL-encoded JSON: in Power Automate Desktop's \"Invoke web service\" action, turn off \
                 \"Encode request body\" (and send content-type application/json)",
            );
        }
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

/// Receive Brevo email events.
///
/// Brevo transactional and marketing webhooks: one event or an array of them. Answered
/// only once the events, the contact changes and the scheduled actions are committed; a
/// duplicate delivery answers `duplicate: true` and changes nothing. An event name
/// Relance does not know is stored (`recognised: false`). In an array each item stands
/// alone: an item that can never be stored (not an object, no email) gets
/// `status: "rejected"` in its `results` entry, is kept in `/api/deliveries/rejected`, and
/// the batch is still answered 200, because Brevo drops a delivery answered 4xx.
#[utoipa::path(
    post, path = "/webhook/email", tag = "webhooks", operation_id = "ReceiveBrevoEvent",
    request_body(content = BrevoDelivery, description = "One Brevo event, or an array of them"),
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Stored (or a duplicate); the answer for each event, or for each item of an array", body = WebhookAnswer),
        (status = 400, description = "A single event that can never be stored (no email, not JSON); `field` says why", body = ErrorBody),
        (status = 401, description = "Missing or wrong webhook token", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 429, description = "Could not be stored now; retry after `Retry-After` seconds", body = ErrorBody),
    ),
    security(("webhook_token" = []))
)]
pub async fn email(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let value = match parse_json(&bytes) {
        Ok(v) => v,
        Err(e) => {
            let kept = rejected_item("body", e.to_string(), String::from_utf8_lossy(&bytes).into_owned());
            keep_rejected(&app, vec![kept]).await?;
            return Err(e);
        }
    };
    let now = (app.clock)();
    let opts = BrevoOptions { proxy_opens_are_opens: app.settings.proxy_opens_are_opens };
    let items = match parse_each(&value, |v| parse_brevo(v, now, opts)) {
        Ok(items) => items,
        Err(e) => {
            if !matches!(&value, Value::Array(a) if a.is_empty()) {
                keep_rejected(&app, vec![rejected_item(&e.field, e.message.clone(), value.to_string())]).await?;
            }
            return Err(e.into());
        }
    };
    // One path for one object and for an array: each item stored or refused on its own.
    let raw_items: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut events = Vec::new();
    let mut refused = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Ok(event) => events.push((index, event)),
            Err(e) => refused.push((index, e)),
        }
    }
    let many = raw_items.len() > 1;
    let stored = if events.is_empty() { Vec::new() } else { store_events(&app, &headers, many, events).await? };
    // After the events: if keeping the bad items fails, the 429 makes Brevo redeliver,
    // and the stored items come back as duplicates.
    let kept =
        refused.iter().map(|(i, e)| rejected_item(&e.field, e.message.clone(), raw_items[*i].to_string())).collect();
    keep_rejected(&app, kept).await?;

    if !value.is_array() {
        // A single object: its answer, or a 400 naming the field (it is kept above).
        if let Some((_, e)) = refused.into_iter().next() {
            return Err(e.into());
        }
        let (_, one) = stored.into_iter().next().ok_or_else(|| anyhow::anyhow!("no answer for a single event"))?;
        return answer(&WebhookAnswer::One(Box::new(one)));
    }
    let mut results: Vec<Option<ItemAnswer>> = (0..raw_items.len()).map(|_| None).collect();
    for (index, answer) in stored {
        results[index] = Some(ItemAnswer::Stored(Box::new(answer)));
    }
    for (index, e) in refused {
        results[index] = Some(ItemAnswer::Rejected(RejectedAnswer {
            status: "rejected",
            error: "invalid_event",
            detail: e.to_string(),
            field: e.field,
        }));
    }
    let results = results.into_iter().flatten().collect();
    answer(&WebhookAnswer::Batch(BatchAnswer { status: "received", results }))
}

fn rejected_item(field: &str, error: String, payload: String) -> NewRejected {
    NewRejected { source: "brevo", field: field.to_owned(), error, payload }
}

/// Keeps items that can never be stored for a person to see; counted by field.
async fn keep_rejected(app: &AppState, items: Vec<NewRejected>) -> Result<(), ApiError> {
    if items.is_empty() {
        return Ok(());
    }
    for item in &items {
        let labels = vec![("source", item.source.to_owned()), ("field", crate::metrics::label_value(&item.field))];
        app.metrics.rejected.get_or_create(&labels).inc();
    }
    tracing::warn!(items = items.len(), field = %items[0].field, "webhook items refused: kept in /api/deliveries/rejected");
    app.store.record_rejected(items).await.map_err(ApiError::from)
}

/// Receive website behaviour events.
///
/// Visits, clicks, forms and purchases from the website or a flow: one event or an array
/// (all stored or none: a 400 names the item's index and field, and the website can fix
/// and resend). `event_id` or an `Idempotency-Key` header makes a redelivery a no-op.
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
pub async fn behavior(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let value = parse_json(&read_body(body).await?)?;
    let now = (app.clock)();
    let events: Vec<(usize, InboundEvent)> =
        parse_many(&value, |v| parse_behavior(v, now))?.into_iter().enumerate().collect();
    let many = events.len() > 1;
    let answers = store_events(&app, &headers, many, events).await?;
    let body = if value.is_array() {
        let results = answers.into_iter().map(|(_, a)| ItemAnswer::Stored(Box::new(a))).collect();
        WebhookAnswer::Batch(BatchAnswer { status: "received", results })
    } else {
        let (_, one) = answers.into_iter().next().ok_or_else(|| anyhow::anyhow!("no answer for a single event"))?;
        WebhookAnswer::One(Box::new(one))
    };
    answer(&body)
}

/// Room for a typical answer: a purchase's, with its contact and five actions, is 1.5 KB.
const ANSWER_CAPACITY: usize = 2048;

/// A webhook's answer, serialised into one buffer of its usual size. axum's `Json` starts
/// at 128 bytes and grew four times for a purchase's answer (callgrind: 1,100
/// instructions per answer in `BytesMut::reserve_inner`).
fn answer(body: &WebhookAnswer) -> Result<Response, ApiError> {
    let mut bytes = Vec::with_capacity(ANSWER_CAPACITY);
    serde_json::to_writer(&mut bytes, body).context("serialising a webhook answer")?;
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response())
}

/// The seed's health answer (`{"status": "healthy", "timestamp": …}`), plus ours.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `healthy`, or `unhealthy` when the database does not answer (monitoring built on
    /// the seed's Flask server checks `healthy`).
    status: &'static str,
    /// When this answer was made.
    timestamp: chrono::DateTime<chrono::Utc>,
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
    let timestamp = (app.clock)();
    match app.store.ping().await {
        Ok(()) => Json(Health { status: "healthy", timestamp, database: "ok", version }).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Health { status: "unhealthy", timestamp, database: "unavailable", version }),
        )
            .into_response(),
    }
}

/// `Idempotency-Key` gives a dedupe key to events that have none of their own; in an
/// array, the item's position makes each one distinct.
fn apply_idempotency_key(
    headers: &HeaderMap,
    many: bool,
    events: &mut [(usize, InboundEvent)],
) -> Result<(), ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(()) };
    let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 200).ok_or_else(|| {
        ApiError::invalid_field("Idempotency-Key", "Idempotency-Key must be 1 to 200 visible ASCII characters")
    })?;
    for (i, e) in events.iter_mut().filter(|(_, e)| e.dedupe_key.is_none()) {
        e.dedupe_key = Some(if many { format!("idem:{key}:{i}") } else { format!("idem:{key}") });
    }
    Ok(())
}

/// Stores events (each with its position in the delivery) and answers each one.
async fn store_events(
    app: &AppState,
    headers: &HeaderMap,
    many: bool,
    mut events: Vec<(usize, InboundEvent)>,
) -> Result<Vec<(usize, EventAnswer)>, ApiError> {
    apply_idempotency_key(headers, many, &mut events)?;
    let facts: Vec<(usize, &'static str, bool)> =
        events.iter().map(|(i, e)| (*i, e.event.source.as_str(), e.recognised)).collect();
    let started = std::time::Instant::now();
    let results = match app.store.ingest(events.into_iter().map(|(_, e)| e).collect()).await {
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
    for (r, &(_, source, _)) in results.iter().zip(&facts) {
        if r.duplicate {
            m.duplicates.get_or_create(&SourceLabels { source }).inc();
            continue;
        }
        let trigger = r.trigger.map(|t| t.as_str()).unwrap_or("none");
        m.events.get_or_create(&EventLabels { source, trigger }).inc();
        if let Some(name) = &r.unrecognised {
            let labels = vec![("source", source.to_owned()), ("name", crate::metrics::label_value(name))];
            m.unrecognised.get_or_create(&labels).inc();
        }
        for a in &r.actions {
            m.actions
                .get_or_create(&ActionLabels {
                    action_type: a.fired.action_type.as_str(),
                    status: a.fired.status.as_str(),
                })
                .inc();
        }
        for run in &r.runs {
            let change = serde_json::to_value(run.change).ok().and_then(|v| v.as_str().map(str::to_owned));
            let labels =
                vec![("rule_id", crate::metrics::label_value(&run.rule_id)), ("change", change.unwrap_or_default())];
            m.run_changes.get_or_create(&labels).inc();
        }
    }
    Ok(results
        .into_iter()
        .zip(facts)
        .map(|(r, (index, _, recognised))| (index, EventAnswer::new(r, recognised)))
        .collect())
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
    /// One answer per item, in the order sent.
    results: Vec<ItemAnswer>,
}

/// What became of one item of an array.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ItemAnswer {
    Stored(Box<EventAnswer>),
    Rejected(RejectedAnswer),
}

/// An item that can never be stored (kept in `GET /api/deliveries/rejected`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RejectedAnswer {
    /// Always `rejected`.
    status: &'static str,
    /// Always `invalid_event`.
    error: &'static str,
    /// What is wrong, naming the field.
    detail: String,
    /// The field that makes the item unstorable.
    field: String,
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
    /// `false` when Relance does not know the event's name: stored, no rule fires on it.
    recognised: bool,
    contact: ContactSummary,
    /// Every action the rules fired, with its job when it runs later or outside.
    actions: Vec<ActionRecord>,
    /// What the event did to follow-up runs: one entry per rule concerned.
    runs: Vec<relance_core::plan::RunChange>,
    /// Rules that matched but are paused (the kill switch): they did nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    paused: Vec<PausedFiring>,
}

/// A paused rule that would have fired.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PausedFiring {
    rule_id: String,
    /// Always `paused`.
    status: &'static str,
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

impl EventAnswer {
    fn new(r: IngestResult, recognised: bool) -> Self {
        EventAnswer {
            status: "received",
            event_id: r.event_id,
            duplicate: r.duplicate,
            trigger: r.trigger.map(|t| t.as_str()),
            recognised,
            contact: r.contact.into(),
            actions: r.actions,
            runs: r.runs,
            paused: r.paused.into_iter().map(|rule_id| PausedFiring { rule_id, status: "paused" }).collect(),
        }
    }
}
