//! Named scores (`[[score]]`): updates, conditions, crossings and decay, with time passed in.

use super::*;
use crate::event::Source;
use crate::rules::{RuleFormat, RuleSet};
use chrono::TimeZone;

const RULES: &str = r#"
[[score]]
name = "engagement"
initial = 0
range = [0, 100]
decay = { half_life_days = 30 }

[[score]]
name = "wine_interest"
range = [0, 10]

[[rule]]
rule_id = "opened"
trigger = "email_opened"
priority = 50
actions = [{ action_type = "update_score", config = { score = "engagement", score_delta = 40 } }]

[[rule]]
rule_id = "visited"
trigger = "page_visit"
priority = 50
actions = [{ action_type = "update_score", config = { score = "wine_interest", score_delta = 25 } }]

[[rule]]
rule_id = "engaged_reader"
trigger = "lead_score_high"
priority = 60
conditions = { score = "engagement", score_threshold = 70 }
actions = [{ action_type = "add_tag", config = { tag = "engaged_reader" } }, { action_type = "create_task", config = { title = "Call" } }]

[[rule]]
rule_id = "clicked_if_engaged"
trigger = "email_clicked"
priority = 50
conditions = { score = "engagement", score_min = 30, expression = "contact.scores.wine_interest >= 10" }
actions = [{ action_type = "add_tag", config = { tag = "clicker" } }]
"#;

fn engine() -> Engine {
    Engine::new(RuleSet::parse(RULES, RuleFormat::Toml).unwrap())
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap()
}

fn at(trigger: Trigger, now: DateTime<Utc>) -> Event {
    Event::new(Source::Tracking, trigger, now)
}

fn value(c: &Contact, name: &str) -> i64 {
    c.scores[name].value
}

#[test]
fn update_score_changes_the_named_score_only_and_clamps_to_its_range() {
    let e = engine();
    let o = e.apply(&Contact::default(), &at(Trigger::EmailOpened, t0()), t0());
    assert_eq!(value(&o.contact, "engagement"), 40);
    assert_eq!(value(&o.contact, "wine_interest"), 0, "declared scores start at their initial value");
    assert_eq!(o.contact.score.value(), 50, "the lead score is untouched");
    let ch = o.changes.iter().find(|c| c.field.as_str() == "scores.engagement").unwrap();
    assert_eq!((ch.before.clone(), ch.after.clone(), ch.cause_label()), (0.into(), 40.into(), Some("update_score")));

    let o = e.apply(&o.contact, &at(Trigger::PageVisit, t0()), t0());
    assert_eq!(value(&o.contact, "wine_interest"), 10, "25 clamps to the range's top, 10");
}

#[test]
fn conditions_and_expressions_read_named_scores() {
    let e = engine();
    let mut c = e.apply(&Contact::default(), &at(Trigger::PageVisit, t0()), t0()).contact;
    let o = e.apply(&c, &at(Trigger::EmailClicked, t0()), t0());
    assert!(!o.contact.tags.contains("clicker"), "engagement 0 is under score_min 30");
    c = e.apply(&c, &at(Trigger::EmailOpened, t0()), t0()).contact;
    let o = e.apply(&c, &at(Trigger::EmailClicked, t0()), t0());
    assert!(o.contact.tags.contains("clicker"), "engagement 40 ≥ 30 and wine_interest 10 ≥ 10");
}

#[test]
fn decay_is_exact_over_zero_one_and_two_half_lives_and_recorded() {
    let e = engine();
    let c = e.apply(&Contact::default(), &at(Trigger::EmailOpened, t0()), t0()).contact;
    let c = e.apply(&c, &at(Trigger::EmailOpened, t0()), t0()).contact;
    assert_eq!(value(&c, "engagement"), 80);
    // A visit touches the contact without changing engagement: decay is materialised.
    for (days, expected) in [(0, 80), (30, 40), (60, 20)] {
        let now = t0() + Duration::days(days);
        let o = e.apply(&c, &at(Trigger::PageVisit, now), now);
        assert_eq!(value(&o.contact, "engagement"), expected, "after {days} days");
        let decay: Vec<&Change> = o.changes.iter().filter(|ch| ch.decay).collect();
        if expected == 80 {
            assert!(decay.is_empty());
        } else {
            assert_eq!(decay.len(), 1);
            assert_eq!((decay[0].before.clone(), decay[0].after.clone()), (80.into(), expected.into()));
            assert_eq!((decay[0].cause_label(), decay[0].rule_id.clone()), (Some("decay"), None));
        }
        assert_eq!(o.contact.scores["engagement"].base, 80, "materialising never moves the base");
    }
    // Materialised at 30 days, then looked at 60 days: the same 20 as straight from 80.
    let mid = e.apply(&c, &at(Trigger::PageVisit, t0() + Duration::days(30)), t0() + Duration::days(30)).contact;
    let late = t0() + Duration::days(60);
    assert_eq!(value(&e.apply(&mid, &at(Trigger::PageVisit, late), late).contact, "engagement"), 20);
}

