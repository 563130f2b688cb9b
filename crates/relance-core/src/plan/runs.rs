//! Runs: one firing of a rule that has a goal, a re-entry policy or a `skip_if`, with
//! its delayed steps. What they are, and the decisions about them that do not belong to
//! one event: whether a due step is skipped. The planner decides the rest (start, goal,
//! opt-out) in [`super::Planner`].
//!
//! Invariants: a run is `active` until it ends, once: `goal_reached` (its pending steps
//! cancelled with `goal: <trigger>`), `cancelled` (opt-out, `pause_campaign`, operator:
//! every pending step cancelled), or `completed` (no step left pending: each done,
//! skipped, cancelled, suppressed or dead). Its steps are jobs carrying its id.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use zen_expression::Variable;
use zen_expression::vm::VM;

use super::Slot;
use crate::contact::Contact;
use crate::engine::RunLedger;
use crate::event::{Event, Trigger};
use crate::rules::{CompiledExpression, Happening};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Active,
    GoalReached,
    Completed,
    Cancelled,
}

impl RunState {
    pub const NAMES: &'static [&'static str] = &["active", "goal_reached", "completed", "cancelled"];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Active => "active",
            RunState::GoalReached => "goal_reached",
            RunState::Completed => "completed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        Some(match s {
            "active" => RunState::Active,
            "goal_reached" => RunState::GoalReached,
            "completed" => RunState::Completed,
            "cancelled" => RunState::Cancelled,
            _ => return None,
        })
    }
}

/// What a completed run records.
pub const COMPLETED: &str = "every step ended";
/// What an opt-out records on runs and their steps.
pub const UNSUBSCRIBED: &str = "unsubscribed";

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRun {
    pub id: String,
    pub contact_id: i64,
    pub rule_id: String,
    pub rule_version: i64,
    pub started_at: DateTime<Utc>,
    pub state: RunState,
    pub ended_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    /// The rule's goal when the run started: a run keeps the rule it started under.
    pub goal: Option<Happening>,
    /// Triggers some step's `skip_if` waits for.
    pub watch: Vec<Trigger>,
    /// Those of `watch` that happened since the run started.
    pub seen: Vec<Trigger>,
}

/// A run the plan read or started, and what it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRun {
    pub run: LoadedRun,
    pub contact: Slot,
    /// To insert (started by this plan).
    pub is_new: bool,
    /// To update (state or `seen` changed).
    pub changed: bool,
}

impl PlannedRun {
    pub(crate) fn end(&mut self, state: RunState, reason: &str, now: DateTime<Utc>) {
        self.run.state = state;
        self.run.ended_at = Some(now);
        self.run.reason = Some(reason.to_owned());
        self.changed = true;
    }
}

/// Stored pending steps of a run to cancel, all action types: the run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCancellation {
    pub run_id: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunChangeKind {
    Started,
    NotEntered,
    GoalReached,
    Cancelled,
}

/// What an event did to one run, as answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunChange {
    pub rule_id: String,
    /// `None` for `not_entered`.
    pub run_id: Option<String>,
    pub change: RunChangeKind,
    pub reason: Option<String>,
}

/// A contact's runs as the engine sees them.
pub(crate) struct SlotRuns<'p> {
    pub runs: &'p [PlannedRun],
    pub slot: Slot,
    /// Rules paused by an operator.
    pub paused: &'p [String],
}

impl RunLedger for SlotRuns<'_> {
    fn has_active(&self, rule_id: &str) -> bool {
        self.runs.iter().any(|r| r.contact == self.slot && r.run.rule_id == rule_id && r.run.state == RunState::Active)
    }

    fn last_started(&self, rule_id: &str) -> Option<DateTime<Utc>> {
        self.runs.iter().filter(|r| r.contact == self.slot && r.run.rule_id == rule_id).map(|r| r.run.started_at).max()
    }

    fn is_paused(&self, rule_id: &str) -> bool {
        self.paused.iter().any(|p| p == rule_id)
    }
}

