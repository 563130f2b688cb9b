//! `Engine::apply` throughput: the six default rules, and 100 and 1,000 generated rules
//! spread over the triggers, a third of them with expressions (how apply time grows).

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

/// `n` rules over the eight event triggers, every third with an expression. Like real
/// rules, each is selective: a segment (one of four) and a score band or purchase count,
/// so that a handful fire per event rather than a hundred.
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
            let segment = segments[(i / triggers.len()) % segments.len()];
            let conditions = if i % 3 == 0 {
                format!(
                    r#"{{"segment": ["{segment}"], "expression": "contact.purchases == {} and (event.amount == null or event.amount > {})"}}"#,
                    i % 7,
                    i % 200
                )
            } else {
                let lo = (i * 7) % 90;
                format!(r#"{{"segment": ["{segment}"], "score_min": {lo}, "score_max": {}, "tags_none": ["blocked{}"]}}"#, lo + 9, i % 7)
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

    for (name, engine) in [
        ("default_6_rules", Engine::new(RuleSet::defaults())),
        ("generated_100_rules", Engine::new(generated_rules(100))),
        ("generated_1000_rules", Engine::new(generated_rules(1000))),
    ] {
        let fired: usize = events.iter().map(|e| engine.apply(&contact, e, now).actions.len()).sum();
        eprintln!("{name}: {:.1} actions fired per event on average", fired as f64 / events.len() as f64);
    }
    let mut group = c.benchmark_group("apply");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, engine) in [
        ("default_6_rules", Engine::new(RuleSet::defaults())),
        ("generated_100_rules", Engine::new(generated_rules(100))),
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
