use super::*;
use crate::contact::{Score, SuppressionReason};
use crate::event::Source;
use crate::rules::{RuleFormat, RuleSet};
use chrono::TimeZone;
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap()
}

fn engine() -> Engine {
    Engine::new(RuleSet::defaults())
}

fn ev(trigger: Trigger) -> Event {
    Event::new(Source::Tracking, trigger, t0())
}

fn purchase(amount: f64) -> Event {
    Event { amount: Some(amount), ..ev(Trigger::Purchase) }
}

fn bounce(kind: BounceType) -> Event {
    Event { bounce_type: Some(kind), ..ev(Trigger::EmailBounce) }
}

fn contact(score: i64) -> Contact {
    Contact { score: Score::clamped(score), ..Contact::default() }
}

fn fired(o: &Outcome) -> Vec<(String, &'static str, &'static str)> {
    o.actions.iter().map(|a| (a.rule_id.to_string(), a.action_type.as_str(), a.status.as_str())).collect()
}

#[test]
fn email_opened_adds_five_for_standard_and_vip_only() {
    let e = engine();
    let o = e.apply(&contact(50), &ev(Trigger::EmailOpened), t0());
    assert_eq!(o.contact.score.value(), 55);
    assert_eq!(o.contact.engagement.opens, 1);
    let vip = Contact { segment: "VIP".into(), ..contact(50) };
    assert_eq!(e.apply(&vip, &ev(Trigger::EmailOpened), t0()).contact.score.value(), 55);
    let churn = Contact { segment: "Churn".into(), ..contact(50) };
    let o = e.apply(&churn, &ev(Trigger::EmailOpened), t0());
    assert_eq!(o.contact.score.value(), 50);
    assert!(o.actions.is_empty());
    assert_eq!(o.contact.engagement.opens, 1, "the event is still counted");
}

#[test]
fn click_adds_fifteen_and_tags_engaged() {
    let o = engine().apply(&contact(50), &ev(Trigger::EmailClicked), t0());
    assert_eq!(o.contact.score.value(), 65);
    assert!(o.contact.tags.contains("engaged"));
    assert_eq!(
        fired(&o),
        vec![
            ("rule_email_clicked".into(), "update_score", "applied"),
            ("rule_email_clicked".into(), "add_tag", "applied"),
        ]
    );
}

#[test]
fn hard_bounce_flags_soft_bounce_does_not() {
    let e = engine();
    let o = e.apply(&contact(50), &bounce(BounceType::Hard), t0());
    assert_eq!(o.contact.score.value(), 30);
    assert!(o.contact.tags.contains("invalid_email"));
    assert!(o.contact.email_invalid);
    assert_eq!(o.changes[0].field, Field::EmailInvalid);
    assert_eq!(o.changes[0].rule_id, None);

    let o = e.apply(&contact(50), &bounce(BounceType::Soft), t0());
    assert_eq!(o.contact.score.value(), 50);
    assert!(!o.contact.tags.contains("invalid_email"));
    assert!(!o.contact.email_invalid);
    assert_eq!(o.contact.engagement.soft_bounces, 1);
    assert!(o.actions.is_empty());
}

#[test]
fn purchase_over_fifty_scores_thanks_and_schedules_task() {
    let o = engine().apply(&contact(20), &purchase(80.0), t0());
    assert_eq!(o.contact.score.value(), 70);
    assert_eq!(o.contact.purchases, 1);
    assert_eq!(o.contact.total_spent, 80.0);
    assert_eq!(o.contact.last_purchase_at, Some(t0()));
    let email = &o.actions[1];
    assert_eq!((email.action_type, email.status), (ActionType::SendEmail, ActionStatus::Scheduled));
    assert_eq!(email.due_at, Some(t0() + Duration::minutes(5)));
    let task = &o.actions[2];
    assert_eq!(task.action_type, ActionType::CreateTask);
    assert_eq!(task.due_at, Some(t0() + Duration::minutes(1440)));
}

