//! `Engine::apply`: one event against one contact, with no I/O and no clock.
//!
//! Semantics (DESIGN §3):
//! - conditions are evaluated against the contact *as the event found it*;
//! - the event's own effects (flags, counters) are applied first, then the matching rules'
//!   actions in priority order (higher first, ties in file order);
//! - internal actions without delay change the contact at once, scores clamped after each
//!   change; everything delayed or reaching the outside becomes a scheduled job;
//! - a score change crossing a `lead_score_high` threshold upward (before < T ≤ after)
//!   fires that rule once, in the same apply; cascades stop at depth [`MAX_CASCADE_DEPTH`];
//! - messaging actions for a contact who opted out (or whose email hard-bounced) come out
//!   `suppressed`, never dropped silently.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use serde_json::Value;
use zen_expression::Variable;
use zen_expression::vm::VM;

use crate::contact::Contact;
use crate::event::{ActionType, BounceType, Event, Trigger};
use crate::named_score::{LEAD, ScoreValue};
use crate::rules::{Rule, RuleSet};

/// How deep `lead_score_high` cascades may go before they are cut (and the cut recorded).
pub const MAX_CASCADE_DEPTH: u8 = 8;

mod context;
mod outcome;

pub(crate) use context::{expression_context, run_expression_context};

pub use outcome::{ActionStatus, CancelScope, Change, DECAY, Field, FiredAction, Outcome, RunEntry};

/// What the engine needs to know of a contact's runs (see `docs/rules.md`, "Follow-up
/// sequences"): as the event found them.
pub trait RunLedger {
    /// Whether the contact has an active run of this rule.
    fn has_active(&self, rule_id: &str) -> bool;
    /// When the contact's latest run of this rule started, if it ever had one.
    fn last_started(&self, rule_id: &str) -> Option<DateTime<Utc>>;
    /// Whether an operator paused this rule (the kill switch): it fires nothing.
    fn is_paused(&self, _rule_id: &str) -> bool {
        false
    }
}

/// A contact with no runs at all.
pub struct NoRuns;

impl RunLedger for NoRuns {
    fn has_active(&self, _: &str) -> bool {
        false
    }
    fn last_started(&self, _: &str) -> Option<DateTime<Utc>> {
        None
    }
}

/// Why a rule's re-entry policy refuses a new run now, if it does.
pub fn reentry_refusal(rule: &Rule, runs: &dyn RunLedger, now: DateTime<Utc>) -> Option<String> {
    use crate::rules::ReentryPolicy;
    let reentry = rule.reentry.as_ref()?;
    let last = runs.last_started(&rule.rule_id)?;
    let day = last.format("%Y-%m-%d");
    match (reentry.policy, reentry.days) {
        (ReentryPolicy::Always, _) => None,
        (ReentryPolicy::Once, _) => Some(format!("reentry once: already entered on {day}")),
        (ReentryPolicy::OncePer, Some(days)) if now - last < Duration::days(i64::from(days)) => Some(format!(
            "reentry once_per {days} days: the last run started on {day}, {} day(s) ago",
            (now - last).num_days()
        )),
        (ReentryPolicy::OncePer, _) => None,
    }
}

/// A rule set indexed for applying.
#[derive(Debug, Clone)]
pub struct Engine {
    rules: RuleSet,
    /// Enabled rules per trigger, in execution order.
    by_trigger: [Vec<usize>; 9],
}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        let mut by_trigger: [Vec<usize>; 9] = Default::default();
        for (i, rule) in rules.rules().iter().enumerate().filter(|(_, r)| r.enabled) {
            by_trigger[rule.trigger.index()].push(i);
        }
        for list in &mut by_trigger {
            // Stable: ties keep file order.
            list.sort_by_key(|&i| std::cmp::Reverse(rules.rules()[i].priority));
        }
        Engine { rules, by_trigger }
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    fn rule(&self, i: usize) -> &Rule {
        &self.rules.rules()[i]
    }

    /// Applies one event to one contact at time `now`.
    pub fn apply(&self, contact: &Contact, event: &Event, now: DateTime<Utc>) -> Outcome {
        self.apply_with_runs(contact, event, now, &NoRuns)
    }

    /// [`Engine::apply`] for a contact whose runs are `runs`: re-entry policies and
    /// `in_run` conditions read them; the outcome lists the runs its firings start.
    pub fn apply_with_runs(
        &self,
        contact: &Contact,
        event: &Event,
        now: DateTime<Utc>,
        runs: &dyn RunLedger,
    ) -> Outcome {
        let mut run = Run::new(self, contact.clone(), event, now, runs);
        // Conditions see the scores as they are now, decay included.
        let settled = run.settle_scores().then(|| run.contact.clone());
        let contact = settled.as_ref().unwrap_or(contact);
        run.event_effects();

        if let Some(trigger) = event.trigger {
            // Match against the contact as the event found it, then act.
            let mut ctx = ExprContext::default();
            let only = event.scheduled_rule.as_deref().filter(|_| trigger == Trigger::TimeBased);
            let matched: Vec<usize> = self.by_trigger[trigger.index()]
                .iter()
                .copied()
                .filter(|&i| only.is_none_or(|id| &*self.rule(i).rule_id == id))
                .filter(|&i| run.conditions_hold(self.rule(i), contact, false, &mut ctx))
                .collect();
            for i in matched {
                run.fire(i, trigger);
            }
        }
        run.cascade();

        run.finish()
    }
}

