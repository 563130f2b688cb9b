//! The form an event takes in the `events` table of both backends: its JSON, and the
//! payload as received (`raw`).
//!
//! The row's own columns already say the event's source, name, trigger and time, so the
//! JSON leaves them out (with `complaint: false` and empty `attributes`, the defaults):
//! on the behaviour load that is 247 → 122 bytes per event. Reading puts the columns
//! back; a row written before this form (its JSON still carries those fields) reads the
//! same, the columns being equal to them.
//!
//! A website payload is most often nothing but what the row says again (`action`, the
//! identity, `event_id`, `metadata`): when rebuilding it from the row gives exactly the
//! payload received, `raw` stores nothing ([`REBUILT_RAW`]) and reading rebuilds it.
//! Checked on every write, so a payload with anything more (a `timestamp`, a number
//! for a client code, an address in capitals) keeps its own copy.
//!
//! A website event's `amount`, `page`, `product_id` and `link` are read from its
//! `metadata` ([`metadata_fields`]), which the JSON keeps as `attributes`: stored once,
//! in the attributes, they are read back from there (about 45 bytes less per event on the
//! behaviour load). A field that differs from what the attributes give is written out,
//! as `null` when it is empty, so that every event reads back as it was written; a row
//! of an older form holds every field and reads the same.

use chrono::{DateTime, SecondsFormat, Utc};
use relance_core::event::Source;
use relance_core::inbound::{MetadataFields, metadata_fields};
use relance_core::{Event, InboundEvent};
use serde_json::{Map, Value};

/// `raw` of a row whose payload [`rebuilt_raw`] gives back.
pub(crate) const REBUILT_RAW: &str = "";

/// The columns a website payload is rebuilt from.
pub(crate) struct RawColumns<'a> {
    pub source: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub client_code: Option<&'a str>,
    pub sender_event_id: Option<&'a str>,
}

/// The website payload a row stands for, or `None` for another source.
pub(crate) fn rebuilt_raw(columns: &RawColumns<'_>, attributes: Option<&Map<String, Value>>) -> Option<Value> {
    if columns.source != Source::Tracking.as_str() {
        return None;
    }
    let mut raw = Map::new();
    raw.insert("action".into(), columns.name.into());
    let optional =
        [("email", columns.email), ("client_code", columns.client_code), ("event_id", columns.sender_event_id)];
    for (key, value) in optional {
        if let Some(v) = value {
            raw.insert(key.into(), v.into());
        }
    }
    if let Some(attributes) = attributes.filter(|a| !a.is_empty()) {
        raw.insert("metadata".into(), Value::Object(attributes.clone()));
    }
    Some(Value::Object(raw))
}

/// What the `raw` column stores for an event about to be written. Compared in place (no
/// rebuilt copy): this runs for every event on the ingest path.
pub(crate) fn raw_to_store(inbound: &InboundEvent) -> String {
    if is_rebuilt(inbound) { REBUILT_RAW.to_owned() } else { inbound.raw.to_string() }
}

/// Whether [`rebuilt_raw`] of the event's row gives back exactly the payload received.
fn is_rebuilt(inbound: &InboundEvent) -> bool {
    let (Some(raw), Source::Tracking) = (inbound.raw.as_object(), inbound.event.source) else { return false };
    let attributes = &inbound.event.attributes;
    let given = [
        ("email", inbound.identity.email.as_ref().map(|e| e.as_str())),
        ("client_code", inbound.identity.client_code.as_ref().map(|c| c.as_str())),
        ("event_id", inbound.sender_event_id.as_deref()),
    ];
    let expected = 1 + given.iter().filter(|(_, v)| v.is_some()).count() + usize::from(!attributes.is_empty());
    raw.len() == expected
        && raw.get("action").and_then(Value::as_str) == Some(inbound.event.name.as_str())
        && given.iter().all(|(key, value)| value.is_none_or(|v| raw.get(*key).and_then(Value::as_str) == Some(v)))
        && (attributes.is_empty() || raw.get("metadata").and_then(Value::as_object) == Some(attributes))
}