#[test]
fn purchase_of_exactly_fifty_does_not_fire() {
    let e = engine();
    let o = e.apply(&contact(20), &purchase(50.0), t0());
    assert!(o.actions.is_empty());
    assert_eq!(o.contact.purchases, 1, "the purchase still counts");
    assert_eq!(e.apply(&contact(20), &purchase(50.01), t0()).actions.len(), 3);
    let no_amount = ev(Trigger::Purchase);
    assert!(e.apply(&contact(20), &no_amount, t0()).actions.is_empty());
}

#[test]
fn crossing_eighty_fires_high_score_once() {
    let e = engine();
    // 70 + 50 → 100 crosses 80.
    let o = e.apply(&contact(70), &purchase(80.0), t0());
    let high: Vec<_> = o.actions.iter().filter(|a| &*a.rule_id == "rule_high_score").collect();
    assert_eq!(high.len(), 2);
    assert_eq!(high[0].trigger, Trigger::LeadScoreHigh);
    assert_eq!(high[0].action_type, ActionType::SendEmail);
    assert_eq!(high[0].due_at, Some(t0()));
    assert_eq!(high[1].action_type, ActionType::ScheduleCall);
    assert_eq!(high[1].due_at, Some(t0() + Duration::minutes(120)));

    // Already high: another purchase does not fire it again.
    let o2 = e.apply(&o.contact, &purchase(80.0), t0());
    assert!(o2.actions.iter().all(|a| &*a.rule_id != "rule_high_score"));
    // Exactly reaching the threshold is a crossing (before < 80 ≤ after).
    let o3 = e.apply(&contact(65), &ev(Trigger::EmailClicked), t0());
    assert_eq!(o3.contact.score.value(), 80);
    assert!(o3.actions.iter().any(|a| &*a.rule_id == "rule_high_score"));
    // Staying below does not.
    let o4 = e.apply(&contact(60), &ev(Trigger::EmailClicked), t0());
    assert!(o4.actions.iter().all(|a| &*a.rule_id != "rule_high_score"));
}

#[test]
fn unsubscribe_flags_scores_tags_and_cancels_messaging() {
    let o = engine().apply(&contact(60), &ev(Trigger::Unsubscribe), t0());
    assert_eq!(o.contact.score.value(), 0);
    assert!(o.contact.unsubscribed && !o.contact.complained);
    assert!(o.contact.tags.contains("unsubscribed"));
    assert_eq!(o.cancel_pending, Some(CancelScope::OptOut));
    let spam = Event { complaint: true, ..ev(Trigger::Unsubscribe) };
    assert!(engine().apply(&contact(60), &spam, t0()).contact.complained);
}

#[test]
fn opted_out_contacts_get_no_email_but_the_action_is_reported() {
    let e = engine();
    let gone = Contact { unsubscribed: true, ..contact(10) };
    let o = e.apply(&gone, &purchase(100.0), t0());
    let email = o.actions.iter().find(|a| a.action_type == ActionType::SendEmail).unwrap();
    assert_eq!(email.status, ActionStatus::Suppressed);
    assert_eq!(email.reason, Some(SuppressionReason::Unsubscribed));
    assert_eq!(email.due_at, None);
    let bounced = Contact { email_invalid: true, ..contact(10) };
    let o = e.apply(&bounced, &purchase(100.0), t0());
    let email = o.actions.iter().find(|a| a.action_type == ActionType::SendEmail).unwrap();
    assert_eq!(email.reason, Some(SuppressionReason::HardBounced));
}

#[test]
fn seed_scenario() {
    let e = engine();
    let mut c = Contact::new(None, None, "Standard", t0());
    assert_eq!(c.score.value(), 50);
    let steps = [
        (ev(Trigger::EmailOpened), 55),
        (ev(Trigger::EmailClicked), 70),
        (purchase(80.0), 100),
        (ev(Trigger::Unsubscribe), 0),
    ];
    let mut high_fired = 0;
    for (event, score) in steps {
        let o = e.apply(&c, &event, t0());
        high_fired += o.actions.iter().filter(|a| a.trigger == Trigger::LeadScoreHigh).count();
        c = o.contact;
        assert_eq!(c.score.value(), score, "after {}", event.name);
    }
    assert_eq!(high_fired, 2, "send_email + schedule_call, once");
    assert!(c.tags.contains("engaged") && c.tags.contains("unsubscribed"));
}

