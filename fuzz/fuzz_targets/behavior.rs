//! Arbitrary bytes as a behaviour webhook body.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use relance_core::inbound::{parse_behavior, parse_many};
use relance_core::{Contact, Engine, RuleSet};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    if let Ok(events) = parse_many(&value, |v| parse_behavior(v, now)) {
        let engine = Engine::new(RuleSet::defaults());
        for e in events {
            let out = engine.apply(&Contact::default(), &e.event, now);
            assert!(out.contact.score.value() <= 100);
        }
    }
});
