//! The planner: what a batch of events does, decided in memory and returned as a
//! [`WritePlan`] that a backend stores as it is. This is the only caller of
//! [`Engine::apply`] and [`Engine::apply_delayed`]; identity resolution and linking,
//! duplicates, suppression, cancellation on opt-out and the contact-version rule live here
//! and nowhere else. No I/O, no clock (each call takes `now`), no randomness (ids come from
//! the caller's generator; event ids are row ids the backend reserved, see
//! [`Planner::reserve_event_ids`]).
//!
//! **Version rule.** A contact's `version` counts the writes that made its state: 1 when
//! it is created (by an event, the API or an import) and one more for every later event,
//! API change, import row or delayed action applied to it. An event that links an
//! identity is one write; a redelivery is none.

mod load;
pub mod memory;
mod pressure;
mod records;
pub mod runs;
mod upsert;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::contact::{ClientCode, Contact, Email};
use crate::engine::{ActionStatus, CancelScope, Engine, Outcome};
use crate::event::{ActionType, Event, Source, Trigger};
use crate::inbound::InboundEvent;
use crate::sync_fields::SyncFields;

pub use pressure::sends_window;
pub use records::{
    ActionRecord, Answer, Cancellation, JobState, PlannedContact, PlannedEvent, PlannedHistory, PlannedJob, Slot,
    WritePlan,
};
use runs::{Expressions, SlotRuns};
pub use runs::{LoadedRun, PlannedRun, RunCancellation, RunChange, RunChangeKind, RunState};

/// A contact as the backend loaded it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedContact {
    pub id: i64,
    pub contact: Contact,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An event already stored under a dedupe key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub public_id: String,
    pub trigger: Option<Trigger>,
    pub contact_id: Option<i64>,
}

/// A claimed delayed internal action, to carry out now.
#[derive(Debug, Clone)]
pub struct DueAction {
    pub contact_id: i64,
    pub event_id: Option<String>,
    pub rule_id: String,
    pub action_type: ActionType,
    pub config: serde_json::Value,
    /// The event that scheduled it (its conditions' context), when stored.
    pub event: Option<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("event {0} names no contact (neither email nor client code)")]
    NoIdentity(usize),
    #[error("contact {0} was not loaded")]
    UnknownContact(i64),
    /// An edit gives an identity that another contact holds.
    #[error("{0}")]
    Conflict(String),
    /// The backend reserved fewer event ids than it gave events (a backend defect).
    #[error("no event id was reserved for event {0}")]
    NoEventId(usize),
}

/// A duplicate's original: stored before, or earlier in this batch.
struct Seen {
    public_id: String,
    trigger: Option<Trigger>,
    contact_id: Option<i64>,
    slot: Option<Slot>,
}

/// Builds one write plan from calls made in order: first what the backend loaded, then
/// the events (or delayed actions) in the order they are to take effect.
pub struct Planner<'a> {
    engine: &'a Engine,
    rule_version: i64,
    default_segment: &'a str,
    new_id: &'a mut (dyn FnMut() -> String + Send),
    /// Row ids for the events this batch stores, in order (see `reserve_event_ids`).
    event_ids: VecDeque<i64>,
    plan: WritePlan,
    by_id: HashMap<i64, Slot>,
    by_email: HashMap<Email, Slot>,
    by_code: HashMap<ClientCode, Slot>,
    seen: HashMap<String, Seen>,
    inputs: usize,
    expressions: Expressions,
    /// Rules an operator paused: they fire nothing.
    paused: Vec<String>,
    governor: pressure::Governor,
    /// The fields pushed to Brevo, and each loaded contact's values of them.
    sync: Arc<SyncFields>,
    synced_before: HashMap<Slot, Vec<serde_json::Value>>,
}

