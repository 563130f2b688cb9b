//! Brevo transactional and marketing webhook payloads (reference sheet §1).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::time::{epoch_seconds, event_time};
use super::{Identity, InboundError, InboundEvent, canonical_hash, int_of, text_of};
use crate::contact::Email;
use crate::event::{BounceType, Event, Source, Trigger};

/// Every event name Relance understands, in each spelling Brevo's documentation and its
/// clients use (after [`normalise_name`]). Any other name is still stored, unrecognised:
/// Brevo adds names over time, and a 4xx would make it drop the whole delivery.
pub const BREVO_EVENTS: &[&str] = &[
    "request",
    "sent",
    "delivered",
    "opened",
    "open",
    "unique_opened",
    "proxy_open",
    "unique_proxy_open",
    "unique_proxy_opened",
    "click",
    "clicked",
    "hard_bounce",
    "hard_bounced",
    "bounce",
    "soft_bounce",
    "soft_bounced",
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
    "unique_coupon_sent",
];

/// Longest event name kept; longer names are cut (they are labels, not data).
const MAX_NAME_LEN: usize = 64;

#[derive(Debug, Clone, Copy, Default)]
pub struct BrevoOptions {
    /// Count Apple-MPP proxy opens as opens. Off by default: machines, not people, open them.
    pub proxy_opens_are_opens: bool,
}

/// What a recognised event name means: trigger, bounce type, complaint.
fn meaning(name: &str, opts: BrevoOptions) -> Option<(Option<Trigger>, Option<BounceType>, bool)> {
    Some(match name {
        "opened" | "open" | "unique_opened" => (Some(Trigger::EmailOpened), None, false),
        "proxy_open" | "unique_proxy_open" | "unique_proxy_opened" => {
            (opts.proxy_opens_are_opens.then_some(Trigger::EmailOpened), None, false)
        }
        "click" | "clicked" => (Some(Trigger::EmailClicked), None, false),
        // Transactional spells `hard_bounce`, marketing `hard_bounced`; the seed `bounce`.
        "hard_bounce" | "hard_bounced" | "bounce" => (Some(Trigger::EmailBounce), Some(BounceType::Hard), false),
        "soft_bounce" | "soft_bounced" => (Some(Trigger::EmailBounce), Some(BounceType::Soft), false),
        "unsubscribed" | "unsubscribe" => (Some(Trigger::Unsubscribe), None, false),
        "spam" | "complaint" => (Some(Trigger::Unsubscribe), None, true),
        n if BREVO_EVENTS.contains(&n) => (None, None, false),
        _ => return None,
    })
}

/// `hardBounce`, `Hard-Bounce`, ` HARD_BOUNCE ` → `hard_bounce`: Brevo's subscription names
/// are camelCase and its payload names snake_case; both reach webhooks in the wild.
pub fn normalise_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 4);
    let mut prev_lower = false;
    for c in raw.trim().chars() {
        if c.is_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        match c {
            ' ' | '-' | '.' => out.push('_'),
            c => out.extend(c.to_lowercase()),
        }
    }
    if out.len() > MAX_NAME_LEN {
        let cut = (0..=MAX_NAME_LEN).rev().find(|i| out.is_char_boundary(*i)).unwrap_or(0);
        out.truncate(cut);
    }
    out
}

/// Parses one Brevo webhook object. Fails only when the item can never be stored: not an
/// object, no event name, no usable email.
pub fn parse_brevo(raw: &Value, received_at: DateTime<Utc>, opts: BrevoOptions) -> Result<InboundEvent, InboundError> {
    let Some(obj) = raw.as_object() else {
        return Err(InboundError::new("body", "expected a JSON object"));
    };
    let name = match obj.get("event") {
        Some(Value::String(s)) if !s.trim().is_empty() => normalise_name(s),
        Some(Value::String(_)) => return Err(InboundError::new("event", "empty").with_accepted(BREVO_EVENTS)),
        Some(_) => return Err(InboundError::new("event", "expected a string").with_accepted(BREVO_EVENTS)),
        None => return Err(InboundError::new("event", "missing").with_accepted(BREVO_EVENTS)),
    };
    let recognised = meaning(&name, opts);
    let (trigger, bounce_type, complaint) = recognised.unwrap_or((None, None, false));
    let email = match obj.get("email") {
        Some(Value::String(s)) => Email::parse(s).map_err(|e| InboundError::new("email", format!("{s:?} {e}")))?,
        Some(_) => return Err(InboundError::new("email", "expected a string")),
        None => return Err(InboundError::new("email", "missing: Brevo events name their recipient")),
    };

    let ts_epoch = int_of(obj.get("ts_epoch"));
    let ts_event = int_of(obj.get("ts_event")).or_else(|| int_of(obj.get("ts")));
    let (occurred_at, time_source) = event_time(obj, received_at);

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
            ts_event.or(ts_epoch.and_then(epoch_seconds)).unwrap_or_default(),
            link.as_deref().unwrap_or("")
        )),
        (None, Some(ts)) => Some(format!(
            "brevo:t:{name}:{}:{email}:{ts}:{}",
            message_id.as_deref().unwrap_or(""),
            link.as_deref().unwrap_or("")
        )),
        // None of the documented fields: the payload itself is the key (a redelivery is
        // byte-for-byte the same event; two real events differ somewhere).
        (_, None) => Some(format!("brevo:h:{}", canonical_hash(raw))),
    };

    let mut attributes = Map::new();
    attributes.insert("kind".into(), if campaign_id.is_some() { "marketing" } else { "transactional" }.into());
    attributes.insert("time_source".into(), time_source.into());
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
        recognised: recognised.is_some(),
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
