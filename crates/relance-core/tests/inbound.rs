//! Every sample payload of the reference sheet parses to the expected trigger and dedupe key.

use chrono::{TimeZone, Utc};
use relance_core::inbound::{BrevoOptions, parse_behavior, parse_brevo, parse_many};
use relance_core::{BounceType, Trigger};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/brevo/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

#[test]
fn reference_samples() {
    let cases: &[(&str, Option<Trigger>, &str)] = &[
        (
            "request",
            None,
            "brevo:t:request:<202305311313.92192897094@smtp-relay.mailin.fr>:example@gmail.com:1685538788179:",
        ),
        (
            "click",
            Some(Trigger::EmailClicked),
            "brevo:t:click:<202305311408.17112967225@smtp-relay.mailin.fr>:example@gmail.com:1685542108462:https://www.google.com",
        ),
        (
            "hard_bounce",
            Some(Trigger::EmailBounce),
            "brevo:t:hard_bounce:<202305311437.85220493321@smtp-relay.mailin.fr>:example@gmail.com:1685543827372:",
        ),
        (
            "unique_opened",
            Some(Trigger::EmailOpened),
            "brevo:t:unique_opened:<202305311447.66548003588@smtp-relay.mailin.fr>:example@gmail.com:1685544532962:",
        ),
        (
            "unsubscribed",
            Some(Trigger::Unsubscribe),
            "brevo:t:unsubscribed:<202305311328.81899448177@smtp-relay.mailin.fr>:example@gmail.com:1685541121606:",
        ),
        (
            "soft_bounce",
            Some(Trigger::EmailBounce),
            "brevo:t:soft_bounce:<202305311500.1@smtp-relay.mailin.fr>:example@gmail.com:1685545200000:",
        ),
        ("deferred", None, "brevo:t:deferred:<202305311501.2@smtp-relay.mailin.fr>:example@gmail.com:1685545260000:"),
        (
            "proxy_open",
            None,
            "brevo:t:proxy_open:<202305311502.3@smtp-relay.mailin.fr>:example@gmail.com:1685545320000:",
        ),
        ("marketing_spam", Some(Trigger::Unsubscribe), "brevo:m:spam:12:example@domain.com:1604933737:"),
        ("marketing_opened", Some(Trigger::EmailOpened), "brevo:m:opened:12:example@domain.com:1604933737:"),
        ("marketing_unsubscribed", Some(Trigger::Unsubscribe), "brevo:m:unsubscribed:12:a@b.com:1604969619:"),
        (
            "marketing_click",
            Some(Trigger::EmailClicked),
            "brevo:m:click:12:a@b.com:1604969919:https://domaine.example/vins",
        ),
        ("marketing_contact_updated", None, "brevo:t:contact_updated::a@b.com:1604969999:"),
        ("seed_email", Some(Trigger::EmailOpened), "brevo:t:opened:msg-123:client@example.com:1234567890:https://..."),
    ];
    for (name, trigger, key) in cases {
        let e = parse_brevo(&fixture(name), now(), BrevoOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(e.event.trigger, *trigger, "{name}");
        assert_eq!(e.dedupe_key.as_deref(), Some(*key), "{name}");
        assert!(e.identity.email.is_some());
    }
}

#[test]
fn brevo_details() {
    let bounce = parse_brevo(&fixture("hard_bounce"), now(), BrevoOptions::default()).unwrap();
    assert_eq!(bounce.event.bounce_type, Some(BounceType::Hard));
    assert_eq!(bounce.event.occurred_at.timestamp_millis(), 1685543827372, "ts_epoch is the event time");
    assert_eq!(bounce.event.attributes["tags"], json!(["welcome", "tag2"]));
    let soft = parse_brevo(&fixture("soft_bounce"), now(), BrevoOptions::default()).unwrap();
    assert_eq!(soft.event.bounce_type, Some(BounceType::Soft));
    let spam = parse_brevo(&fixture("marketing_spam"), now(), BrevoOptions::default()).unwrap();
    assert!(spam.event.complaint);
    assert_eq!(spam.event.campaign_id, Some(12));
    assert_eq!(spam.event.occurred_at.timestamp(), 1604933737);
    let opened = parse_brevo(&fixture("unique_opened"), now(), BrevoOptions::default()).unwrap();
    assert_eq!(opened.event.link, None, "an empty link is no link");
    let req = parse_brevo(&fixture("request"), now(), BrevoOptions::default()).unwrap();
    assert_eq!(req.event.attributes["custom"], json!({"rule": "r12"}));
    let proxy = parse_brevo(&fixture("proxy_open"), now(), BrevoOptions { proxy_opens_are_opens: true }).unwrap();
    assert_eq!(proxy.event.trigger, Some(Trigger::EmailOpened));
    // The seed's own spellings.
    for (name, trigger) in [
        ("clicked", Trigger::EmailClicked),
        ("bounce", Trigger::EmailBounce),
        ("complaint", Trigger::Unsubscribe),
        ("unsubscribe", Trigger::Unsubscribe),
    ] {
        let e = parse_brevo(&json!({"event": name, "email": "x@y.fr", "ts_event": 1}), now(), BrevoOptions::default())
            .unwrap();
        assert_eq!(e.event.trigger, Some(trigger), "{name}");
    }
    // No timestamp at all: the canonical payload is the key, whatever the key order.
    let e = parse_brevo(&json!({"event": "opened", "email": "x@y.fr"}), now(), BrevoOptions::default()).unwrap();
    let again: Value = serde_json::from_str(r#"{ "email" : "x@y.fr", "event": "opened" }"#).unwrap();
    let again = parse_brevo(&again, now(), BrevoOptions::default()).unwrap();
    assert!(e.dedupe_key.as_deref().is_some_and(|k| k.starts_with("brevo:h:")), "{:?}", e.dedupe_key);
    assert_eq!(e.dedupe_key, again.dedupe_key);
    let other = parse_brevo(&json!({"event": "opened", "email": "z@y.fr"}), now(), BrevoOptions::default()).unwrap();
    assert_ne!(e.dedupe_key, other.dedupe_key);
    assert_eq!(e.event.occurred_at, now());
    assert_eq!(e.event.attributes["time_source"], "received: no timestamp");
    // Marketing spellings and Brevo's camelCase subscription names mean the same.
    for (name, trigger, bounce) in [
        ("hard_bounced", Trigger::EmailBounce, Some(BounceType::Hard)),
        ("soft_bounced", Trigger::EmailBounce, Some(BounceType::Soft)),
        ("hardBounce", Trigger::EmailBounce, Some(BounceType::Hard)),
        ("softBounce", Trigger::EmailBounce, Some(BounceType::Soft)),
        ("uniqueOpened", Trigger::EmailOpened, None),
        ("Opened", Trigger::EmailOpened, None),
    ] {
        let e = parse_brevo(
            &json!({"event": name, "email": "x@y.fr", "ts_event": 1604933737}),
            now(),
            BrevoOptions::default(),
        )
        .unwrap();
        assert_eq!((e.event.trigger, e.event.bounce_type), (Some(trigger), bounce), "{name}");
        assert!(e.recognised, "{name}");
    }
}

#[test]
fn brevo_errors_name_the_field() {
    // An unknown name is stored, unrecognised: Brevo adds names over time.
    let unknown =
        parse_brevo(&json!({"event": "coupon_redeemed", "email": "x@y.fr"}), now(), BrevoOptions::default()).unwrap();
    assert!(!unknown.recognised);
    assert_eq!((unknown.event.trigger, unknown.event.name.as_str()), (None, "coupon_redeemed"));
    let err = parse_brevo(&json!({"email": "x@y.fr"}), now(), BrevoOptions::default()).unwrap_err();
    assert_eq!(err.field, "event");
    assert!(err.accepted.contains(&"hard_bounce"));
    let err = parse_brevo(&json!({"event": "opened"}), now(), BrevoOptions::default()).unwrap_err();
    assert_eq!(err.field, "email");
    let err = parse_brevo(&json!({"event": "opened", "email": "nope"}), now(), BrevoOptions::default()).unwrap_err();
    assert_eq!(err.field, "email");
    let batch = json!([fixture("click"), {"event": "opened", "email": 3}]);
    let err = parse_many(&batch, |v| parse_brevo(v, now(), BrevoOptions::default())).unwrap_err();
    assert_eq!(err.field, "[1].email");
    assert!(parse_many(&json!([]), |v| parse_brevo(v, now(), BrevoOptions::default())).is_err());
    assert!(parse_many(&json!("x"), |v| parse_brevo(v, now(), BrevoOptions::default())).is_err());
    let two =
        parse_many(&json!([fixture("click"), fixture("request")]), |v| parse_brevo(v, now(), BrevoOptions::default()))
            .unwrap();
    assert_eq!(two.len(), 2);
}

#[test]
fn behaviour_payloads() {
    // The seed's sample.
    let seed = json!({"client_code": "CL001", "action": "purchase",
        "metadata": {"product_id": "PROD123", "page": "products.html", "amount": 50.00}});
    let e = parse_behavior(&seed, now()).unwrap();
    assert_eq!(e.event.trigger, Some(Trigger::Purchase));
    assert_eq!(e.event.amount, Some(50.0));
    assert_eq!(e.event.product_id.as_deref(), Some("PROD123"));
    assert_eq!(e.identity.client_code.as_ref().map(|c| c.as_str()), Some("CL001"));
    assert_eq!(e.dedupe_key, None);
    assert_eq!(e.event.occurred_at, now());

    for (action, trigger) in [
        ("click", Trigger::PageVisit),
        ("page_visit", Trigger::PageVisit),
        ("visit", Trigger::PageVisit),
        ("open", Trigger::EmailOpened),
        ("form_submit", Trigger::FormSubmit),
    ] {
        let e = parse_behavior(&json!({"email": "A@B.fr", "action": action}), now()).unwrap();
        assert_eq!(e.event.trigger, Some(trigger));
        assert_eq!(e.identity.email.as_ref().map(|m| m.as_str()), Some("a@b.fr"));
    }

    let e = parse_behavior(
        &json!({"email": "a@b.fr", "client_code": "CL9", "action": "purchase", "event_id": "ord-77",
        "timestamp": "2025-12-27T16:40:00Z", "metadata": {"amount": "80,50"}}),
        now(),
    )
    .unwrap();
    assert_eq!(e.dedupe_key.as_deref(), Some("tracking:ord-77"));
    assert_eq!(e.event.amount, Some(80.5));
    assert_eq!(e.event.occurred_at, Utc.with_ymd_and_hms(2025, 12, 27, 16, 40, 0).unwrap());
    let e = parse_behavior(&json!({"email": "a@b.fr", "action": "open", "timestamp": 1766853600}), now()).unwrap();
    assert_eq!(e.event.occurred_at.timestamp(), 1766853600);
    let e =
        parse_behavior(&json!({"email": "a@b.fr", "action": "open", "timestamp": 1766853600123i64}), now()).unwrap();
    assert_eq!(e.event.occurred_at.timestamp_millis(), 1766853600123);
}

#[test]
fn behaviour_errors_name_the_field() {
    let cases = [
        (json!({"action": "purchase"}), "client_code"),
        (json!({"client_code": "CL1"}), "action"),
        (json!({"client_code": "CL1", "action": "dance"}), "action"),
        (json!({"client_code": "CL1", "action": "purchase", "metadata": {"amount": -3}}), "metadata.amount"),
        (json!({"client_code": "CL1", "action": "purchase", "metadata": {"amount": "lots"}}), "metadata.amount"),
        (json!({"client_code": "CL1", "action": "open", "metadata": []}), "metadata"),
        (json!({"email": "bad", "action": "open"}), "email"),
        (json!({"client_code": "CL1", "action": "open", "timestamp": "yesterday"}), "timestamp"),
        (json!({"client_code": "CL1", "action": "open", "event_id": ""}), "event_id"),
    ];
    for (payload, field) in cases {
        let err = parse_behavior(&payload, now()).unwrap_err();
        assert_eq!(err.field, field, "{payload}");
    }
    let err = parse_behavior(&json!({"client_code": "CL1", "action": "dance"}), now()).unwrap_err();
    assert!(err.accepted.contains(&"purchase"));
}