/// Goal and `skip_if` expressions, compiled once per source. (No VM kept: the planner
/// is held across awaits by the PostgreSQL backend, and a VM is not `Send`.)
#[derive(Default)]
pub(crate) struct Expressions {
    compiled: HashMap<String, Result<CompiledExpression, String>>,
}

impl Expressions {
    /// Evaluates `source` over `context`; a broken expression is an error, never a match.
    pub fn holds(&mut self, source: &str, context: &Variable) -> Result<bool, String> {
        let compiled = self
            .compiled
            .entry(source.to_owned())
            .or_insert_with(|| CompiledExpression::compile(source).map_err(|e| e.to_string()));
        let expr = compiled.as_ref().map_err(Clone::clone)?;
        expr.matches(context, &mut VM::new())
    }
}

/// Whether the event reaches the run's goal: the reason it records if so.
pub(crate) fn goal_reached(
    run: &LoadedRun,
    contact: &Contact,
    event: &Event,
    expressions: &mut Expressions,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let goal = run.goal.as_ref()?;
    if let Some(t) = event.trigger.filter(|t| goal.triggers.contains(t)) {
        return Some(format!("goal: {t}"));
    }
    let source = goal.expression.as_deref()?;
    let context = crate::engine::expression_context(contact, event);
    match expressions.holds(source, &context) {
        Ok(true) => Some("goal: expression".to_owned()),
        Ok(false) => None,
        Err(e) => {
            warnings.push(format!("run {} of rule {}: goal expression: {e}", run.id, run.rule_id));
            None
        }
    }
}

/// Whether a due step is skipped, and why: one of `skip.triggers` happened since the run
/// started, or `skip.expression` holds over the contact as it is now and the run.
pub fn skip_reason(
    skip: &Happening,
    run: &LoadedRun,
    contact: &Contact,
    now: DateTime<Utc>,
) -> Result<Option<String>, String> {
    if let Some(t) = skip.triggers.iter().find(|t| run.seen.contains(t)) {
        return Ok(Some(format!("skip_if: {t} since the run started")));
    }
    let Some(source) = skip.expression.as_deref() else { return Ok(None) };
    let context = crate::engine::run_expression_context(contact, &run.rule_id, run.started_at, now);
    Ok(Expressions::default().holds(source, &context)?.then(|| format!("skip_if: {source}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seen: Vec<Trigger>) -> LoadedRun {
        LoadedRun {
            id: "r1".into(),
            contact_id: 1,
            rule_id: "tasting".into(),
            rule_version: 1,
            started_at: "2026-05-01T10:00:00Z".parse().unwrap(),
            state: RunState::Active,
            ended_at: None,
            reason: None,
            goal: None,
            watch: vec![Trigger::EmailClicked],
            seen,
        }
    }

    fn t() -> DateTime<Utc> {
        "2026-05-03T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn skip_on_a_trigger_seen_since_the_start() {
        let skip = Happening { triggers: vec![Trigger::EmailClicked], expression: None };
        let contact = Contact::default();
        assert_eq!(skip_reason(&skip, &run(vec![]), &contact, t()), Ok(None));
        assert_eq!(
            skip_reason(&skip, &run(vec![Trigger::EmailClicked]), &contact, t()),
            Ok(Some("skip_if: email_clicked since the run started".into()))
        );
    }

    #[test]
    fn skip_on_an_expression_over_the_contact_and_the_run() {
        let mut contact = Contact::default();
        contact.score = crate::contact::Score::clamped(85);
        let skip = Happening { triggers: vec![], expression: Some("contact.score >= 80".into()) };
        assert_eq!(skip_reason(&skip, &run(vec![]), &contact, t()), Ok(Some("skip_if: contact.score >= 80".into())));
        let by_run = Happening { triggers: vec![], expression: Some("run.rule_id == 'other'".into()) };
        assert_eq!(skip_reason(&by_run, &run(vec![]), &contact, t()), Ok(None));
        let started =
            Happening { triggers: vec![], expression: Some("run.started_at == '2026-05-01T10:00:00Z'".into()) };
        assert!(skip_reason(&started, &run(vec![]), &contact, t()).unwrap().is_some());
    }
}
