//! The tasting follow-up of `docs/rules.md` through the memory store: goals, skips,
//! re-entry, opt-out and `in_run`, decided by the planner alone.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::memory::{MemoryRules, MemoryStore};
use super::{RunChangeKind, RunState};
use crate::contact::Email;
use crate::engine::Engine;
use crate::event::{Event, Source, Trigger};
use crate::inbound::{Identity, InboundEvent};
use crate::rules::{RuleFormat, RuleSet};

pub(crate) const TASTING: &str = r#"
[[rule]]
rule_id = "tasting_follow_up"
trigger = "form_submit"
priority = 70
[rule.goal]
triggers = ["purchase"]
[rule.reentry]
policy = "once_per"
days = 30
[[rule.actions]]
action_type = "send_email"
config = { template = "tasting_invite" }
[[rule.actions]]
action_type = "send_email"
config = { template = "tasting_reminder" }
delay_minutes = 4320
skip_if = { triggers = ["email_clicked"] }
[[rule.actions]]
action_type = "create_task"
config = { task = "Appeler pour la dégustation" }
delay_minutes = 10080
skip_if = { expression = "contact.score >= 80" }

[[rule]]
rule_id = "click_in_tasting"
trigger = "email_clicked"
priority = 10
[rule.conditions]
in_run = "tasting_follow_up"
[[rule.actions]]
action_type = "add_tag"
config = { tag = "tasting_clicker" }
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0).unwrap()
}

fn event(trigger: Trigger, at: DateTime<Utc>) -> InboundEvent {
    let mut event = Event::new(Source::Tracking, trigger, at);
    if trigger == Trigger::Purchase {
        event.amount = Some(40.0);
    }
    InboundEvent {
        identity: Identity { email: Some(Email::parse("anne@example.fr").unwrap()), client_code: None },
        event,
        dedupe_key: None,
        sender_event_id: None,
        recognised: true,
        raw: json!({}),
    }
}

struct World {
    engine: Engine,
    store: MemoryStore,
}

impl World {
    fn new() -> World {
        World { engine: Engine::new(RuleSet::parse(TASTING, RuleFormat::Toml).unwrap()), store: MemoryStore::default() }
    }

    fn send(&mut self, trigger: Trigger, at: DateTime<Utc>) -> super::Answer {
        self.run_until(at);
        let rules = MemoryRules { engine: &self.engine, rule_version: 1, default_segment: "Standard" };
        self.store.ingest(&rules, &[event(trigger, at)], at).unwrap().answers.remove(0)
    }

    fn run_until(&mut self, at: DateTime<Utc>) {
        let rules = MemoryRules { engine: &self.engine, rule_version: 1, default_segment: "Standard" };
        self.store.run_due(&rules, at, true).unwrap();
    }

    /// (template or task, state, reason) of each job, in creation order.
    fn steps(&self) -> Vec<(String, String, Option<String>)> {
        let name = |c: &serde_json::Value| {
            c.get("template").or_else(|| c.get("task")).and_then(|v| v.as_str()).unwrap_or("").to_owned()
        };
        self.store.jobs.iter().map(|j| (name(&j.config), j.state.clone(), j.last_error.clone())).collect()
    }
}

fn form(w: &mut World, at: DateTime<Utc>) -> super::Answer {
    let mut e = event(Trigger::FormSubmit, at);
    e.event.attributes.insert("form".into(), json!("degustation"));
    w.run_until(at);
    let rules = MemoryRules { engine: &w.engine, rule_version: 1, default_segment: "Standard" };
    w.store.ingest(&rules, &[e], at).unwrap().answers.remove(0)
}

#[test]
fn no_click_no_purchase_every_step_runs_and_the_run_completes() {
    let mut w = World::new();
    let a = form(&mut w, t0());
    assert_eq!(a.runs[0].change, RunChangeKind::Started);
    w.run_until(t0() + Duration::days(8));
    let states: Vec<String> = w.steps().into_iter().map(|s| s.1).collect();
    assert_eq!(states, ["done", "done", "done"]);
    assert_eq!(w.store.runs[0].state, RunState::Completed);
}

#[test]
fn a_click_skips_the_reminder_and_the_task_still_runs() {
    let mut w = World::new();
    form(&mut w, t0());
    let click = w.send(Trigger::EmailClicked, t0() + Duration::days(1));
    assert!(click.actions.iter().any(|a| &*a.fired.rule_id == "click_in_tasting"), "in_run holds");
    w.run_until(t0() + Duration::days(8));
    let steps = w.steps();
    assert_eq!(steps[1].1, "skipped");
    assert_eq!(steps[1].2.as_deref(), Some("skip_if: email_clicked since the run started"));
    assert_eq!(steps[2].1, "done");
    assert_eq!(w.store.runs[0].state, RunState::Completed);
}