#[test]
fn conditions_see_the_contact_as_the_event_found_it() {
    // rule b requires the tag that rule a (higher priority) adds: it must not fire.
    let rules = r#"[
      {"rule_id": "a", "trigger": "form_submit", "priority": 90,
       "actions": [{"action_type": "add_tag", "config": {"tag": "lead"}}]},
      {"rule_id": "b", "trigger": "form_submit", "priority": 10, "conditions": {"tags_all": ["lead"]},
       "actions": [{"action_type": "update_score", "config": {"score_delta": 10}}]}
    ]"#;
    let e = Engine::new(RuleSet::parse(rules, RuleFormat::Json).unwrap());
    let o = e.apply(&contact(50), &ev(Trigger::FormSubmit), t0());
    assert_eq!(fired(&o), vec![("a".into(), "add_tag", "applied")]);
    let o2 = e.apply(&o.contact, &ev(Trigger::FormSubmit), t0());
    assert_eq!(o2.contact.score.value(), 60);
}

#[test]
fn priority_order_and_ties_in_file_order() {
    let rules = r#"[
      {"rule_id": "low", "trigger": "page_visit", "priority": 10,
       "actions": [{"action_type": "set_segment", "config": {"segment": "Low"}}]},
      {"rule_id": "tie1", "trigger": "page_visit", "priority": 50,
       "actions": [{"action_type": "add_tag", "config": {"tag": "t1"}}]},
      {"rule_id": "tie2", "trigger": "page_visit", "priority": 50,
       "actions": [{"action_type": "add_tag", "config": {"tag": "t2"}}]},
      {"rule_id": "off", "trigger": "page_visit", "priority": 99, "enabled": false,
       "actions": [{"action_type": "add_tag", "config": {"tag": "never"}}]}
    ]"#;
    let e = Engine::new(RuleSet::parse(rules, RuleFormat::Json).unwrap());
    let o = e.apply(&contact(50), &ev(Trigger::PageVisit), t0());
    let ids: Vec<_> = o.actions.iter().map(|a| a.rule_id.to_string()).collect();
    assert_eq!(ids, ["tie1", "tie2", "low"]);
    assert_eq!(o.contact.segment, "Low");
}

#[test]
fn expression_conditions_and_runtime_failures() {
    let rules = r#"[
      {"rule_id": "big", "trigger": "purchase", "priority": 50,
       "conditions": {"expression": "event.amount >= 200 and contact.segment == 'VIP'"},
       "actions": [{"action_type": "add_tag", "config": {"tag": "big_spender"}}]},
      {"rule_id": "odd", "trigger": "purchase", "priority": 40,
       "conditions": {"expression": "event.amount + 1"},
       "actions": [{"action_type": "add_tag", "config": {"tag": "never"}}]}
    ]"#;
    let e = Engine::new(RuleSet::parse(rules, RuleFormat::Json).unwrap());
    let vip = Contact { segment: "VIP".into(), ..contact(50) };
    let o = e.apply(&vip, &purchase(250.0), t0());
    assert!(o.contact.tags.contains("big_spender"));
    assert!(!o.contact.tags.contains("never"));
    assert_eq!(o.warnings.len(), 1, "{:?}", o.warnings);
    assert!(!e.apply(&contact(50), &purchase(250.0), t0()).contact.tags.contains("big_spender"));
}

