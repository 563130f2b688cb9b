//! Website behaviour (tracking) payloads: `client_code` and/or `email`, `action`,
//! `metadata` (`amount`, `page`, `product_id`, …), optional `event_id` and `timestamp`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::time::{self, epoch_of};
use super::{Identity, InboundError, InboundEvent, text_of};
use crate::contact::{ClientCode, Email};
use crate::event::{Event, Source, Trigger};

/// Every `action` accepted on `/webhook/behavior`.
pub const BEHAVIOR_ACTIONS: &[&str] = &["click", "page_visit", "visit", "open", "purchase", "form_submit"];

const MAX_EVENT_ID_LEN: usize = 200;

fn trigger_of(action: &str) -> Option<Trigger> {
    Some(match action {
        "click" | "page_visit" | "visit" => Trigger::PageVisit,
        "open" => Trigger::EmailOpened,
        "purchase" => Trigger::Purchase,
        "form_submit" => Trigger::FormSubmit,
        _ => return None,
    })
}

/// The typed fields a behaviour event takes from its `metadata`: `amount` (a number ≥ 0,
/// or a string of one, `,` as decimal point), `page`, `product_id`, `link` (or `url`).
/// A function of the metadata alone, so the stores can leave these fields out of a
/// tracking event's stored JSON and read them back from its attributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataFields {
    pub amount: Option<f64>,
    pub page: Option<String>,
    pub product_id: Option<String>,
    pub link: Option<String>,
}

/// Reads [`MetadataFields`]; an `amount` that is not a number ≥ 0 is refused.
pub fn metadata_fields(metadata: &Map<String, Value>) -> Result<MetadataFields, InboundError> {
    let amount = match metadata.get("amount") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
                _ => None,
            };
            match n {
                Some(a) if a.is_finite() && a >= 0.0 => Some(a),
                _ => {
                    return Err(InboundError::new("metadata.amount", "expected a number ≥ 0 (e.g. 80 or \"80.00\")"));
                }
            }
        }
    };
    Ok(MetadataFields {
        amount,
        page: text_of(metadata.get("page")),
        product_id: text_of(metadata.get("product_id")),
        link: text_of(metadata.get("link")).or_else(|| text_of(metadata.get("url"))),
    })
}

/// Parses one behaviour object.
pub fn parse_behavior(raw: &Value, received_at: DateTime<Utc>) -> Result<InboundEvent, InboundError> {
    let Some(obj) = raw.as_object() else {
        return Err(InboundError::new("body", "expected a JSON object"));
    };
    let action = match obj.get("action") {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(_) => return Err(InboundError::new("action", "expected a string").with_accepted(BEHAVIOR_ACTIONS)),
        None => return Err(InboundError::new("action", "missing").with_accepted(BEHAVIOR_ACTIONS)),
    };
    let Some(trigger) = trigger_of(&action) else {
        return Err(InboundError::new("action", format!("unknown action {action:?}")).with_accepted(BEHAVIOR_ACTIONS));
    };

    let email = match obj.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(Email::parse(s).map_err(|e| InboundError::new("email", format!("{s:?} {e}")))?),
        Some(_) => return Err(InboundError::new("email", "expected a string")),
    };
    let client_code = match obj.get("client_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v @ (Value::String(_) | Value::Number(_))) => {
            let s = text_of(Some(v)).unwrap_or_default();
            Some(ClientCode::parse(&s).map_err(|e| InboundError::new("client_code", e.to_string()))?)
        }
        Some(_) => return Err(InboundError::new("client_code", "expected a string")),
    };
    if email.is_none() && client_code.is_none() {
        return Err(InboundError::new("client_code", "missing: give client_code, email, or both"));
    }

    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(InboundError::new("metadata", "expected an object")),
    };
    let MetadataFields { amount, .. } = metadata_fields(&metadata)?;

    let sender_event_id = match obj.get("event_id") {
        None | Some(Value::Null) => None,
        Some(v) => match text_of(Some(v)) {
            Some(id) if id.len() <= MAX_EVENT_ID_LEN => Some(id),
            Some(_) => {
                return Err(InboundError::new("event_id", format!("longer than {MAX_EVENT_ID_LEN} characters")));
            }
            None => return Err(InboundError::new("event_id", "expected a non-empty string or number")),
        },
    };

    let stated = match obj.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s.trim())
                .map(|d| d.with_timezone(&Utc))
                .or_else(|_| {
                    // "2025-12-27T16:40:00" as in the seed's log: taken as UTC.
                    chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc())
                })
                .map_err(|_| {
                    InboundError::new("timestamp", "expected RFC 3339 (2025-12-27T16:40:00Z) or epoch seconds")
                })?,
        ),
        Some(Value::Number(n)) => {
            let t = n.as_i64().ok_or_else(|| InboundError::new("timestamp", "expected whole epoch seconds"))?;
            Some(epoch_of(t).ok_or_else(|| InboundError::new("timestamp", "out of range"))?.0)
        }
        Some(_) => return Err(InboundError::new("timestamp", "expected a string or a number")),
    };
    let (occurred_at, time_source) = match stated {
        Some(t) => time::checked(Some(t), "timestamp", received_at),
        None => (received_at, "received".to_owned()),
    };
    let mut metadata = metadata;
    if time_source != "timestamp" && stated.is_some() {
        // Only a refused timestamp is worth a word; a missing one is the normal case.
        metadata.insert("time_source".into(), time_source.into());
    }

    // Read again from the final metadata (`time_source` added) so that the fields are
    // exactly what `metadata_fields` of the stored attributes gives back.
    let MetadataFields { amount: _, page, product_id, link } = metadata_fields(&metadata)?;

    Ok(InboundEvent {
        identity: Identity { email, client_code },
        event: Event {
            source: Source::Tracking,
            name: action,
            trigger: Some(trigger),
            occurred_at,
            amount,
            link,
            bounce_type: None,
            page,
            product_id,
            message_id: None,
            campaign_id: None,
            complaint: false,
            scheduled_rule: None,
            attributes: metadata,
        },
        dedupe_key: sender_event_id.as_ref().map(|id| format!("tracking:{id}")),
        sender_event_id,
        recognised: true,
        raw: raw.clone(),
    })
}
