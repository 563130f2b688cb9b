//! Inbound payloads (Brevo webhooks, website tracking) → events with their trigger,
//! identity and dedupe key. Pure: the webhook server and the CLI share them.

mod behavior;
mod brevo;
pub mod time;

use serde::Serialize;
use serde_json::Value;

use crate::contact::{ClientCode, Email};
use crate::event::Event;

pub use behavior::{BEHAVIOR_ACTIONS, MetadataFields, metadata_fields, parse_behavior};
pub use brevo::{BREVO_EVENTS, BrevoOptions, normalise_name, parse_brevo};

/// Who an event is about: at least one of the two is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    pub email: Option<Email>,
    pub client_code: Option<ClientCode>,
}

/// A parsed inbound event, ready to be stored and applied.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    pub identity: Identity,
    pub event: Event,
    /// Same key, same delivery: the second one changes nothing. `None` when the sender
    /// gave nothing to recognise a redelivery by.
    pub dedupe_key: Option<String>,
    /// The sender's own id (`event_id` of tracking events).
    pub sender_event_id: Option<String>,
    /// `false` for a Brevo event name Relance does not know: stored, triggers nothing,
    /// counted so that an operator notices a new name.
    pub recognised: bool,
    /// The payload as received.
    pub raw: Value,
}

/// A payload problem, naming the field and, where it helps, what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{field}: {message}")]
pub struct InboundError {
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<&'static str>,
}

impl InboundError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> InboundError {
        InboundError { field: field.into(), message: message.into(), accepted: Vec::new() }
    }

    pub(crate) fn with_accepted(mut self, accepted: &[&'static str]) -> InboundError {
        self.accepted = accepted.to_vec();
        self
    }

    /// Prefixes the field with the item's position in a batch: `[3].event`.
    pub fn at_index(mut self, index: usize) -> InboundError {
        self.field = format!("[{index}].{}", self.field);
        self
    }
}

/// One object or a JSON array of them, all or nothing: one bad item rejects the whole
/// delivery (the behaviour webhook: the website can fix and resend).
pub fn parse_many<F>(body: &Value, mut parse_one: F) -> Result<Vec<InboundEvent>, InboundError>
where
    F: FnMut(&Value) -> Result<InboundEvent, InboundError>,
{
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(InboundError::new("body", "empty array: send at least one event"));
            }
            items.iter().enumerate().map(|(i, item)| parse_one(item).map_err(|e| e.at_index(i))).collect()
        }
        Value::Object(_) => parse_one(body).map(|e| vec![e]),
        _ => Err(InboundError::new("body", "expected a JSON object or an array of objects")),
    }
}

/// One object or a JSON array of them, each item standing alone (the Brevo webhook: Brevo
/// drops a delivery answered 4xx, so one bad item must not lose the others). `Err` only
/// when the body itself is neither an object nor a non-empty array.
pub fn parse_each<F>(body: &Value, mut parse_one: F) -> Result<Vec<Result<InboundEvent, InboundError>>, InboundError>
where
    F: FnMut(&Value) -> Result<InboundEvent, InboundError>,
{
    match body {
        Value::Array(items) if items.is_empty() => {
            Err(InboundError::new("body", "empty array: send at least one event"))
        }
        Value::Array(items) => Ok(items.iter().map(&mut parse_one).collect()),
        Value::Object(_) => Ok(vec![parse_one(body)]),
        _ => Err(InboundError::new("body", "expected a JSON object or an array of objects")),
    }
}

/// SHA-256 of a JSON value written canonically (object keys sorted, no whitespace), hex:
/// the same payload always gives the same hash, whatever order its sender wrote keys in.
pub fn canonical_hash(value: &Value) -> String {
    use sha2::{Digest, Sha256};
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut text = String::new();
    write(value, &mut text);
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a string or a number as text (ids arrive as both).
pub(crate) fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads an integer given as a number or a numeric string.
pub(crate) fn int_of(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
