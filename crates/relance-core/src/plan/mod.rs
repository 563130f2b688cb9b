//! The planner: what a batch of events does, decided in memory and returned as a
//! [`WritePlan`] that a backend stores as it is. This is the only caller of
//! [`Engine::apply`] and [`Engine::apply_delayed`]; identity resolution and linking,
//! duplicates, suppression, cancellation on opt-out and the contact-version rule live here
//! and nowhere else. No I/O, no clock (each call takes `now`), no randomness (ids come from
//! the caller's generator).
//!
//! **Version rule.** A contact's `version` counts the writes that made its state: 1 when
//! it is created (by an event, the API or an import) and one more for every later event,
//! API change, import row or delayed action applied to it. An event that links an
//! identity is one write; a redelivery is none.

pub mod memory;
mod records;
mod upsert;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::contact::{ClientCode, Contact, Email};
use crate::engine::{ActionStatus, Engine, Outcome};
use crate::event::{ActionType, Event, Source, Trigger};
use crate::inbound::InboundEvent;

pub use records::{
    ActionRecord, Answer, Cancellation, JobState, PlannedContact, PlannedEvent, PlannedHistory, PlannedJob, Slot,
    WritePlan,
};

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
    plan: WritePlan,
    by_id: HashMap<i64, Slot>,
    by_email: HashMap<Email, Slot>,
    by_code: HashMap<ClientCode, Slot>,
    seen: HashMap<String, Seen>,
    inputs: usize,
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
            plan: WritePlan::default(),
            by_id: HashMap::new(),
            by_email: HashMap::new(),
            by_code: HashMap::new(),
            seen: HashMap::new(),
            inputs: 0,
        }
    }

    /// A contact the batch may name (loading one twice keeps the first).
    pub fn load_contact(&mut self, loaded: LoadedContact) {
        if self.by_id.contains_key(&loaded.id) {
            return;
        }
        let slot = Slot(self.plan.contacts.len());
        self.index(slot, &loaded.contact);
        self.by_id.insert(loaded.id, slot);
        self.plan.contacts.push(PlannedContact {
            id: Some(loaded.id),
            loaded_version: loaded.version,
            version: loaded.version,
            identities_changed: false,
            created_at: loaded.created_at,
            updated_at: loaded.updated_at,
            contact: loaded.contact,
        });
    }

    /// An event stored earlier under `dedupe_key`.
    pub fn load_stored_event(&mut self, dedupe_key: String, stored: StoredEvent) {
        self.seen.insert(
            dedupe_key,
            Seen { public_id: stored.public_id, trigger: stored.trigger, contact_id: stored.contact_id, slot: None },
        );
    }

    fn index(&mut self, slot: Slot, c: &Contact) {
        if let Some(e) = &c.email {
            self.by_email.entry(e.clone()).or_insert(slot);
        }
        if let Some(k) = &c.client_code {
            self.by_code.entry(k.clone()).or_insert(slot);
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
                contact,
                actions: Vec::new(),
            };
            self.plan.answers.push(answer);
            return Ok(());
        }
        let slot = self.resolve(inbound, input, now)?;
        let public_id = (self.new_id)();
        if let Some(key) = &inbound.dedupe_key {
            let seen = Seen {
                public_id: public_id.clone(),
                trigger: inbound.event.trigger,
                contact_id: None,
                slot: Some(slot),
            };
            self.seen.insert(key.clone(), seen);
        }
        self.plan.events.push(PlannedEvent { input, public_id: public_id.clone(), contact: slot, received_at: now });
        let outcome = self.engine.apply(&self.plan.contacts[slot.0].contact, &inbound.event, now);
        let actions = self.record(slot, Some(&public_id), outcome, now);
        self.plan.answers.push(Answer {
            event_id: public_id,
            duplicate: false,
            trigger: inbound.event.trigger,
            unrecognised: (!inbound.recognised).then(|| inbound.event.name.clone()),
            contact: self.plan.contacts[slot.0].contact.clone(),
            actions,
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
            id: None,
            contact,
            version: 0,
            loaded_version: 0,
            identities_changed: true,
            created_at: now,
            updated_at: now,
        });
        Ok(slot)
    }

    /// A stored event replayed against a contact known by id (the backtest): the same
    /// effects as at ingest, without identity resolution. A contact not loaded starts blank.
    pub fn replay(&mut self, contact_id: i64, event: &Event, now: DateTime<Utc>) -> Vec<ActionRecord> {
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
        let outcome = self.engine.apply(&self.plan.contacts[slot.0].contact, event, now);
        self.record(slot, None, outcome, now)
    }

    /// A delayed internal action come due: the same effects as at ingest (history,
    /// clamping, `lead_score_high` crossings, cancellations). Returns how many changes.
    pub fn delayed(&mut self, due: &DueAction, now: DateTime<Utc>) -> Result<usize, PlanError> {
        let slot = *self.by_id.get(&due.contact_id).ok_or(PlanError::UnknownContact(due.contact_id))?;
        let event = due.event.clone().unwrap_or_else(|| Event::new(Source::Scheduler, Trigger::TimeBased, now));
        let contact = &self.plan.contacts[slot.0].contact;
        let outcome = self.engine.apply_delayed(contact, &due.rule_id, due.action_type, &due.config, &event, now);
        let changes = outcome.changes.len();
        self.record(slot, due.event_id.as_deref(), outcome, now);
        Ok(changes)
    }

    /// Writes one outcome into the plan: the contact's new state and version, a history
    /// row per change, cancellations, and a job per scheduled or suppressed action.
    fn record(
        &mut self,
        slot: Slot,
        event_id: Option<&str>,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Vec<ActionRecord> {
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
        }
        let mut actions = Vec::with_capacity(outcome.actions.len());
        for fired in outcome.actions {
            let job_id = match fired.status {
                ActionStatus::Applied => None,
                ActionStatus::Scheduled | ActionStatus::Suppressed => {
                    let id = (self.new_id)();
                    let (state, last_error) = match fired.status {
                        ActionStatus::Suppressed => {
                            (JobState::Suppressed, fired.reason.map(|r| format!("suppressed: {}", r.as_str())))
                        }
                        _ => (JobState::Pending, None),
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
                    });
                    Some(id)
                }
            };
            actions.push(ActionRecord { fired, job_id });
        }
        actions
    }

    pub fn finish(self) -> WritePlan {
        self.plan
    }
}

#[cfg(test)]
mod tests;