impl<'a> Planner<'a> {
    pub fn new(
        engine: &'a Engine,
        rule_version: i64,
        default_segment: &'a str,
        new_id: &'a mut (dyn FnMut() -> String + Send),
    ) -> Planner<'a> {
        Planner {
            engine,
            rule_version,
            default_segment,
            new_id,
            event_ids: VecDeque::new(),
            plan: WritePlan::default(),
            by_id: HashMap::new(),
            by_email: HashMap::new(),
            by_code: HashMap::new(),
            seen: HashMap::new(),
            inputs: 0,
            expressions: Expressions::default(),
            paused: Vec::new(),
            governor: pressure::Governor::default(),
            sync: Arc::default(),
            synced_before: HashMap::new(),
        }
    }

    /// One inbound event, after those planned before it: a duplicate answers with its
    /// original and changes nothing; otherwise its contact is found (linking the identity
    /// it adds) or created, and the engine applied.
    pub fn ingest(&mut self, inbound: &InboundEvent, now: DateTime<Utc>) -> Result<(), PlanError> {
        let input = self.inputs;
        self.inputs += 1;
        if let Some(key) = &inbound.dedupe_key
            && let Some(seen) = self.seen.get(key)
        {
            let slot = seen
                .slot
                .or_else(|| seen.contact_id.and_then(|id| self.by_id.get(&id).copied()))
                .or_else(|| self.find(inbound));
            let contact = slot.map(|s| self.plan.contacts[s.0].contact.clone()).unwrap_or_default();
            let answer = Answer {
                event_id: seen.public_id.clone(),
                duplicate: true,
                trigger: seen.trigger,
                unrecognised: None,
                test: false,
                contact,
                actions: Vec::new(),
                runs: Vec::new(),
                paused: Vec::new(),
            };
            self.plan.answers.push(answer);
            return Ok(());
        }
        let slot = self.resolve(inbound, input, now)?;
        let row_id = self.event_ids.pop_front().ok_or(PlanError::NoEventId(input))?;
        let public_id = row_id.to_string();
        if let Some(key) = &inbound.dedupe_key {
            let seen = Seen {
                public_id: public_id.clone(),
                trigger: inbound.event.trigger,
                contact_id: None,
                slot: Some(slot),
            };
            self.seen.insert(key.clone(), seen);
        }
        self.plan.events.push(PlannedEvent {
            input,
            id: row_id,
            public_id: public_id.clone(),
            contact: slot,
            received_at: now,
        });
        let runs = SlotRuns { runs: &self.plan.runs, slot, paused: &self.paused };
        let outcome = self.engine.apply_with_runs(&self.plan.contacts[slot.0].contact, &inbound.event, now, &runs);
        let paused = outcome.paused.iter().map(|r| r.to_string()).collect();
        let (actions, runs) = self.record(slot, Some(&public_id), outcome, now, Some(&inbound.event));
        self.plan.answers.push(Answer {
            event_id: public_id,
            duplicate: false,
            trigger: inbound.event.trigger,
            unrecognised: (!inbound.recognised).then(|| inbound.event.name.clone()),
            test: inbound.event.source == crate::event::Source::Test,
            contact: self.plan.contacts[slot.0].contact.clone(),
            actions,
            runs,
            paused,
        });
        Ok(())
    }

    /// The contact an event names, if loaded or planned: its client code first.
    fn find(&self, inbound: &InboundEvent) -> Option<Slot> {
        let by_code = inbound.identity.client_code.as_ref().and_then(|k| self.by_code.get(k));
        let by_email = inbound.identity.email.as_ref().and_then(|e| self.by_email.get(e));
        by_code.or(by_email).copied()
    }

    /// Finds the event's contact, linking the email or client code it adds unless that
    /// belongs to another contact (two records that disagree are left for a person to
    /// merge), or creates it.
    fn resolve(&mut self, inbound: &InboundEvent, input: usize, now: DateTime<Utc>) -> Result<Slot, PlanError> {
        let identity = &inbound.identity;
        let by_code = identity.client_code.as_ref().and_then(|k| self.by_code.get(k)).copied();
        let by_email = identity.email.as_ref().and_then(|e| self.by_email.get(e)).copied();
        if let Some(slot) = by_code.or(by_email) {
            let planned = &mut self.plan.contacts[slot.0];
            if planned.contact.email.is_none()
                && let (Some(e), None) = (&identity.email, by_email)
            {
                planned.contact.email = Some(e.clone());
                planned.identities_changed = true;
                self.by_email.insert(e.clone(), slot);
            }
            let planned = &mut self.plan.contacts[slot.0];
            if planned.contact.client_code.is_none()
                && let (Some(k), None) = (&identity.client_code, by_code)
            {
                planned.contact.client_code = Some(k.clone());
                planned.identities_changed = true;
                self.by_code.insert(k.clone(), slot);
            }
            if let (Some(a), Some(b)) = (by_code, by_email)
                && a != b
            {
                self.plan.warnings.push((slot, "event names two different contacts; using the client code's".into()));
            }
            return Ok(slot);
        }
        if identity.email.is_none() && identity.client_code.is_none() {
            return Err(PlanError::NoIdentity(input));
        }
        let contact = Contact::new(identity.email.clone(), identity.client_code.clone(), self.default_segment, now);
        let slot = Slot(self.plan.contacts.len());
        self.index(slot, &contact);
        self.plan.contacts.push(PlannedContact {
            brevo_sync: None,
            id: None,
            contact,
            version: 0,
            loaded_version: 0,
            identities_changed: true,
            loaded_segment: String::new(),
            created_at: now,
            updated_at: now,
        });
        Ok(slot)
    }

    /// A stored event replayed against a contact known by id (the backtest): the same
    /// effects as at ingest, without identity resolution. A contact not loaded starts blank.
    pub fn replay(
        &mut self,
        contact_id: i64,
        event: &Event,
        now: DateTime<Utc>,
    ) -> (Vec<ActionRecord>, Vec<RunChange>) {
        let slot = match self.by_id.get(&contact_id) {
            Some(s) => *s,
            None => {
                self.load_contact(LoadedContact {
                    id: contact_id,
                    contact: Contact::default(),
                    version: 0,
                    created_at: now,
                    updated_at: now,
                });
                self.by_id[&contact_id]
            }
        };
        let runs = SlotRuns { runs: &self.plan.runs, slot, paused: &self.paused };
        let outcome = self.engine.apply_with_runs(&self.plan.contacts[slot.0].contact, event, now, &runs);
        self.record(slot, None, outcome, now, Some(event))
    }

    /// The daily decay sweep for one loaded contact: materialises its scores' decay.
    /// Whether anything changed (nothing is written otherwise).
    pub fn settle(&mut self, contact_id: i64, now: DateTime<Utc>) -> Result<bool, PlanError> {
        let slot = *self.by_id.get(&contact_id).ok_or(PlanError::UnknownContact(contact_id))?;
        let outcome = self.engine.settle(&self.plan.contacts[slot.0].contact, now);
        if outcome.changes.is_empty() {
            return Ok(false);
        }
        self.record(slot, None, outcome, now, None);
        Ok(true)
    }

    /// A delayed internal action come due: the same effects as at ingest (history,
    /// clamping, `lead_score_high` crossings, cancellations). Returns how many changes.
    pub fn delayed(&mut self, due: &DueAction, now: DateTime<Utc>) -> Result<usize, PlanError> {
        let slot = *self.by_id.get(&due.contact_id).ok_or(PlanError::UnknownContact(due.contact_id))?;
        let event = due.event.clone().unwrap_or_else(|| Event::new(Source::Scheduler, Trigger::TimeBased, now));
        let contact = &self.plan.contacts[slot.0].contact;
        let runs = SlotRuns { runs: &self.plan.runs, slot, paused: &self.paused };
        let outcome =
            self.engine.apply_delayed(contact, (&due.rule_id, due.action_type, &due.config), &event, now, &runs);
        let changes = outcome.changes.len();
        self.record(slot, due.event_id.as_deref(), outcome, now, None);
        Ok(changes)
    }

    /// Writes one outcome into the plan: the contact's new state and version, a history
    /// row per change, what it did to runs, cancellations, and a job per scheduled or
    /// suppressed action. `event` is what happened (`None` for a delayed action: it
    /// reaches no goal).
    fn record(
        &mut self,
        slot: Slot,
        event_id: Option<&str>,
        outcome: Outcome,
        now: DateTime<Utc>,
        event: Option<&Event>,
    ) -> (Vec<ActionRecord>, Vec<RunChange>) {
        let plan = &mut self.plan;
        for w in outcome.warnings {
            plan.warnings.push((slot, w));
        }
        let planned = &mut plan.contacts[slot.0];
        planned.contact = outcome.contact;
        planned.version += 1;
        planned.updated_at = now;
        for change in outcome.changes {
            plan.history.push(PlannedHistory {
                contact: slot,
                event_id: event_id.map(str::to_owned),
                change,
                at: now,
                rule_version: self.rule_version,
            });
        }
        let mut run_changes = Vec::new();
        if let Some(event) = event {
            self.runs_see(slot, event, now, &mut run_changes);
        }
        let plan = &mut self.plan;
        if let Some(scope) = outcome.cancel_pending {
            // Jobs planned earlier in this batch go too, as they would had they been
            // stored already; the backend cancels the stored ones before inserting these.
            for job in plan.jobs.iter_mut().filter(|j| j.contact == slot && j.state == JobState::Pending) {
                if scope.covers(job.fired.action_type) {
                    job.state = JobState::Cancelled;
                    job.last_error = Some(scope.reason().to_owned());
                }
            }
            plan.cancellations.push(Cancellation { contact: slot, scope, at: now });
            // The contact's runs end with every step, messages or not.
            let reason = match scope {
                CancelScope::OptOut => runs::UNSUBSCRIBED,
                CancelScope::All => "pause_campaign",
            };
            let active: Vec<usize> = active_runs(&plan.runs, slot).collect();
            for i in active {
                plan.runs[i].end(RunState::Cancelled, reason, now);
                let run = &plan.runs[i].run;
                let step_reason = scope.reason().to_owned();
                cancel_steps(&mut plan.jobs, &run.id, &step_reason);
                plan.run_cancellations.push(RunCancellation { run_id: run.id.clone(), reason: step_reason, at: now });
                run_changes.push(RunChange {
                    rule_id: run.rule_id.clone(),
                    run_id: Some(run.id.clone()),
                    change: RunChangeKind::Cancelled,
                    reason: Some(reason.into()),
                });
            }
        }
        // Runs this outcome starts, by rule (a rule fires at most once per outcome).
        let mut started: Vec<(std::sync::Arc<str>, String)> = Vec::new();
        for entry in outcome.runs {
            if let Some(reason) = entry.refused {
                run_changes.push(RunChange {
                    rule_id: entry.rule_id.to_string(),
                    run_id: None,
                    change: RunChangeKind::NotEntered,
                    reason: Some(reason),
                });
                continue;
            }
            let run_id = (self.new_id)();
            let rule = self.engine.rules().rules().iter().find(|r| r.rule_id == entry.rule_id);
            let mut watch: Vec<Trigger> = Vec::new();
            for t in
                rule.into_iter().flat_map(|r| &r.actions).filter_map(|a| a.skip_if.as_ref()).flat_map(|s| &s.triggers)
            {
                if !watch.contains(t) {
                    watch.push(*t);
                }
            }
            self.plan.runs.push(PlannedRun {
                run: LoadedRun {
                    id: run_id.clone(),
                    contact_id: self.plan.contacts[slot.0].id.unwrap_or(0),
                    rule_id: entry.rule_id.to_string(),
                    rule_version: self.rule_version,
                    started_at: now,
                    state: RunState::Active,
                    ended_at: None,
                    reason: None,
                    goal: rule.and_then(|r| r.goal.as_ref()).map(|g| g.spec.clone()),
                    watch,
                    seen: Vec::new(),
                },
                contact: slot,
                is_new: true,
                changed: true,
            });
            run_changes.push(RunChange {
                rule_id: entry.rule_id.to_string(),
                run_id: Some(run_id.clone()),
                change: RunChangeKind::Started,
                reason: None,
            });
            started.push((entry.rule_id, run_id));
        }
        let plan = &mut self.plan;
        let mut actions = Vec::with_capacity(outcome.actions.len());
        for mut fired in outcome.actions {
            let run_id = started.iter().find(|(r, _)| *r == fired.rule_id).map(|(_, id)| id.clone());
            let mut held_reason = None;
            if fired.status == ActionStatus::Scheduled {
                let planned = &plan.contacts[slot.0];
                match self.governor.check(slot, planned.id, &planned.contact, &fired, now) {
                    None => {}
                    Some(pressure::Held::Deferred { until, reason }) => {
                        fired.status = ActionStatus::Deferred;
                        fired.due_at = Some(until);
                        held_reason = Some(reason);
                    }
                    Some(pressure::Held::Skipped { reason }) => {
                        fired.status = ActionStatus::Skipped;
                        held_reason = Some(reason);
                    }
                }
            }
            let job_id = match fired.status {
                ActionStatus::Applied => None,
                ActionStatus::Scheduled | ActionStatus::Suppressed | ActionStatus::Deferred | ActionStatus::Skipped => {
                    let id = (self.new_id)();
                    let (state, last_error) = match fired.status {
                        ActionStatus::Suppressed => {
                            (JobState::Suppressed, fired.reason.map(|r| format!("suppressed: {}", r.as_str())))
                        }
                        ActionStatus::Skipped => (JobState::Skipped, held_reason.clone()),
                        _ => (JobState::Pending, held_reason.clone()),
                    };
                    plan.jobs.push(PlannedJob {
                        id: id.clone(),
                        contact: slot,
                        event_id: event_id.map(str::to_owned),
                        due_at: fired.due_at.unwrap_or(now),
                        fired: fired.clone(),
                        state,
                        last_error,
                        at: now,
                        rule_version: self.rule_version,
                        run_id: run_id.clone(),
                        held: held_reason
                            .clone()
                            .map(|r| (if fired.status == ActionStatus::Skipped { "skipped" } else { "deferred" }, r)),
                    });
                    Some(id)
                }
            };
            actions.push(ActionRecord { fired, job_id, run_id, pressure: held_reason });
        }
        // A run with no step left to run is over as soon as it starts.
        for (_, run_id) in &started {
            let pending = plan.jobs.iter().any(|j| j.run_id.as_ref() == Some(run_id) && j.state == JobState::Pending);
            if !pending && let Some(run) = plan.runs.iter_mut().rev().find(|r| &r.run.id == run_id) {
                run.end(RunState::Completed, runs::COMPLETED, now);
            }
        }
        (actions, run_changes)
    }

    /// What an event does to the contact's active runs before its own rules start new
    /// ones: a goal reached ends the run and cancels its pending steps; a trigger some
    /// step's `skip_if` waits for is noted.
    fn runs_see(&mut self, slot: Slot, event: &Event, now: DateTime<Utc>, changes: &mut Vec<RunChange>) {
        let active: Vec<usize> = active_runs(&self.plan.runs, slot).collect();
        let contact = &self.plan.contacts[slot.0].contact;
        let mut warnings = Vec::new();
        for i in active {
            let planned = &mut self.plan.runs[i];
            if let Some(reason) = runs::goal_reached(&planned.run, contact, event, &mut self.expressions, &mut warnings)
            {
                planned.end(RunState::GoalReached, &reason, now);
                let run = &planned.run;
                cancel_steps(&mut self.plan.jobs, &run.id, &reason);
                changes.push(RunChange {
                    rule_id: run.rule_id.clone(),
                    run_id: Some(run.id.clone()),
                    change: RunChangeKind::GoalReached,
                    reason: Some(reason.clone()),
                });
                self.plan.run_cancellations.push(RunCancellation { run_id: run.id.clone(), reason, at: now });
            } else if let Some(t) = event.trigger
                && planned.run.watch.contains(&t)
                && !planned.run.seen.contains(&t)
            {
                planned.run.seen.push(t);
                planned.changed = true;
            }
        }
        for w in warnings {
            self.plan.warnings.push((slot, w));
        }
    }

    pub fn finish(mut self) -> WritePlan {
        if !self.sync.is_empty() {
            for (i, planned) in self.plan.contacts.iter_mut().enumerate().filter(|(_, c)| c.is_written()) {
                let changed = match self.synced_before.get(&Slot(i)) {
                    Some(before) => *before != self.sync.values(&planned.contact),
                    None => true,
                };
                planned.brevo_sync = changed.then(|| planned.updated_at + self.sync.delay);
            }
        }
        self.plan
    }
}

/// The contact's active runs, by index into the plan's runs.
fn active_runs(runs: &[PlannedRun], slot: Slot) -> impl Iterator<Item = usize> + '_ {
    runs.iter().enumerate().filter(move |(_, r)| r.contact == slot && r.run.state == RunState::Active).map(|(i, _)| i)
}

/// Cancels the steps of a run planned in this batch (the stored ones are cancelled by
/// the plan's [`RunCancellation`]).
fn cancel_steps(jobs: &mut [PlannedJob], run_id: &str, reason: &str) {
    for job in jobs.iter_mut().filter(|j| j.run_id.as_deref() == Some(run_id) && j.state == JobState::Pending) {
        job.state = JobState::Cancelled;
        job.last_error = Some(reason.to_owned());
    }
}

#[cfg(test)]
pub(crate) mod runs_tests;
#[cfg(test)]
mod tests;