impl Engine {
    /// Whether any declared score decays (the daily sweep has work only then).
    pub fn has_decay(&self) -> bool {
        self.rules.scores().iter().any(|s| s.decay.is_some())
    }

    /// Brings the contact's scores to their value at `now`, with a `decay` change for
    /// each that moved (and nothing else: no rule fires on a decrease).
    pub fn settle(&self, contact: &Contact, now: DateTime<Utc>) -> Outcome {
        let event = Event::new(crate::event::Source::Scheduler, Trigger::TimeBased, now);
        let mut run = Run::new(self, contact.clone(), &event, now, &NoRuns);
        run.settle_scores();
        run.finish()
    }

    /// Enabled `time_based` rules, for the scheduler.
    pub fn scheduled_rules(&self) -> impl Iterator<Item = &Rule> {
        self.by_trigger[Trigger::TimeBased.index()].iter().map(|&i| self.rule(i))
    }

    /// Whether a rule's conditions hold for this contact and event (the scheduler uses it
    /// to pick the contacts an occurrence is for).
    pub fn rule_matches(&self, rule_id: &str, contact: &Contact, event: &Event) -> bool {
        let Some(rule) = self.rules.rules().iter().find(|r| &*r.rule_id == rule_id && r.enabled) else {
            return false;
        };
        if self.rules.scores().is_empty() {
            // No named score to settle: no copy of the contact (this runs per contact and
            // occurrence of every time-based rule).
            let mut run = Run::new(self, Contact::default(), event, event.occurred_at, &NoRuns);
            return run.conditions_hold(rule, contact, false, &mut ExprContext::default());
        }
        let mut run = Run::new(self, contact.clone(), event, event.occurred_at, &NoRuns);
        if run.settle_scores() {
            let settled = run.contact.clone();
            return run.conditions_hold(rule, &settled, false, &mut ExprContext::default());
        }
        run.conditions_hold(rule, contact, false, &mut ExprContext::default())
    }

    /// Carries out one delayed internal action (`update_score`, `add_tag`, `remove_tag`,
    /// `set_segment`, `pause_campaign`) when its job comes due, with the same effects as
    /// at ingest: history, clamping, and `lead_score_high` crossings.
    pub fn apply_delayed(
        &self,
        contact: &Contact,
        (rule_id, action_type, config): (&str, ActionType, &Value),
        event: &Event,
        now: DateTime<Utc>,
        runs: &dyn RunLedger,
    ) -> Outcome {
        let mut run = Run::new(self, contact.clone(), event, now, runs);
        run.settle_scores();
        if action_type.is_internal() {
            run.apply_internal(&Arc::from(rule_id), action_type, config);
        } else {
            run.warnings.push(format!("{action_type} is not an internal action"));
        }
        run.cascade();
        run.finish()
    }
}

/// A lazily built expression context, valid for one contact state.
#[derive(Default)]
struct ExprContext(Option<Variable>);

struct Run<'a> {
    engine: &'a Engine,
    event: &'a Event,
    now: DateTime<Utc>,
    contact: Contact,
    actions: Vec<FiredAction>,
    changes: Vec<Change>,
    cancel_pending: Option<CancelScope>,
    warnings: Vec<String>,
    /// `lead_score_high` rules whose threshold was crossed and that have yet to fire.
    crossed: Vec<usize>,
    /// Those already fired in this apply: each fires at most once.
    fired_high: Vec<usize>,
    vm: Option<VM>,
    runs: &'a dyn RunLedger,
    entries: Vec<RunEntry>,
    paused: Vec<Arc<str>>,
}

