//! Arbitrary text as a rule's expression: it is refused at load or it evaluates (to a
//! match or not) on a contact and an event; never a panic, never a hang (libFuzzer's
//! -timeout) or a memory blow-up (-rss_limit_mb).
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use relance_core::{Contact, Engine, Event, RuleFormat, RuleSet, Source, Trigger};

fuzz_target!(
    // Relance catches zen-expression's own panics (see `CompiledExpression::matches`);
    // libfuzzer-sys's hook would abort on them before they are caught. A panic that
    // escapes the engine still aborts: the harness catches it and aborts itself.
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| {
    let Ok(expression) = std::str::from_utf8(data) else { return };
    let rule = serde_json::json!([{
        "rule_id": "fuzz", "trigger": "purchase", "priority": 50,
        "conditions": {"expression": expression},
        "actions": [{"action_type": "add_tag", "config": {"tag": "matched"}}]
    }]);
    let Ok(rules) = RuleSet::parse(&rule.to_string(), RuleFormat::Json) else { return };
    let now = Utc.timestamp_opt(1_772_442_000, 0).unwrap();
    let mut contact = Contact::new(None, None, "VIP", now);
    contact.tags.insert("engaged".into());
    let event = Event {
        source: Source::Tracking,
        name: "purchase".into(),
        trigger: Some(Trigger::Purchase),
        occurred_at: now,
        amount: Some(80.0),
        link: None,
        bounce_type: None,
        page: Some("/cave".into()),
        product_id: Some("PROD1".into()),
        message_id: None,
        campaign_id: None,
        complaint: false,
        scheduled_rule: None,
        attributes: Default::default(),
    };
    let _ = Engine::new(rules).apply(&contact, &event, now);
});