/// The payload a row's `raw` column stands for (`event` is the row's event JSON).
pub(crate) fn raw_of(text: &str, columns: &RawColumns<'_>, event: &Value) -> Value {
    if text == REBUILT_RAW {
        let attributes = event.get("attributes").and_then(Value::as_object);
        return rebuilt_raw(columns, attributes).unwrap_or(Value::Null);
    }
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// The JSON stored for `event`, written straight from the event: what the columns say
/// and the defaults are left out, a website event's fields that its attributes give
/// again are left to them. Keys come in name order, as a `serde_json::Map` writes them,
/// so that rows read and compare as before (a test checks this against the map).
/// Measured (callgrind, store alone): building that map, emptying it of the column
/// fields (a time formatted only to be removed) and writing it took 16,800 instructions
/// per event; this takes 3,200.
pub(crate) fn to_stored(event: &Event) -> Result<String, crate::store::StoreError> {
    let tracking = event.source == Source::Tracking;
    let derived =
        if tracking { metadata_fields(&event.attributes).unwrap_or_default() } else { MetadataFields::default() };
    // A field is written when it says something: for a website event, when it differs
    // from what the attributes give (as `null` when it is empty); otherwise when set.
    fn said<T: PartialEq>(tracking: bool, own: Option<T>, derived: Option<T>) -> Option<Option<T>> {
        match tracking {
            true if own == derived => None,
            true => Some(own),
            false => own.map(Some),
        }
    }
    let stored = StoredJson {
        // Amounts compare as the JSON numbers they are written as (a non-finite one is null).
        amount: said(tracking, event.amount.map(Value::from), derived.amount.map(Value::from)),
        attributes: &event.attributes,
        bounce_type: event.bounce_type.as_ref(),
        campaign_id: event.campaign_id,
        complaint: event.complaint,
        link: said(tracking, event.link.as_deref(), derived.link.as_deref()),
        message_id: event.message_id.as_deref(),
        page: said(tracking, event.page.as_deref(), derived.page.as_deref()),
        product_id: said(tracking, event.product_id.as_deref(), derived.product_id.as_deref()),
        scheduled_rule: event.scheduled_rule.as_deref(),
    };
    serde_json::to_string(&stored).map_err(|e| crate::store::StoreError::Unavailable(e.into()))
}

/// An event's stored JSON; fields in name order (see [`to_stored`]). `Some(None)` writes
/// `null`.
#[derive(serde::Serialize)]
struct StoredJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<Option<Value>>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    attributes: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bounce_type: Option<&'a relance_core::event::BounceType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    complaint: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduled_rule: Option<&'a str>,
}

/// The fields a website event's attributes give.
/// Attributes with an invalid `amount` give none: such an event keeps its own fields.
fn derived_fields(attributes: &Map<String, Value>) -> [(&'static str, Option<Value>); 4] {
    let MetadataFields { amount, page, product_id, link } = metadata_fields(attributes).unwrap_or_default();
    [
        ("amount", amount.map(Value::from)),
        ("page", page.map(Value::from)),
        ("product_id", product_id.map(Value::from)),
        ("link", link.map(Value::from)),
    ]
}

/// Writes out the fields a website event's JSON leaves to its attributes, so that the
/// JSON stands without them.
fn complete_from_attributes(map: &mut Map<String, Value>) {
    let derived = match map.get("attributes") {
        Some(Value::Object(attributes)) => derived_fields(attributes),
        _ => derived_fields(&Map::new()),
    };
    for (key, value) in derived {
        if let (false, Some(value)) = (map.contains_key(key), value) {
            map.insert(key.into(), value);
        }
    }
}

/// The JSON an erased event keeps (`json` as stored, `source` its column): what it was
/// (amount, page, product) but nothing that can lead back to the person (its link,
/// message id and attributes).
pub(crate) fn erased(json: &str, source: &str) -> Result<String, crate::store::StoreError> {
    let unavailable = |e: serde_json::Error| crate::store::StoreError::Unavailable(e.into());
    let mut value: Value = serde_json::from_str(json).map_err(unavailable)?;
    if let Value::Object(map) = &mut value {
        if source == Source::Tracking.as_str() {
            complete_from_attributes(map);
        }
        for key in ["link", "message_id", "attributes"] {
            map.remove(key);
        }
    }
    serde_json::to_string(&value).map_err(unavailable)
}

/// The columns an event's JSON is completed with on reading.
pub struct EventColumns<'a> {
    pub source: &'a str,
    pub name: &'a str,
    pub trigger: Option<&'a str>,
    pub occurred_at: DateTime<Utc>,
}