#[test]
fn a_purchase_reaches_the_goal_and_cancels_what_is_left() {
    let mut w = World::new();
    form(&mut w, t0());
    let buy = w.send(Trigger::Purchase, t0() + Duration::days(2));
    assert_eq!(buy.runs[0].change, RunChangeKind::GoalReached);
    assert_eq!(buy.runs[0].reason.as_deref(), Some("goal: purchase"));
    let steps = w.steps();
    assert_eq!(steps[0].1, "done");
    for s in &steps[1..3] {
        assert_eq!((s.1.as_str(), s.2.as_deref()), ("cancelled", Some("goal: purchase")));
    }
    assert_eq!(w.store.runs[0].state, RunState::GoalReached);
    // After the goal, a click is no longer "in the tasting sequence".
    let click = w.send(Trigger::EmailClicked, t0() + Duration::days(3));
    assert!(click.actions.iter().all(|a| &*a.fired.rule_id != "click_in_tasting"));
}

#[test]
fn reentry_once_per_30_days() {
    let mut w = World::new();
    form(&mut w, t0());
    let again = form(&mut w, t0() + Duration::days(10));
    assert_eq!(again.runs[0].change, RunChangeKind::NotEntered);
    assert!(again.runs[0].reason.as_deref().unwrap().starts_with("reentry once_per 30 days"), "{:?}", again.runs);
    assert!(again.actions.is_empty(), "a refused firing writes nothing else");
    let later = form(&mut w, t0() + Duration::days(31));
    assert_eq!(later.runs[0].change, RunChangeKind::Started);
    assert_eq!(w.store.runs.len(), 2);
}

#[test]
fn an_unsubscribe_cancels_the_run_and_every_step() {
    let mut w = World::new();
    form(&mut w, t0());
    let out = w.send(Trigger::Unsubscribe, t0() + Duration::hours(1));
    assert_eq!(out.runs[0].change, RunChangeKind::Cancelled);
    assert_eq!(w.store.runs[0].state, RunState::Cancelled);
    assert_eq!(w.store.runs[0].reason.as_deref(), Some("unsubscribed"));
    let states: Vec<String> = w.steps().into_iter().map(|s| s.1).collect();
    assert_eq!(states, ["done", "cancelled", "cancelled"], "the invite had gone already");
}

#[test]
fn a_high_score_skips_the_call() {
    let mut w = World::new();
    form(&mut w, t0());
    let id = *w.store.contacts.keys().next().unwrap();
    w.store.contacts.get_mut(&id).unwrap().contact.score = crate::contact::Score::clamped(85);
    w.run_until(t0() + Duration::days(8));
    let steps = w.steps();
    assert_eq!((steps[2].1.as_str(), steps[2].2.as_deref()), ("skipped", Some("skip_if: contact.score >= 80")));
}

#[test]
fn sequence_fields_are_validated_with_their_path() {
    let bad = r#"
[[rule]]
rule_id = "x"
trigger = "form_submit"
priority = 5
goal = { triggers = ["purchased"] }
reentry = { policy = "once_per" }
[rule.conditions]
in_run = "nope"
[[rule.actions]]
action_type = "send_email"
config = { template = "t" }
skip_if = { triggers = ["email_clicked"] }
"#;
    let errors: Vec<String> = match RuleSet::parse(bad, RuleFormat::Toml) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    };
    let text = errors.join("\n");
    assert!(text.contains("goal.triggers[0]: unknown trigger \"purchased\""), "{text}");
    // Structural errors stop the rule; fix the trigger to see the semantic ones.
    let errors: Vec<String> = match RuleSet::parse(&bad.replace("purchased", "purchase"), RuleFormat::Toml) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    };
    let text = errors.join("\n");
    assert!(text.contains("reentry.days: missing: once_per needs `days`"), "{text}");
    assert!(text.contains("actions[0].skip_if: only a delayed action can be skipped"), "{text}");
    assert!(text.contains("conditions.in_run: no rule \"nope\""), "{text}");
}

#[test]
fn the_rule_examples_in_the_docs_are_valid() {
    let docs = include_str!("../../../../docs/rules.md");
    let mut blocks = 0;
    for block in docs.split("```toml").skip(1) {
        let text = block.split("```").next().unwrap();
        if text.contains("[[rule]]") {
            blocks += 1;
            if let Err(errors) = RuleSet::parse(text, RuleFormat::Toml) {
                panic!("docs/rules.md example invalid: {errors:?}\n{text}");
            }
        }
    }
    assert!(blocks >= 3, "the examples are found ({blocks})");
}
