//! Brevo transactional and marketing webhook payloads (reference sheet §1).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Identity, InboundError, InboundEvent, from_epoch_millis, from_epoch_seconds, int_of, text_of};
use crate::contact::Email;
use crate::event::{BounceType, Event, Source, Trigger};

/// Every event name accepted on `/webhook/email`, both spellings where Brevo and its
/// clients disagree.
pub const BREVO_EVENTS: &[&str] = &[
    "request",
    "sent",
    "delivered",
    "opened",
    "unique_opened",
    "proxy_open",
    "unique_proxy_open",
    "unique_proxy_opened",
    "click",
    "clicked",
    "hard_bounce",
    "bounce",
    "soft_bounce",
    "deferred",
    "blocked",
    "spam",
    "complaint",
    "invalid_email",
    "invalid",
    "error",
    "unsubscribed",
    "unsubscribe",
    "list_addition",
    "contact_updated",
    "contact_deleted",
];

#[derive(Debug, Clone, Copy, Default)]
pub struct BrevoOptions {
    /// Count Apple-MPP proxy opens as opens. Off by default: machines, not people, open them.
    pub proxy_opens_are_opens: bool,
}

/// What an event name means.
fn meaning(name: &str, opts: BrevoOptions) -> Option<(Option<Trigger>, Option<BounceType>, bool)> {
    Some(match name {
        "opened" | "unique_opened" => (Some(Trigger::EmailOpened), None, false),
        "proxy_open" | "unique_proxy_open" | "unique_proxy_opened" => {
            (opts.proxy_opens_are_opens.then_some(Trigger::EmailOpened), None, false)
        }
        "click" | "clicked" => (Some(Trigger::EmailClicked), None, false),
        "hard_bounce" | "bounce" => (Some(Trigger::EmailBounce), Some(BounceType::Hard), false),
        "soft_bounce" => (Some(Trigger::EmailBounce), Some(BounceType::Soft), false),
        "unsubscribed" | "unsubscribe" => (Some(Trigger::Unsubscribe), None, false),
        "spam" | "complaint" => (Some(Trigger::Unsubscribe), None, true),
        n if BREVO_EVENTS.contains(&n) => (None, None, false),
        _ => return None,
    })
}

/// Parses one Brevo webhook object.
pub fn parse_brevo(raw: &Value, received_at: DateTime<Utc>, opts: BrevoOptions) -> Result<InboundEvent, InboundError> {
    let Some(obj) = raw.as_object() else {
        return Err(InboundError::new("body", "expected a JSON object"));
    };
    let name = match obj.get("event") {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(_) => return Err(InboundError::new("event", "expected a string").with_accepted(BREVO_EVENTS)),
        None => return Err(InboundError::new("event", "missing").with_accepted(BREVO_EVENTS)),
    };
    let Some((trigger, bounce_type, complaint)) = meaning(&name, opts) else {
        return Err(InboundError::new("event", format!("unknown event {name:?}")).with_accepted(BREVO_EVENTS));
    };
    let email = match obj.get("email") {
        Some(Value::String(s)) => Email::parse(s).map_err(|e| InboundError::new("email", format!("{s:?} {e}")))?,
        Some(_) => return Err(InboundError::new("email", "expected a string")),
        None => return Err(InboundError::new("email", "missing: Brevo events name their recipient")),
    };

    let ts_epoch = int_of(obj.get("ts_epoch"));
    let ts_event = int_of(obj.get("ts_event")).or_else(|| int_of(obj.get("ts")));
    // ts_epoch (ms) is the only consistently-UTC field.
    let occurred_at =
        ts_epoch.and_then(from_epoch_millis).or_else(|| ts_event.and_then(from_epoch_seconds)).unwrap_or(received_at);

    let campaign_id = int_of(obj.get("camp_id"));
    let link = ["link", "URL", "url"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let message_id = ["message-id", "message_id", "messageId"].iter().find_map(|k| text_of(obj.get(*k)));

    let dedupe_key = match (campaign_id, ts_epoch.or(ts_event)) {
        (Some(camp), Some(_)) => Some(format!(
            "brevo:m:{name}:{camp}:{email}:{}:{}",
            ts_event.or(ts_epoch.map(|ms| ms / 1000)).unwrap_or_default(),
            link.as_deref().unwrap_or("")
        )),
        (None, Some(ts)) => Some(format!(
            "brevo:t:{name}:{}:{email}:{ts}:{}",
            message_id.as_deref().unwrap_or(""),
            link.as_deref().unwrap_or("")
        )),
        // Nothing tells two deliveries apart from two events: do not guess.
        (_, None) => None,
    };

    let mut attributes = Map::new();
    attributes.insert("kind".into(), if campaign_id.is_some() { "marketing" } else { "transactional" }.into());
    let tags = tags_of(obj);
    if !tags.is_empty() {
        attributes.insert("tags".into(), tags.into());
    }
    for (from, to) in [
        ("subject", "subject"),
        ("reason", "reason"),
        ("template_id", "template_id"),
        ("campaign name", "campaign_name"),
        ("list_id", "list_id"),
        ("sending_ip", "sending_ip"),
        ("user_agent", "user_agent"),
        ("device_used", "device_used"),
        ("api_key_name", "api_key_name"),
    ] {
        if let Some(v) = obj.get(from).filter(|v| !v.is_null()) {
            let v = match v {
                Value::String(s) => Value::String(s.trim().to_owned()),
                other => other.clone(),
            };
            attributes.insert(to.into(), v);
        }
    }
    if let Some(custom) = obj.get("X-Mailin-custom").and_then(Value::as_str) {
        let parsed = serde_json::from_str::<Value>(custom).unwrap_or_else(|_| Value::String(custom.to_owned()));
        attributes.insert("custom".into(), parsed);
    }

    Ok(InboundEvent {
        identity: Identity { email: Some(email), client_code: None },
        event: Event {
            source: Source::Brevo,
            name,
            trigger,
            occurred_at,
            amount: None,
            link,
            bounce_type,
            page: None,
            product_id: None,
            message_id,
            campaign_id,
            complaint,
            scheduled_rule: None,
            attributes,
        },
        dedupe_key,
        sender_event_id: None,
        raw: raw.clone(),
    })
}

/// `tags` (an array) and `tag` (a string, sometimes a JSON-encoded array), merged.
fn tags_of(obj: &Map<String, Value>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut push = |t: &str| {
        let t = t.trim();
        if !t.is_empty() && !tags.iter().any(|x| x == t) {
            tags.push(t.to_owned());
        }
    };
    if let Some(Value::Array(items)) = obj.get("tags") {
        items.iter().filter_map(Value::as_str).for_each(&mut push);
    }
    match obj.get("tag") {
        Some(Value::String(s)) => match serde_json::from_str::<Vec<String>>(s) {
            Ok(list) => list.iter().for_each(|t| push(t)),
            Err(_) => push(s),
        },
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
        _ => {}
    }
    tags
}