#[test]
fn cascades_are_bounded() {
    // Each threshold t adds 10, crossing the next one: 10 → 20 → … → 100.
    let rules: Vec<String> = (1..=10)
        .map(|i| {
            format!(
                r#"{{"rule_id": "h{i}", "trigger": "lead_score_high", "priority": 50,
                   "conditions": {{"score_threshold": {t}}},
                   "actions": [{{"action_type": "update_score", "config": {{"score_delta": 10}}}}]}}"#,
                t = i * 10
            )
        })
        .chain(std::iter::once(
            r#"{"rule_id": "start", "trigger": "form_submit", "priority": 50,
                "actions": [{"action_type": "update_score", "config": {"score_delta": 10}}]}"#
                .to_owned(),
        ))
        .collect();
    let e = Engine::new(RuleSet::parse(&format!("[{}]", rules.join(",")), RuleFormat::Json).unwrap());
    let o = e.apply(&contact(0), &ev(Trigger::FormSubmit), t0());
    assert_eq!(o.contact.score.value(), 90, "start + 8 cascade levels");
    assert!(o.warnings.iter().any(|w| w.contains("cascade cut")), "{:?}", o.warnings);
}

#[test]
fn pause_campaign_cancels_everything_pending() {
    let rules = r#"[{"rule_id": "p", "trigger": "form_submit", "priority": 50,
       "actions": [{"action_type": "pause_campaign"}]}]"#;
    let e = Engine::new(RuleSet::parse(rules, RuleFormat::Json).unwrap());
    assert_eq!(e.apply(&contact(50), &ev(Trigger::FormSubmit), t0()).cancel_pending, Some(CancelScope::All));
}

#[test]
fn delayed_internal_actions_are_scheduled_not_applied() {
    let rules = r#"[{"rule_id": "later", "trigger": "form_submit", "priority": 50,
       "actions": [{"action_type": "update_score", "config": {"score_delta": 10}, "delay_minutes": 30}]}]"#;
    let e = Engine::new(RuleSet::parse(rules, RuleFormat::Json).unwrap());
    let o = e.apply(&contact(50), &ev(Trigger::FormSubmit), t0());
    assert_eq!(o.contact.score.value(), 50);
    assert_eq!(o.actions[0].status, ActionStatus::Scheduled);
}

fn arb_event() -> impl Strategy<Value = Event> {
    (0usize..8, proptest::option::of(0.0f64..500.0), any::<bool>()).prop_map(|(k, amount, hard)| {
        let trigger = [
            Trigger::EmailOpened,
            Trigger::EmailClicked,
            Trigger::EmailBounce,
            Trigger::PageVisit,
            Trigger::Purchase,
            Trigger::FormSubmit,
            Trigger::Unsubscribe,
            Trigger::TimeBased,
        ][k];
        Event { amount, bounce_type: Some(if hard { BounceType::Hard } else { BounceType::Soft }), ..ev(trigger) }
    })
}

fn arb_rules() -> impl Strategy<Value = RuleSet> {
    proptest::collection::vec((0usize..9, 1u8..=100, -150i64..150, 0u8..=100), 0..20).prop_map(|specs| {
        let rules: Vec<String> = specs
            .iter()
            .enumerate()
            .map(|(i, (t, p, d, th))| {
                let schedule =
                    if Trigger::ALL[*t] == Trigger::TimeBased { r#""schedule": "daily 09:00","# } else { "" };
                format!(
                    r#"{{"rule_id": "r{i}", "trigger": "{}", "priority": {p}, {schedule}
                       "conditions": {{"score_threshold": {th}}},
                       "actions": [{{"action_type": "update_score", "config": {{"score_delta": {d}}}}},
                                   {{"action_type": "send_email", "config": {{"template": "x"}}}}]}}"#,
                    Trigger::ALL[*t].as_str()
                )
            })
            .collect();
        RuleSet::parse(&format!("[{}]", rules.join(",")), RuleFormat::Json).unwrap()
    })
}