impl<'a> Run<'a> {
    fn new(
        engine: &'a Engine,
        contact: Contact,
        event: &'a Event,
        now: DateTime<Utc>,
        runs: &'a dyn RunLedger,
    ) -> Run<'a> {
        Run {
            runs,
            entries: Vec::new(),
            paused: Vec::new(),
            engine,
            event,
            now,
            contact,
            actions: Vec::new(),
            changes: Vec::new(),
            cancel_pending: None,
            warnings: Vec::new(),
            crossed: Vec::new(),
            fired_high: Vec::new(),
            vm: None,
        }
    }

    fn finish(self) -> Outcome {
        Outcome {
            contact: self.contact,
            actions: self.actions,
            changes: self.changes,
            cancel_pending: self.cancel_pending,
            warnings: self.warnings,
            runs: self.entries,
            paused: self.paused,
        }
    }

    fn change(&mut self, field: Field, before: Value, after: Value, cause: Option<(&Arc<str>, ActionType)>) {
        self.changes.push(Change {
            field,
            before,
            after,
            rule_id: cause.map(|(r, _)| r.clone()),
            action_type: cause.map(|(_, a)| a),
            decay: false,
        });
    }

    /// Brings every declared score to its value at `now`: a missing one starts at its
    /// initial value, a decayed one is materialised with a `decay` change. Whether the
    /// contact changed.
    fn settle_scores(&mut self) -> bool {
        let mut changed = false;
        for spec in self.engine.rules.scores() {
            let Some(entry) = self.contact.scores.get_mut(&spec.name) else {
                let v = ScoreValue { value: spec.initial, base: spec.initial, since: self.now };
                self.contact.scores.insert(spec.name.clone(), v);
                changed = true;
                continue;
            };
            let now_value = spec.decayed(entry.base, entry.since, self.now);
            if now_value != entry.value {
                let before = std::mem::replace(&mut entry.value, now_value);
                self.changes.push(Change {
                    field: Field::named(&spec.name),
                    before: before.into(),
                    after: now_value.into(),
                    rule_id: None,
                    action_type: None,
                    decay: true,
                });
                changed = true;
            }
        }
        changed
    }

    /// What the event means beyond rules (DESIGN §3 table, last column).
    fn event_effects(&mut self) {
        let event = self.event;
        let Some(trigger) = event.trigger else { return };
        let c = &mut self.contact;
        let activity = match trigger {
            Trigger::EmailOpened => {
                c.engagement.opens = c.engagement.opens.saturating_add(1);
                true
            }
            Trigger::EmailClicked => {
                c.engagement.clicks = c.engagement.clicks.saturating_add(1);
                true
            }
            Trigger::PageVisit => {
                c.engagement.page_visits = c.engagement.page_visits.saturating_add(1);
                true
            }
            Trigger::FormSubmit => {
                c.engagement.form_submits = c.engagement.form_submits.saturating_add(1);
                true
            }
            Trigger::Purchase => true,
            Trigger::EmailBounce | Trigger::Unsubscribe | Trigger::TimeBased | Trigger::LeadScoreHigh => false,
        };
        if activity && c.last_activity_at.is_none_or(|at| at < event.occurred_at) {
            c.last_activity_at = Some(event.occurred_at);
        }
        match trigger {
            Trigger::EmailBounce if event.bounce_type == Some(BounceType::Hard) && !self.contact.email_invalid => {
                self.contact.email_invalid = true;
                self.change(Field::EmailInvalid, false.into(), true.into(), None);
            }
            Trigger::EmailBounce if event.bounce_type == Some(BounceType::Hard) => {}
            Trigger::EmailBounce => {
                self.contact.engagement.soft_bounces = self.contact.engagement.soft_bounces.saturating_add(1);
            }
            Trigger::Unsubscribe => {
                if !self.contact.unsubscribed {
                    self.contact.unsubscribed = true;
                    self.change(Field::Unsubscribed, false.into(), true.into(), None);
                }
                if event.complaint && !self.contact.complained {
                    self.contact.complained = true;
                    self.change(Field::Complained, false.into(), true.into(), None);
                }
                self.cancel_pending = Some(CancelScope::OptOut);
            }
            Trigger::Purchase => {
                let before = self.contact.purchases;
                self.contact.purchases = before.saturating_add(1);
                self.change(Field::Purchases, before.into(), self.contact.purchases.into(), None);
                if let Some(amount) = event.amount.filter(|a| *a > 0.0) {
                    let before = self.contact.total_spent;
                    // Money is kept to the cent.
                    self.contact.total_spent = ((before + amount) * 100.0).round() / 100.0;
                    self.change(Field::TotalSpent, before.into(), self.contact.total_spent.into(), None);
                }
                if self.contact.last_purchase_at.is_none_or(|at| at < event.occurred_at) {
                    self.contact.last_purchase_at = Some(event.occurred_at);
                }
            }
            _ => {}
        }
    }

    /// Whether `rule`'s conditions hold for `contact`. `crossing` is true when a
    /// `lead_score_high` rule is checked because its threshold was just crossed: the
    /// threshold is then the crossing itself, not a condition on the score.
    fn conditions_hold(&mut self, rule: &Rule, contact: &Contact, crossing: bool, ctx: &mut ExprContext) -> bool {
        let c = &rule.conditions;
        let event = self.event;
        if let Some(segments) = &c.segment
            && !segments.iter().any(|s| s.eq_ignore_ascii_case(&contact.segment))
        {
            return false;
        }
        if let Some(min) = c.minimum_amount
            && !event.amount.is_some_and(|a| a > min)
        {
            return false;
        }
        if let Some(max) = c.maximum_amount
            && !event.amount.is_some_and(|a| a <= max)
        {
            return false;
        }
        let score = match c.score.as_deref() {
            None | Some(LEAD) => i64::from(contact.score.value()),
            Some(name) => {
                self.engine.rules.score(name).map_or(0, |s| contact.scores.get(name).map_or(s.initial, |v| v.value))
            }
        };
        if !crossing
            && let Some(t) = c.score_threshold
            && score < t
        {
            return false;
        }
        if c.score_min.is_some_and(|m| score < m) || c.score_max.is_some_and(|m| score > m) {
            return false;
        }
        if !c.tags_any.is_empty() && !c.tags_any.iter().any(|t| contact.tags.contains(t)) {
            return false;
        }
        if !c.tags_all.iter().all(|t| contact.tags.contains(t)) {
            return false;
        }
        if c.tags_none.iter().any(|t| contact.tags.contains(t)) {
            return false;
        }
        if c.in_run.as_deref().is_some_and(|r| !self.runs.has_active(r))
            || c.not_in_run.as_deref().is_some_and(|r| self.runs.has_active(r))
        {
            return false;
        }
        if let Some(b) = c.bounce_type
            && event.bounce_type != Some(b)
        {
            return false;
        }
        let days_since = |at: Option<DateTime<Utc>>| at.map(|at| (event.occurred_at - at).num_days());
        if let Some(min) = c.min_days_since_purchase
            && days_since(contact.last_purchase_at).is_none_or(|d| d < i64::from(min))
        {
            return false;
        }
        if let Some(min) = c.min_days_since_activity
            && days_since(contact.last_activity_at).is_some_and(|d| d < i64::from(min))
        {
            return false;
        }
        if let Some(expr) = &rule.expression {
            let context = ctx.0.get_or_insert_with(|| expression_context(contact, event));
            let vm = self.vm.get_or_insert_with(VM::new);
            match expr.matches(context, vm) {
                Ok(b) => return b,
                Err(reason) => {
                    self.warnings.push(format!("rule {}: {reason}", rule.rule_id));
                    return false;
                }
            }
        }
        true
    }

    fn fire(&mut self, rule_index: usize, trigger: Trigger) {
        let engine = self.engine;
        let rule = engine.rule(rule_index);
        if self.runs.is_paused(&rule.rule_id) {
            self.paused.push(rule.rule_id.clone());
            return; // a paused rule's firing creates nothing
        }
        if rule.starts_runs {
            let refused = reentry_refusal(rule, self.runs, self.now);
            let entered = refused.is_none();
            self.entries.push(RunEntry { rule_id: rule.rule_id.clone(), refused });
            if !entered {
                return; // a refused firing writes nothing else
            }
        }
        for action in &rule.actions {
            let ty = action.action_type;
            let suppression = self.contact.suppression_for(ty);
            let (status, due_at) = if suppression.is_some() {
                (ActionStatus::Suppressed, None)
            } else if action.delay_minutes > 0 || !ty.is_internal() {
                (ActionStatus::Scheduled, Some(self.now + Duration::minutes(i64::from(action.delay_minutes))))
            } else {
                self.apply_internal(&rule.rule_id, ty, &action.config);
                (ActionStatus::Applied, None)
            };
            self.actions.push(FiredAction {
                rule_id: rule.rule_id.clone(),
                trigger,
                action_type: ty,
                config: action.config.clone(),
                delay_minutes: action.delay_minutes,
                status,
                due_at,
                reason: suppression,
                skip_if: action.skip_if.clone(),
                transactional: action.transactional,
                on_cap: action.on_cap,
                priority: rule.priority,
                max_per_day: rule.max_per_day,
            });
        }
    }

    fn apply_internal(&mut self, rule_id: &Arc<str>, ty: ActionType, config: &Value) {
        let cause = Some((rule_id, ty));
        match ty {
            ActionType::UpdateScore => {
                let delta = config.get("score_delta").and_then(Value::as_i64).unwrap_or(0);
                let named = config.get("score").and_then(Value::as_str).filter(|n| *n != LEAD);
                let Some(name) = named else {
                    let before = self.contact.score;
                    let after = before.plus(delta);
                    if after != before {
                        self.contact.score = after;
                        self.change(Field::Score, before.value().into(), after.value().into(), cause);
                        self.note_crossings(None, i64::from(before.value()), i64::from(after.value()));
                    }
                    return;
                };
                let Some(spec) = self.engine.rules.score(name) else {
                    self.warnings.push(format!("rule {rule_id}: update_score names no declared score {name:?}"));
                    return;
                };
                let before = self.contact.scores.get(name).map_or(spec.initial, |v| v.value);
                let after = spec.clamp(before.saturating_add(delta));
                if after != before {
                    let now = self.now;
                    self.contact.scores.insert(name.to_owned(), ScoreValue { value: after, base: after, since: now });
                    self.change(Field::named(name), before.into(), after.into(), cause);
                    self.note_crossings(Some(name), before, after);
                }
            }
            ActionType::AddTag => {
                if let Some(tag) = config.get("tag").and_then(Value::as_str)
                    && self.contact.tags.insert(tag.to_owned())
                {
                    self.change(Field::Tag, Value::Null, tag.into(), cause);
                }
            }
            ActionType::RemoveTag => {
                if let Some(tag) = config.get("tag").and_then(Value::as_str)
                    && self.contact.tags.remove(tag)
                {
                    self.change(Field::Tag, tag.into(), Value::Null, cause);
                }
            }
            ActionType::SetSegment => {
                if let Some(segment) = config.get("segment").and_then(Value::as_str)
                    && segment != self.contact.segment
                {
                    let before = std::mem::replace(&mut self.contact.segment, segment.to_owned());
                    self.change(Field::Segment, before.into(), segment.into(), cause);
                }
            }
            ActionType::PauseCampaign => self.cancel_pending = Some(CancelScope::All),
            _ => {}
        }
    }

    /// Notes the `lead_score_high` rules of score `name` (`None`: the lead score) whose
    /// threshold this change crossed upward. A downward change notes nothing, which is
    /// what re-arms a rule: after decay took the score below, the next rise fires again.
    fn note_crossings(&mut self, name: Option<&str>, before: i64, after: i64) {
        if after <= before {
            return;
        }
        for &i in &self.engine.by_trigger[Trigger::LeadScoreHigh.index()] {
            let reads = self.engine.rule(i).conditions.score.as_deref().filter(|n| *n != LEAD);
            if reads != name {
                continue;
            }
            let t = self.engine.rule(i).high_score_threshold();
            if before < t && t <= after && !self.crossed.contains(&i) && !self.fired_high.contains(&i) {
                self.crossed.push(i);
            }
        }
    }

    /// Fires crossed `lead_score_high` rules, level by level, in priority order.
    fn cascade(&mut self) {
        let mut depth = 0u8;
        while !self.crossed.is_empty() {
            depth += 1;
            if depth > MAX_CASCADE_DEPTH {
                let cut: Vec<String> = self.crossed.iter().map(|&i| self.engine.rule(i).rule_id.to_string()).collect();
                self.warnings.push(format!(
                    "lead_score_high cascade cut at depth {MAX_CASCADE_DEPTH}; not fired: {}",
                    cut.join(", ")
                ));
                self.crossed.clear();
                return;
            }
            let mut level = std::mem::take(&mut self.crossed);
            // by_trigger order is priority order; keep it.
            let order = &self.engine.by_trigger[Trigger::LeadScoreHigh.index()];
            level.sort_by_key(|i| order.iter().position(|x| x == i));
            let snapshot = self.contact.clone();
            let mut ctx = ExprContext::default();
            for i in level {
                self.fired_high.push(i);
                let rule = self.engine.rule(i);
                if self.conditions_hold(rule, &snapshot, true, &mut ctx) {
                    self.fire(i, Trigger::LeadScoreHigh);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod named_score_tests;
