//! `Engine::apply` throughput: the six default rules, and 1,000 generated rules spread
//! over the triggers, a third of them with expressions.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relance_core::{BounceType, Contact, Engine, Event, RuleFormat, RuleSet, Score, Source, Trigger};

fn events() -> Vec<Event> {
    let at = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap();
    let base = |t| Event::new(Source::Tracking, t, at);
    vec![
        base(Trigger::EmailOpened),
        base(Trigger::EmailClicked),
        Event { amount: Some(80.0), ..base(Trigger::Purchase) },
        base(Trigger::PageVisit),
        Event { bounce_type: Some(BounceType::Soft), ..base(Trigger::EmailBounce) },
        base(Trigger::FormSubmit),
        base(Trigger::EmailOpened),
        Event { amount: Some(30.0), ..base(Trigger::Purchase) },
    ]
}

/// 1,000 rules over the eight event triggers; every third has an expression.
pub fn generated_rules(n: usize) -> RuleSet {
    let triggers = [
        "email_opened",
        "email_clicked",
        "email_bounce",
        "page_visit",
        "purchase",
        "form_submit",
        "unsubscribe",
        "lead_score_high",
    ];
    let segments = ["Standard", "VIP", "Churn", "Prospect"];
    let rules: Vec<String> = (0..n)
        .map(|i| {
            let trigger = triggers[i % triggers.len()];
            let conditions = if i % 3 == 0 {
                format!(r#"{{"expression": "contact.purchases >= {} and event.occurred_at != ''"}}"#, i % 5)
            } else {
                format!(
                    r#"{{"segment": ["{}"], "score_min": {}, "tags_none": ["blocked{}"]}}"#,
                    segments[i % segments.len()],
                    i % 60,
                    i % 7
                )
            };
            format!(
                r#"{{"rule_id": "gen_{i}", "trigger": "{trigger}", "priority": {}, "conditions": {conditions},
                   "actions": [{{"action_type": "update_score", "config": {{"score_delta": {}}}}},
                               {{"action_type": "add_tag", "config": {{"tag": "t{}"}}}}]}}"#,
                1 + i % 100,
                (i % 7) as i64 - 3,
                i % 13
            )
        })
        .collect();
    RuleSet::parse(&format!("[{}]", rules.join(",")), RuleFormat::Json).expect("generated rules are valid")
}

fn bench(c: &mut Criterion) {
    let events = events();
    let contact = Contact { score: Score::clamped(55), purchases: 2, ..Contact::default() };
    let now = Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 1).unwrap();

    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, engine) in [
        ("default_6_rules", Engine::new(RuleSet::defaults())),
        ("generated_1000_rules", Engine::new(generated_rules(1000))),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for e in &events {
                    black_box(engine.apply(black_box(&contact), e, now));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