proptest! {
    #[test]
    fn scores_stay_in_range_and_apply_is_deterministic(
        rules in arb_rules(),
        start in 0i64..=100,
        events in proptest::collection::vec(arb_event(), 1..30),
    ) {
        let e = Engine::new(rules);
        let mut c = contact(start);
        for event in &events {
            let a = e.apply(&c, event, t0());
            let b = e.apply(&c, event, t0());
            prop_assert_eq!(&a, &b);
            for ch in a.changes.iter().filter(|ch| ch.field == Field::Score) {
                let v = ch.after.as_i64().unwrap();
                prop_assert!((0..=100).contains(&v));
            }
            if a.contact.unsubscribed {
                prop_assert!(a.actions.iter()
                    .filter(|x| x.action_type.reaches_person())
                    .all(|x| x.status == ActionStatus::Suppressed || !c.unsubscribed));
            }
            c = a.contact;
        }
    }

    #[test]
    fn a_high_score_rule_never_fires_twice_in_one_apply(start in 0i64..=100, amount in 0.0f64..500.0) {
        let o = engine().apply(&contact(start), &purchase(amount), t0());
        let n = o.actions.iter().filter(|a| &*a.rule_id == "rule_high_score").count();
        prop_assert!(n == 0 || n == 2);
        if n == 2 { prop_assert!(start < 80); }
    }
}

#[test]
fn expressions_see_contact_and_event_fields() {
    let checks = [
        "contact.segment == 'VIP' and contact.score == 42",
        "'gold' in contact.tags and not ('lead' in contact.tags)",
        "contact.engagement.opens == 3 and contact.engagement_events == 3",
        "contact.days_since_purchase == 9 and contact.purchases == 2 and contact.total_spent == 120.5",
        "contact.email == 'ann@example.com' and contact.client_code == 'CL1'",
        "contact.attributes.cave == 'Bordeaux' and contact.rfm_score == 3.5",
        "event.name == 'purchase' and event.trigger == 'purchase' and event.amount == 80.5",
        "event.product_id == 'P1' and event.attributes.coupon == 'NOEL' and event.source == 'tracking'",
        "event.occurred_at == '2026-01-10T09:00:00Z' and contact.last_activity_at == null",
    ];
    let rules: Vec<String> = checks
        .iter()
        .enumerate()
        .map(|(i, expr)| {
            format!(
                r#"{{"rule_id": "x{i}", "trigger": "purchase", "priority": 50, "conditions": {{"expression": "{expr}"}},
                   "actions": [{{"action_type": "add_tag", "config": {{"tag": "ok{i}"}}}}]}}"#
            )
        })
        .collect();
    let e = Engine::new(RuleSet::parse(&format!("[{}]", rules.join(",")), RuleFormat::Json).unwrap());
    let mut contact = Contact {
        segment: "VIP".into(),
        score: Score::clamped(42),
        email: Some(crate::Email::parse("ann@example.com").unwrap()),
        client_code: Some(crate::ClientCode::parse("CL1").unwrap()),
        purchases: 2,
        total_spent: 120.5,
        rfm_score: Some(3.5),
        last_purchase_at: Some(t0() - Duration::days(9)),
        ..Contact::default()
    };
    contact.tags.insert("gold".into());
    contact.engagement.opens = 3;
    contact.attributes.insert("cave".into(), "Bordeaux".into());
    let mut event = purchase(80.5);
    event.product_id = Some("P1".into());
    event.attributes.insert("coupon".into(), "NOEL".into());
    let o = e.apply(&contact, &event, t0());
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    for (i, check) in checks.iter().enumerate() {
        assert!(o.contact.tags.contains(&format!("ok{i}")), "{check} did not hold");
    }
}

#[test]
fn delayed_internal_actions_apply_with_crossings() {
    let e = engine();
    let config = serde_json::json!({"score_delta": 15});
    let o = e.apply_delayed(
        &contact(70),
        ("later", ActionType::UpdateScore, &config),
        &ev(Trigger::TimeBased),
        t0(),
        &super::NoRuns,
    );
    assert_eq!(o.contact.score.value(), 85);
    assert_eq!(o.changes[0].rule_id.as_deref(), Some("later"));
    assert!(o.actions.iter().any(|a| &*a.rule_id == "rule_high_score"), "crossing 80 fires the VIP workflow");
    let tag = serde_json::json!({"tag": "vip"});
    let o = e.apply_delayed(
        &contact(10),
        ("later", ActionType::AddTag, &tag),
        &ev(Trigger::TimeBased),
        t0(),
        &super::NoRuns,
    );
    assert!(o.contact.tags.contains("vip"));
    let o = e.apply_delayed(
        &contact(10),
        ("x", ActionType::SendEmail, &tag),
        &ev(Trigger::TimeBased),
        t0(),
        &super::NoRuns,
    );
    assert_eq!(o.warnings.len(), 1);
}