#[test]
fn a_score_that_decayed_below_a_threshold_fires_again_on_the_next_rise() {
    let e = engine();
    let c = e.apply(&Contact::default(), &at(Trigger::EmailOpened, t0()), t0()).contact;
    let o = e.apply(&c, &at(Trigger::EmailOpened, t0()), t0());
    assert_eq!(value(&o.contact, "engagement"), 80);
    assert!(o.actions.iter().any(|a| &*a.rule_id == "engaged_reader"), "0 → 40 → 80 crosses 70");
    let mut c = o.contact;
    c.tags.clear();

    // Still above 70 a week later: another open (80 decayed to 68, +40 → 100) crosses again
    // only because decay took it under first.
    let week = t0() + Duration::days(7);
    let o = e.apply(&c, &at(Trigger::EmailOpened, week), week);
    let decayed = o.changes.iter().find(|ch| ch.decay).unwrap();
    assert_eq!(decayed.after, 68);
    assert!(o.actions.iter().any(|a| &*a.rule_id == "engaged_reader"), "68 → 100 crosses 70 again: re-armed");

    // The same day, at 100: a rise from above the threshold does not fire.
    let o = e.apply(&o.contact, &at(Trigger::EmailOpened, week), week);
    assert!(!o.actions.iter().any(|a| &*a.rule_id == "engaged_reader"));
}

#[test]
fn the_lead_score_crossings_ignore_named_scores() {
    let set = RuleSet::parse(
        &RULES.replace(
            "conditions = { score = \"engagement\", score_threshold = 70 }",
            "conditions = { score_threshold = 70 }",
        ),
        RuleFormat::Toml,
    )
    .unwrap();
    let o = Engine::new(set).apply(&Contact::default(), &at(Trigger::EmailOpened, t0()), t0());
    let o2 = Engine::new(RuleSet::parse(RULES, RuleFormat::Toml).unwrap()).apply(
        &o.contact,
        &at(Trigger::EmailOpened, t0()),
        t0(),
    );
    assert!(!o.actions.iter().any(|a| &*a.rule_id == "engaged_reader"), "the lead score stayed at 50");
    assert!(o2.actions.iter().any(|a| &*a.rule_id == "engaged_reader"));
}

#[test]
fn unknown_scores_and_out_of_range_thresholds_are_refused_by_name() {
    let bad = RULES
        .replace("score = \"wine_interest\", score_delta", "score = \"wine\", score_delta")
        .replace("score_threshold = 70", "score_threshold = 170")
        .replace("decay = { half_life_days = 30 }", "decay = { half_life_days = 30, points_per_day = 1 }");
    let errors: Vec<String> =
        RuleSet::parse(&bad, RuleFormat::Toml).unwrap_err().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("score[0].decay")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("actions[0].config.score: unknown score \"wine\"; declared: engagement, wine_interest")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("conditions.score_threshold: 170 is outside the score's range [0, 100]")),
        "{errors:?}"
    );
}

#[test]
fn score_declarations_round_trip_through_toml_and_json() {
    let set = RuleSet::parse(RULES, RuleFormat::Toml).unwrap();
    let toml = RuleSet::parse(&set.to_toml(), RuleFormat::Toml).unwrap();
    let json = RuleSet::parse(&set.to_seed_json(), RuleFormat::Json).unwrap();
    for again in [toml, json] {
        assert_eq!(again.scores(), set.scores());
        assert_eq!(again.specs(), set.specs());
    }
    assert!(RuleSet::defaults().to_seed_json().trim_start().starts_with('['), "no scores: the seed's array");
}