/// The event a row holds. The columns win over what an older row's JSON says (they are
/// written from the same event, so they agree).
pub fn from_stored(json: &str, columns: EventColumns<'_>) -> Result<Event, serde_json::Error> {
    let mut value: Value = serde_json::from_str(json)?;
    if let Value::Object(map) = &mut value {
        if columns.source == Source::Tracking.as_str() {
            complete_from_attributes(map);
        }
        map.insert("source".into(), columns.source.into());
        map.insert("name".into(), columns.name.into());
        map.insert("trigger".into(), columns.trigger.map_or(Value::Null, Value::from));
        map.insert("occurred_at".into(), columns.occurred_at.to_rfc3339_opts(SecondsFormat::AutoSi, true).into());
    }
    serde_json::from_value(value)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use relance_core::event::{BounceType, Source, Trigger};

    use super::*;

    /// Keys whose value is a column of the row.
    const IN_COLUMNS: [&str; 4] = ["source", "name", "trigger", "occurred_at"];

    /// The stored JSON as it was first defined: the whole event as a map, minus the
    /// columns and the defaults, minus a website event's fields its attributes give.
    fn to_stored_via_map(event: &Event) -> String {
        let mut value = serde_json::to_value(event).expect("serialises");
        if let Value::Object(map) = &mut value {
            for key in IN_COLUMNS {
                map.remove(key);
            }
            if map.get("complaint") == Some(&Value::Bool(false)) {
                map.remove("complaint");
            }
            if event.source == Source::Tracking {
                let derived = derived_fields(&event.attributes);
                let written = [
                    ("amount", event.amount.map(Value::from)),
                    ("page", event.page.as_deref().map(Value::from)),
                    ("product_id", event.product_id.as_deref().map(Value::from)),
                    ("link", event.link.as_deref().map(Value::from)),
                ];
                for ((key, value), (_, from_attributes)) in written.into_iter().zip(derived) {
                    if value == from_attributes {
                        map.remove(key);
                    } else {
                        map.entry(key).or_insert(Value::Null);
                    }
                }
            }
            if map.get("attributes").and_then(Value::as_object).is_some_and(|a| a.is_empty()) {
                map.remove("attributes");
            }
        }
        serde_json::to_string(&value).expect("serialises")
    }

    fn text(choice: u8, values: &[&str]) -> Option<String> {
        values.get(usize::from(choice)).map(|v| (*v).to_owned())
    }

    proptest::proptest! {
        /// Written straight from the event, the JSON is byte for byte what the map gave.
        #[test]
        fn the_stored_json_is_the_maps(
            tracking in proptest::bool::ANY,
            amount in proptest::option::of(proptest::sample::select(vec![0.0, 20.0, 57.5, 133.5, 1e21])),
            meta_amount in 0u8..5, page in 0u8..4, meta_page in 0u8..4, product in 0u8..3,
            meta_product in 0u8..3, link in 0u8..3, meta_link in 0u8..3, rest in 0u8..16,
        ) {
            let source = if tracking { Source::Tracking } else { Source::Brevo };
            let mut event = Event::new(source, Trigger::Purchase, at_millis(1_796_315_209_159));
            event.amount = amount;
            event.page = text(page, &["vins.html", "a\"b"]);
            event.product_id = text(product, &["P1"]);
            event.link = text(link, &["https://example.com/"]);
            let meta = [
                ("amount", [Value::from(57.5), Value::from("133,50"), Value::from(20), Value::from("x")]
                    .get(usize::from(meta_amount)).cloned()),
                ("page", text(meta_page, &["vins.html", "a\"b"]).map(Value::from)),
                ("product_id", text(meta_product, &["P1"]).map(Value::from)),
                ("link", text(meta_link, &["https://example.com/"]).map(Value::from)),
            ];
            for (key, value) in meta {
                if let Some(value) = value {
                    event.attributes.insert(key.into(), value);
                }
            }
            if rest & 1 != 0 {
                event.bounce_type = Some(BounceType::Soft);
                event.message_id = Some("<m@x>".into());
            }
            if rest & 2 != 0 {
                event.campaign_id = Some(7);
                event.scheduled_rule = Some("rule_x".into());
            }
            event.complaint = rest & 4 != 0;
            if rest & 8 != 0 {
                event.attributes.insert("tag".into(), "promo".into());
            }
            proptest::prop_assert_eq!(to_stored(&event).expect("serialises"), to_stored_via_map(&event));
        }
    }

    fn at_millis(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).single().expect("valid time")
    }

    fn columns(event: &Event) -> EventColumns<'_> {
        EventColumns {
            source: event.source.as_str(),
            name: &event.name,
            trigger: event.trigger.map(Trigger::as_str),
            occurred_at: event.occurred_at,
        }
    }

    #[test]
    fn a_bare_event_stores_almost_nothing_and_reads_back_whole() {
        let event = Event::new(Source::Tracking, Trigger::PageVisit, at_millis(1_796_315_209_159));
        let stored = to_stored(&event).expect("serialises");
        assert_eq!(stored, "{}");
        assert_eq!(from_stored(&stored, columns(&event)).expect("reads"), event);
    }

    #[test]
    fn every_field_survives_the_round_trip() {
        let mut event = Event::new(Source::Brevo, Trigger::Unsubscribe, at_millis(1_700_000_000_123));
        event.name = "spam".into();
        event.amount = Some(80.5);
        event.link = Some("https://example.com/vins".into());
        event.bounce_type = Some(BounceType::Hard);
        event.page = Some("vins.html".into());
        event.product_id = Some("P1".into());
        event.message_id = Some("<m@x>".into());
        event.campaign_id = Some(42);
        event.complaint = true;
        event.scheduled_rule = Some("rule_x".into());
        event.attributes.insert("tag".into(), "promo".into());
        let stored = to_stored(&event).expect("serialises");
        for key in IN_COLUMNS {
            assert!(!stored.contains(&format!("\"{key}\"")), "{key} is a column: {stored}");
        }
        assert_eq!(from_stored(&stored, columns(&event)).expect("reads"), event);
    }

    #[test]
    fn a_row_written_in_the_full_form_reads_the_same() {
        let mut event = Event::new(Source::Tracking, Trigger::Purchase, at_millis(1_796_315_209_160));
        event.amount = Some(57.0);
        let full = serde_json::to_string(&event).expect("serialises");
        assert_eq!(from_stored(&full, columns(&event)).expect("reads"), event);
    }

    fn tracking_event(attributes: Value) -> Event {
        let raw = serde_json::json!({"client_code": "CL1", "action": "purchase", "metadata": attributes});
        relance_core::inbound::parse_behavior(&raw, at_millis(1_796_315_209_159)).expect("parses").event
    }

    #[test]
    fn a_website_event_keeps_its_metadata_once() {
        let event = tracking_event(serde_json::json!({"amount": "133,50", "page": "vins.html", "product_id": "P101",
                                                      "url": "https://example.com/p101"}));
        assert_eq!(event.amount, Some(133.5));
        assert_eq!(event.link.as_deref(), Some("https://example.com/p101"));
        let stored = to_stored(&event).expect("serialises");
        assert_eq!(
            stored,
            r#"{"attributes":{"amount":"133,50","page":"vins.html","product_id":"P101","url":"https://example.com/p101"}}"#
        );
        assert_eq!(from_stored(&stored, columns(&event)).expect("reads"), event);
    }

    #[test]
    fn a_field_that_differs_from_the_attributes_is_written_out() {
        let mut event = tracking_event(serde_json::json!({"amount": 80, "page": "vins.html"}));
        event.amount = None;
        event.page = Some("autre.html".into());
        event.product_id = Some("P9".into());
        let stored: Value = serde_json::from_str(&to_stored(&event).expect("serialises")).expect("json");
        assert_eq!(stored["amount"], Value::Null);
        assert_eq!(stored["page"], "autre.html");
        assert_eq!(stored["product_id"], "P9");
        assert!(stored.get("link").is_none(), "{stored}");
        assert_eq!(from_stored(&stored.to_string(), columns(&event)).expect("reads"), event);
    }

    #[test]
    fn an_invalid_amount_in_the_attributes_reads_as_none() {
        let mut event = Event::new(Source::Tracking, Trigger::Purchase, at_millis(1_796_315_209_160));
        event.attributes.insert("amount".into(), "beaucoup".into());
        event.attributes.insert("page".into(), "vins.html".into());
        for page in [None, Some("vins.html".to_owned())] {
            event.page = page;
            let stored = to_stored(&event).expect("serialises");
            assert_eq!(from_stored(&stored, columns(&event)).expect("reads"), event, "{stored}");
        }
    }

    #[test]
    fn an_erased_website_event_keeps_what_it_was_but_not_who() {
        let event =
            tracking_event(serde_json::json!({"amount": 57, "page": "vins.html", "link": "https://x.example/?u=anne"}));
        let stored = to_stored(&event).expect("serialises");
        let anonymised = erased(&stored, Source::Tracking.as_str()).expect("erases");
        let read = from_stored(&anonymised, columns(&event)).expect("reads");
        assert_eq!((read.amount, read.page.as_deref()), (Some(57.0), Some("vins.html")));
        assert_eq!((read.link, read.attributes.len()), (None, 0));
        let mut email = Event::new(Source::Brevo, Trigger::EmailClicked, at_millis(1_796_315_209_000));
        email.link = Some("https://x.example/?u=anne".into());
        email.message_id = Some("<m@x>".into());
        email.campaign_id = Some(7);
        email.attributes.insert("tag".into(), "promo".into());
        let anonymised = erased(&to_stored(&email).expect("serialises"), "brevo").expect("erases");
        let read = from_stored(&anonymised, columns(&email)).expect("reads");
        assert_eq!((read.link, read.message_id, read.campaign_id, read.attributes.len()), (None, None, Some(7), 0));
    }

    fn columns_of(inbound: &InboundEvent) -> RawColumns<'_> {
        RawColumns {
            source: inbound.event.source.as_str(),
            name: &inbound.event.name,
            email: inbound.identity.email.as_ref().map(|e| e.as_str()),
            client_code: inbound.identity.client_code.as_ref().map(|c| c.as_str()),
            sender_event_id: inbound.sender_event_id.as_deref(),
        }
    }

    /// Stores and reads back a payload as the backends do.
    fn round_trip(raw: Value) -> (String, Value) {
        let inbound = relance_core::inbound::parse_behavior(&raw, at_millis(1_796_315_209_159)).expect("parses");
        let stored = raw_to_store(&inbound);
        let event: Value = serde_json::from_str(&to_stored(&inbound.event).expect("serialises")).expect("json");
        let read = raw_of(&stored, &columns_of(&inbound), &event);
        (stored, read)
    }

    #[test]
    fn a_website_payload_the_row_says_again_is_not_stored_twice() {
        let raw = serde_json::json!({"client_code": "CL0006919", "action": "purchase", "event_id": "8202-1001",
                                      "metadata": {"amount": 133, "page": "vins.html", "product_id": "P101"}});
        let (stored, read) = round_trip(raw.clone());
        assert_eq!(stored, REBUILT_RAW);
        assert_eq!(read, raw);
        let bare = serde_json::json!({"email": "anne@example.com", "action": "page_visit"});
        let (stored, read) = round_trip(bare.clone());
        assert_eq!(stored, REBUILT_RAW);
        assert_eq!(read, bare);
    }

    #[test]
    fn a_payload_with_anything_more_keeps_its_own_copy() {
        for raw in [
            serde_json::json!({"client_code": "CL1", "action": "purchase", "timestamp": "2026-11-30T10:00:00Z"}),
            serde_json::json!({"client_code": 42, "action": "page_visit"}),
            serde_json::json!({"email": "Anne@Example.com", "action": "page_visit"}),
            serde_json::json!({"client_code": "CL1", "action": " Purchase "}),
            serde_json::json!({"client_code": "CL1", "action": "open", "metadata": {}}),
            serde_json::json!({"client_code": "CL1", "action": "open", "event_id": 17}),
            serde_json::json!({"client_code": "CL1", "action": "open", "extra": true}),
        ] {
            let (stored, read) = round_trip(raw.clone());
            assert_ne!(stored, REBUILT_RAW, "{raw}");
            assert_eq!(read, raw);
        }
    }

    #[test]
    fn a_brevo_payload_is_always_stored() {
        let raw = serde_json::json!({"event": "opened", "email": "anne@example.com", "id": 1, "ts_event": 1796315209});
        let inbound =
            relance_core::inbound::parse_brevo(&raw, at_millis(1_796_315_209_159), Default::default()).expect("parses");
        assert_eq!(raw_to_store(&inbound), raw.to_string());
    }

    #[test]
    fn an_event_without_trigger_reads_back_without_one() {
        let mut event = Event::new(Source::Brevo, Trigger::EmailOpened, at_millis(1_796_315_209_000));
        event.name = "delivered".into();
        event.trigger = None;
        let stored = to_stored(&event).expect("serialises");
        assert_eq!(from_stored(&stored, columns(&event)).expect("reads"), event);
    }
}