const WINBACK: &str = r#"[
  {"rule_id": "winback_churn", "trigger": "time_based", "priority": 50, "schedule": "daily 09:00",
   "conditions": {"segment": ["Churn"], "min_days_since_purchase": 180},
   "actions": [{"action_type": "send_email", "config": {"template": "winback"}},
               {"action_type": "add_tag", "config": {"tag": "winback_sent"}}]},
  {"rule_id": "dormant", "trigger": "time_based", "priority": 40, "schedule": "0 8 * * 1", "timezone": "UTC",
   "conditions": {"min_days_since_activity": 30},
   "actions": [{"action_type": "add_tag", "config": {"tag": "dormant"}}]}
]"#;

#[test]
fn time_based_rules_fire_only_their_own_occurrence() {
    let e = Engine::new(RuleSet::parse(WINBACK, RuleFormat::Json).unwrap());
    assert_eq!(e.scheduled_rules().count(), 2);
    let churned = Contact {
        segment: "Churn".into(),
        purchases: 3,
        last_purchase_at: Some(t0() - Duration::days(200)),
        last_activity_at: Some(t0() - Duration::days(200)),
        ..contact(40)
    };
    let occurrence = Event { scheduled_rule: Some("winback_churn".into()), ..ev(Trigger::TimeBased) };
    assert!(e.rule_matches("winback_churn", &churned, &occurrence));
    let o = e.apply(&churned, &occurrence, t0());
    assert!(o.contact.tags.contains("winback_sent"));
    assert!(!o.contact.tags.contains("dormant"), "the other time_based rule is not this occurrence's");

    let recent = Contact { last_purchase_at: Some(t0() - Duration::days(20)), ..churned.clone() };
    assert!(!e.rule_matches("winback_churn", &recent, &occurrence));
    let never_bought = Contact { last_purchase_at: None, purchases: 0, ..churned.clone() };
    assert!(!e.rule_matches("winback_churn", &never_bought, &occurrence), "never bought is not win-back");
    let no_activity = Contact { last_activity_at: None, ..contact(50) };
    assert!(e.rule_matches("dormant", &no_activity, &ev(Trigger::TimeBased)));
    assert!(!e.rule_matches(
        "dormant",
        &Contact { last_activity_at: Some(t0()), ..contact(50) },
        &ev(Trigger::TimeBased)
    ));
}

#[test]
fn schedules_are_validated() {
    let no_schedule = r#"[{"rule_id": "t", "trigger": "time_based", "priority": 5,
        "actions": [{"action_type": "add_tag", "config": {"tag": "x"}}]}]"#;
    let errs = RuleSet::parse(no_schedule, RuleFormat::Json).unwrap_err();
    assert!(errs[0].to_string().contains("schedule: a time_based rule needs a schedule"), "{errs:?}");
    let misplaced = r#"[{"rule_id": "t", "trigger": "purchase", "priority": 5, "schedule": "daily 09:00",
        "actions": [{"action_type": "add_tag", "config": {"tag": "x"}}]}]"#;
    assert!(RuleSet::parse(misplaced, RuleFormat::Json).is_err());
    let bad = r#"[{"rule_id": "t", "trigger": "time_based", "priority": 5, "schedule": "daily 9h",
        "actions": [{"action_type": "add_tag", "config": {"tag": "x"}}]}]"#;
    let errs = RuleSet::parse(bad, RuleFormat::Json).unwrap_err();
    assert!(errs[0].to_string().contains("schedule:"), "{errs:?}");
    let set = RuleSet::parse(WINBACK, RuleFormat::Json).unwrap();
    let again = RuleSet::parse(&set.to_toml(), RuleFormat::Toml).unwrap();
    assert_eq!(again.specs(), set.specs());
}
