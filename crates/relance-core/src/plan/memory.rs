//! A store in memory that loads and writes exactly as the database backends do: what
//! `relance simulate` runs on, and the reference the backends are tested against.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::runs::{COMPLETED, skip_reason};
use super::{DueAction, JobState, LoadedContact, LoadedRun, PlanError, Planner, RunState, StoredEvent, WritePlan};
use crate::contact::{ClientCode, Contact, Email};
use crate::engine::{Change, Engine};
use crate::event::ActionType;
use crate::inbound::InboundEvent;

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryContact {
    pub contact: Contact,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHistory {
    pub contact_id: i64,
    pub event_id: Option<String>,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryJob {
    pub id: String,
    pub contact_id: i64,
    pub event_id: Option<String>,
    pub rule_id: String,
    pub action_type: ActionType,
    pub config: serde_json::Value,
    pub due_at: DateTime<Utc>,
    /// `pending`, `suppressed`, `cancelled`, `done`.
    pub state: String,
    pub last_error: Option<String>,
    pub event: Option<crate::event::Event>,
    pub run_id: Option<String>,
    pub skip_if: Option<std::sync::Arc<crate::rules::Happening>>,
}

/// Rules, identities and ids for a memory run.
pub struct MemoryRules<'a> {
    pub engine: &'a Engine,
    pub rule_version: i64,
    pub default_segment: &'a str,
}

#[derive(Default)]
pub struct MemoryStore {
    pub contacts: BTreeMap<i64, MemoryContact>,
    pub history: Vec<MemoryHistory>,
    pub jobs: Vec<MemoryJob>,
    pub runs: Vec<LoadedRun>,
    events: HashMap<String, StoredEvent>,
    /// Stored events in commit order: (public id, contact id, event).
    pub event_log: Vec<(String, i64, crate::event::Event)>,
    next_id: i64,
    ids: u64,
    /// The last event row id reserved (never handed out twice, like the backends).
    last_event_id: i64,
}

impl MemoryStore {
    fn new_id(&mut self) -> impl FnMut() -> String + use<> {
        let start = self.ids;
        self.ids += 1 << 20;
        let mut n = start;
        move || {
            n += 1;
            format!("mem-{n:012}")
        }
    }

    fn find(&self, email: Option<&Email>, code: Option<&ClientCode>) -> Vec<i64> {
        self.contacts
            .iter()
            .filter(|(_, c)| {
                (email.is_some() && c.contact.email.as_ref() == email)
                    || (code.is_some() && c.contact.client_code.as_ref() == code)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    fn load(&self, planner: &mut Planner<'_>, id: i64) {
        let c = &self.contacts[&id];
        planner.load_contact(LoadedContact {
            id,
            contact: c.contact.clone(),
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        });
        for run in self.runs.iter().filter(|r| r.contact_id == id) {
            planner.load_run(run.clone());
        }
    }

    /// One delivery: loads what it names (in id order, as PostgreSQL locks), plans, writes.
    pub fn ingest(
        &mut self,
        rules: &MemoryRules<'_>,
        inbound: &[InboundEvent],
        now: DateTime<Utc>,
    ) -> Result<WritePlan, PlanError> {
        let mut new_id = self.new_id();
        let mut planner = Planner::new(rules.engine, rules.rule_version, rules.default_segment, &mut new_id);
        let mut ids: Vec<i64> = inbound
            .iter()
            .flat_map(|e| self.find(e.identity.email.as_ref(), e.identity.client_code.as_ref()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.load(&mut planner, id);
        }
        for e in inbound {
            if let Some(key) = &e.dedupe_key
                && let Some(stored) = self.events.get(key)
            {
                planner.load_stored_event(key.clone(), stored.clone());
            }
        }
        planner.reserve_event_ids(self.last_event_id + 1..=self.last_event_id + inbound.len() as i64);
        self.last_event_id += inbound.len() as i64;
        for e in inbound {
            planner.ingest(e, now)?;
        }
        let plan = planner.finish();
        self.write(&plan, inbound);
        Ok(plan)
    }

    /// An edit by the API or an import row: creates or updates the contact `key` names.
    pub fn upsert(
        &mut self,
        rules: &MemoryRules<'_>,
        key: &crate::inbound::Identity,
        update: crate::contact_update::ContactUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, PlanError> {
        let mut new_id = self.new_id();
        let mut planner = Planner::new(rules.engine, rules.rule_version, rules.default_segment, &mut new_id);
        let emails: Vec<&Email> = key.email.iter().chain(update.email.iter()).collect();
        let codes: Vec<&ClientCode> = key.client_code.iter().chain(update.client_code.iter()).collect();
        let mut ids: Vec<i64> = emails
            .iter()
            .flat_map(|e| self.find(Some(e), None))
            .chain(codes.iter().flat_map(|k| self.find(None, Some(k))))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.load(&mut planner, id);
        }
        let (_, created) = planner.upsert(key, update, now)?;
        let plan = planner.finish();
        self.write(&plan, &[]);
        Ok(created)
    }

    /// A contact from the CRM (a simulation's starting state); returns its id.
    pub fn add_contact(&mut self, contact: Contact, now: DateTime<Utc>) -> i64 {
        self.next_id += 1;
        self.contacts.insert(self.next_id, MemoryContact { contact, version: 1, created_at: now, updated_at: now });
        self.next_id
    }

    /// Every contact, in id order.
    pub fn all_contacts(&self) -> Vec<&Contact> {
        self.contacts.values().map(|c| &c.contact).collect()
    }

    /// Runs every pending delayed internal action due at `now`, one at a time in due
    /// order, as the dispatcher does; returns how many ran.
    pub fn run_due_internal(&mut self, rules: &MemoryRules<'_>, now: DateTime<Utc>) -> Result<usize, PlanError> {
        self.run_due(rules, now, false)
    }

    /// Every job due at `now`, in due order, as the dispatcher claims them: a step whose
    /// `skip_if` holds is skipped; internal actions are carried out; with `send`, other
    /// actions count as sent (`done`). Returns how many ran or were skipped.
    pub fn run_due(&mut self, rules: &MemoryRules<'_>, now: DateTime<Utc>, send: bool) -> Result<usize, PlanError> {
        let mut ran = 0;
        loop {
            let next = self
                .jobs
                .iter()
                .enumerate()
                .filter(|(_, j)| j.state == "pending" && (send || j.action_type.is_internal()) && j.due_at <= now)
                .min_by(|(_, a), (_, b)| a.due_at.cmp(&b.due_at).then(a.id.cmp(&b.id)))
                .map(|(i, _)| i);
            let Some(i) = next else { return Ok(ran) };
            ran += 1;
            let job = self.jobs[i].clone();
            if let Some(reason) = self.skip(&job, now) {
                self.jobs[i].state = "skipped".into();
                self.jobs[i].last_error = Some(reason);
                self.complete_run(job.run_id.as_deref(), now);
                continue;
            }
            self.jobs[i].state = "done".into();
            if job.action_type.is_internal() {
                let mut new_id = self.new_id();
                let mut planner = Planner::new(rules.engine, rules.rule_version, rules.default_segment, &mut new_id);
                self.load(&mut planner, job.contact_id);
                planner.delayed(
                    &DueAction {
                        contact_id: job.contact_id,
                        event_id: job.event_id.clone(),
                        rule_id: job.rule_id.clone(),
                        action_type: job.action_type,
                        config: job.config.clone(),
                        event: job.event.clone(),
                    },
                    now,
                )?;
                let plan = planner.finish();
                self.write(&plan, &[]);
            }
            self.complete_run(job.run_id.as_deref(), now);
        }
    }

    /// Why a due step is skipped, if it is (as the backends' claim decides).
    fn skip(&self, job: &MemoryJob, now: DateTime<Utc>) -> Option<String> {
        let skip = job.skip_if.as_ref()?;
        let run = self.runs.iter().find(|r| Some(&r.id) == job.run_id.as_ref() && r.state == RunState::Active)?;
        skip_reason(skip, run, &self.contacts.get(&job.contact_id)?.contact, now).ok().flatten()
    }

    /// An active run none of whose steps is left pending is completed.
    fn complete_run(&mut self, run_id: Option<&str>, now: DateTime<Utc>) {
        let Some(run_id) = run_id else { return };
        if self.jobs.iter().any(|j| j.run_id.as_deref() == Some(run_id) && j.state == "pending") {
            return;
        }
        if let Some(run) = self.runs.iter_mut().find(|r| r.id == run_id && r.state == RunState::Active) {
            run.state = RunState::Completed;
            run.ended_at = Some(now);
            run.reason = Some(COMPLETED.into());
        }
    }

    fn write(&mut self, plan: &WritePlan, inbound: &[InboundEvent]) {
        let mut ids = Vec::with_capacity(plan.contacts.len());
        for c in &plan.contacts {
            let id = c.id.unwrap_or_else(|| {
                self.next_id += 1;
                self.next_id
            });
            ids.push(id);
            if c.is_written() {
                self.contacts.insert(
                    id,
                    MemoryContact {
                        contact: c.contact.clone(),
                        version: c.version,
                        created_at: c.created_at,
                        updated_at: c.updated_at,
                    },
                );
            }
        }
        for e in &plan.events {
            let inbound = &inbound[e.input];
            let contact_id = ids[e.contact.0];
            if let Some(key) = &inbound.dedupe_key {
                let stored = StoredEvent {
                    public_id: e.public_id.clone(),
                    trigger: inbound.event.trigger,
                    contact_id: Some(contact_id),
                };
                self.events.insert(key.clone(), stored);
            }
            self.event_log.push((e.public_id.clone(), contact_id, inbound.event.clone()));
        }
        for c in &plan.cancellations {
            let contact_id = ids[c.contact.0];
            for j in self.jobs.iter_mut().filter(|j| j.contact_id == contact_id && j.state == "pending") {
                if c.scope.covers(j.action_type) {
                    j.state = "cancelled".into();
                    j.last_error = Some(c.scope.reason().to_owned());
                }
            }
        }
        for c in &plan.run_cancellations {
            for j in self.jobs.iter_mut().filter(|j| j.run_id.as_ref() == Some(&c.run_id) && j.state == "pending") {
                j.state = "cancelled".into();
                j.last_error = Some(c.reason.clone());
            }
        }
        for r in &plan.runs {
            let mut run = r.run.clone();
            run.contact_id = ids[r.contact.0];
            if r.is_new {
                self.runs.push(run);
            } else if r.changed
                && let Some(stored) = self.runs.iter_mut().find(|s| s.id == run.id)
            {
                *stored = run;
            }
        }
        for h in &plan.history {
            let contact_id = ids[h.contact.0];
            self.history.push(MemoryHistory { contact_id, event_id: h.event_id.clone(), change: h.change.clone() });
        }
        let events: HashMap<&str, &crate::event::Event> =
            plan.events.iter().map(|e| (e.public_id.as_str(), &inbound[e.input].event)).collect();
        for j in &plan.jobs {
            let event = j.event_id.as_deref().and_then(|id| events.get(id).map(|e| (*e).clone()));
            self.jobs.push(MemoryJob {
                id: j.id.clone(),
                contact_id: ids[j.contact.0],
                event_id: j.event_id.clone(),
                rule_id: j.fired.rule_id.to_string(),
                action_type: j.fired.action_type,
                config: (*j.fired.config).clone(),
                due_at: j.due_at,
                state: j.state.as_str().to_owned(),
                last_error: j.last_error.clone(),
                event: event.or_else(|| self.job_event(j.event_id.as_deref())),
                run_id: j.run_id.clone(),
                skip_if: j.fired.skip_if.clone(),
            });
        }
        debug_assert!(plan.jobs.iter().all(|j| j.state != JobState::Cancelled || j.last_error.is_some()));
    }

    fn job_event(&self, event_id: Option<&str>) -> Option<crate::event::Event> {
        let id = event_id?;
        self.event_log.iter().find(|(p, _, _)| p == id).map(|(_, _, e)| e.clone())
    }
}
