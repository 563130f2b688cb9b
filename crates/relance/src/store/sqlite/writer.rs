//! The single SQLite writer: group commit of queued requests.

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use relance_core::engine::{ActionStatus, CancelScope};
use relance_core::inbound::Identity;
use relance_core::{ClientCode, Contact, Email, InboundEvent, Trigger};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Command, find_contact_id, load_contact, to_millis};
use crate::store::{
    ActionRecord, Clock, ContactKey, ContactUpdate, IngestResult, StoreError, StoredContact, dashboard,
};

pub(crate) struct Writer {
    pub conn: Connection,
    pub ctx: WriteContext,
}

/// What the writer needs besides its connection.
pub(crate) struct WriteContext {
    pub rules: Arc<crate::live_rules::LiveRules>,
    pub clock: Clock,
    pub default_segment: String,
    pub jobs_ready: Arc<tokio::sync::Notify>,
}

/// What one command produced, before its reply is sent.
enum Done {
    Ingest(Result<Vec<IngestResult>, StoreError>),
    Upsert(Box<Result<(StoredContact, bool), StoreError>>),
    Write(Result<Box<dyn Any + Send>, StoreError>),
}

impl Command {
    fn reply(self, done: Done) {
        match (self, done) {
            (Command::Ingest { reply, .. }, Done::Ingest(r)) => {
                let _ = reply.send(r);
            }
            (Command::Upsert { reply, .. }, Done::Upsert(r)) => {
                let _ = reply.send(*r);
            }
            (Command::Write { reply, .. }, Done::Write(r)) => {
                let _ = reply.send(r);
            }
            (command, _) => command.fail(&StoreError::Unavailable(anyhow::anyhow!("internal: mismatched reply"))),
        }
    }

    fn fail(self, error: &StoreError) {
        let err = || StoreError::Unavailable(anyhow::anyhow!("{error:#}"));
        match self {
            Command::Ingest { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Command::Upsert { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Command::Write { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
        }
    }
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Command>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
        tracing::info!("ingest queue drained, writer stopped");
    }

    /// Runs the batch in one transaction and answers everyone after the commit. No
    /// savepoints (they cost a sub-journal copy of every page touched): a command
    /// decides its own rejections (conflict, invalid) before writing anything, so the only
    /// errors met midway are database errors. Those abort the batch, which is then retried
    /// one command per transaction so that one bad command cannot fail the others.
    fn commit_batch(&mut self, batch: &mut Vec<Command>) {
        match self.execute(batch) {
            Ok(done) => batch.drain(..).zip(done).for_each(|(c, d)| c.reply(d)),
            Err(e) if batch.len() > 1 => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    size = batch.len(),
                    "batch failed; retrying its commands one by one"
                );
                for command in batch.drain(..) {
                    match self.execute(std::slice::from_ref(&command)) {
                        Ok(mut done) => match done.pop() {
                            Some(d) => command.reply(d),
                            None => command.fail(&e),
                        },
                        Err(e) => command.fail(&e),
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "write failed");
                batch.drain(..).for_each(|c| c.fail(&e));
            }
        }
    }

    fn execute(&mut self, commands: &[Command]) -> Result<Vec<Done>, StoreError> {
        let now = (self.ctx.clock)();
        let ctx = &self.ctx;
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut done = Vec::with_capacity(commands.len());
        for command in commands {
            done.push(match command {
                Command::Ingest { events, .. } => {
                    let mut results = Vec::with_capacity(events.len());
                    for e in events {
                        results.push(ctx.ingest_one(&tx, e, now)?);
                    }
                    Done::Ingest(Ok(results))
                }
                Command::Upsert { key, update, .. } => match ctx.upsert(&tx, key.clone(), (**update).clone(), now) {
                    Err(e @ (StoreError::Conflict(_) | StoreError::Invalid { .. } | StoreError::NotFound(_))) => {
                        Done::Upsert(Box::new(Err(e)))
                    }
                    Err(e) => return Err(e),
                    Ok(v) => Done::Upsert(Box::new(Ok(v))),
                },
                Command::Write { f, .. } => match f(&tx, ctx, now) {
                    Err(e @ (StoreError::Conflict(_) | StoreError::Invalid { .. } | StoreError::NotFound(_))) => {
                        Done::Write(Err(e))
                    }
                    Err(e) => return Err(e),
                    Ok(v) => Done::Write(Ok(v)),
                },
            });
        }
        let stored = done.iter().flat_map(|d| match d {
            Done::Ingest(Ok(results)) => results.as_slice(),
            _ => &[],
        });
        add_counts(&tx, &dashboard::fold_counts(stored, now))?;
        tx.commit()?;
        if commands.iter().any(|c| matches!(c, Command::Ingest { .. })) {
            ctx.jobs_ready.notify_one();
        }
        Ok(done)
    }
}

impl WriteContext {
    fn ingest_one(
        &self,
        conn: &Connection,
        inbound: &InboundEvent,
        now: DateTime<Utc>,
    ) -> Result<IngestResult, StoreError> {
        if let Some(key) = &inbound.dedupe_key {
            let seen: Option<(String, Option<i64>, Option<String>)> = conn
                .prepare_cached("SELECT public_id, contact_id, trigger FROM events WHERE dedupe_key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if let Some((event_id, contact_id, trigger)) = seen {
                let contact = match contact_id {
                    Some(id) => load_contact(conn, id)?.contact,
                    None => Contact::default(),
                };
                return Ok(IngestResult {
                    event_id,
                    duplicate: true,
                    trigger: trigger.and_then(|t| t.parse::<Trigger>().ok()),
                    unrecognised: None,
                    contact,
                    actions: Vec::new(),
                });
            }
        }

        let stored = self.resolve_contact(conn, &inbound.identity, now)?;
        let rules = self.rules.current();
        let outcome = rules.engine.apply(&stored.contact, &inbound.event, now);
        let rule_version = rules.version;
        for warning in &outcome.warnings {
            tracing::warn!(contact_id = stored.id, "{warning}");
        }

        let event_id = Uuid::now_v7().to_string();
        let event_json =
            serde_json::to_string(&inbound.event).map_err(anyhow::Error::from).map_err(StoreError::Unavailable)?;
        conn.prepare_cached(
            "INSERT INTO events (public_id, dedupe_key, sender_event_id, source, name, trigger, contact_id,
                                 email, client_code, occurred_at, received_at, event, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            event_id,
            inbound.dedupe_key,
            inbound.sender_event_id,
            inbound.event.source.as_str(),
            inbound.event.name,
            inbound.event.trigger.map(|t| t.as_str()),
            stored.id,
            inbound.identity.email.as_ref().map(Email::as_str),
            inbound.identity.client_code.as_ref().map(ClientCode::as_str),
            to_millis(inbound.event.occurred_at),
            to_millis(now),
            event_json,
            inbound.raw.to_string(),
        ])?;

        let trigger = inbound.event.trigger;
        let contact = outcome.contact.clone();
        let actions = persist_outcome(conn, stored.id, &event_id, outcome, rule_version, now)?;
        let unrecognised = (!inbound.recognised).then(|| inbound.event.name.clone());
        Ok(IngestResult { event_id, duplicate: false, trigger, unrecognised, contact, actions })
    }

    /// Finds the contact an event is about, linking its email and client code when the
    /// event carries both, or creates it.
    fn resolve_contact(
        &self,
        conn: &Connection,
        identity: &Identity,
        now: DateTime<Utc>,
    ) -> Result<StoredContact, StoreError> {
        let by_code = match &identity.client_code {
            Some(c) => find_contact_id(conn, &ContactKey::ClientCode(c.clone()))?,
            None => None,
        };
        let by_email = match &identity.email {
            Some(e) => find_contact_id(conn, &ContactKey::Email(e.clone()))?,
            None => None,
        };
        match (by_code, by_email) {
            (Some(id), _) | (None, Some(id)) => {
                let mut stored = load_contact(conn, id)?;
                // Link what the event adds, unless it belongs to another contact: two
                // records that disagree are left for a person to merge.
                let mut linked = false;
                if stored.contact.email.is_none()
                    && let (Some(e), None) = (&identity.email, by_email)
                {
                    stored.contact.email = Some(e.clone());
                    linked = true;
                }
                if stored.contact.client_code.is_none()
                    && let (Some(c), None) = (&identity.client_code, by_code)
                {
                    stored.contact.client_code = Some(c.clone());
                    linked = true;
                }
                if let (Some(a), Some(b)) = (by_code, by_email)
                    && a != b
                {
                    tracing::warn!(
                        contact_id = a,
                        other_contact_id = b,
                        "event names two different contacts; using the client code's"
                    );
                }
                if linked {
                    save_identities(conn, id, &stored.contact)?;
                    save_contact(conn, id, &stored.contact, now)?;
                }
                Ok(stored)
            }
            (None, None) => {
                let contact =
                    Contact::new(identity.email.clone(), identity.client_code.clone(), &self.default_segment, now);
                let id = insert_contact(conn, &contact, now)?;
                Ok(StoredContact { id, contact, created_at: now, updated_at: now, version: 1 })
            }
        }
    }

    pub(crate) fn upsert(
        &self,
        conn: &Connection,
        key: ContactKey,
        u: ContactUpdate,
        now: DateTime<Utc>,
    ) -> Result<(StoredContact, bool), StoreError> {
        let existing = find_contact_id(conn, &key)?;
        let (mut stored, created) = match existing {
            Some(id) => (load_contact(conn, id)?, false),
            None => {
                let (email, code) = match &key {
                    ContactKey::Email(e) => (Some(e.clone()), None),
                    ContactKey::ClientCode(c) => (None, Some(c.clone())),
                };
                let contact =
                    Contact { email, client_code: code, segment: self.default_segment.clone(), ..Contact::default() };
                (StoredContact { id: 0, contact, created_at: now, updated_at: now, version: 0 }, true)
            }
        };
        // Identities given in the body must not belong to someone else.
        if let Some(e) = &u.email
            && let Some(other) = find_contact_id(conn, &ContactKey::Email(e.clone()))?
            && (created || other != stored.id)
        {
            return Err(StoreError::Conflict(format!("email {e} already belongs to another contact")));
        }
        if let Some(c) = &u.client_code
            && let Some(other) = find_contact_id(conn, &ContactKey::ClientCode(c.clone()))?
            && (created || other != stored.id)
        {
            return Err(StoreError::Conflict(format!("client_code {c} already belongs to another contact")));
        }
        let formula_inputs_changed = u.apply_to(&mut stored.contact);
        let c = &mut stored.contact;
        // A contact created from CRM data starts at the formula's score for it. An
        // existing one keeps its score (rules have moved it since).
        if created && formula_inputs_changed {
            c.score = c.formula_score(now);
        }
        if created {
            stored.id = insert_contact(conn, &stored.contact, now)?;
            stored.version = 1;
        } else {
            save_identities(conn, stored.id, &stored.contact)?;
            save_contact(conn, stored.id, &stored.contact, now)?;
            stored.version += 1;
            stored.updated_at = now;
        }
        Ok((stored, created))
    }
}

fn contact_json(contact: &Contact) -> Result<String, StoreError> {
    serde_json::to_string(contact).map_err(|e| StoreError::Unavailable(e.into()))
}

fn insert_contact(conn: &Connection, contact: &Contact, now: DateTime<Utc>) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "INSERT INTO contacts (email, client_code, segment, score, data, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) RETURNING id",
        )?
        .query_row(
            params![
                contact.email.as_ref().map(Email::as_str),
                contact.client_code.as_ref().map(ClientCode::as_str),
                contact.segment,
                contact.score.value(),
                contact_json(contact)?,
                to_millis(now),
            ],
            |r| r.get(0),
        )?)
}

pub(crate) fn save_contact(
    conn: &Connection,
    id: i64,
    contact: &Contact,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // Only the columns that change with events: naming email or client_code in the SET
    // list would rewrite their unique indexes on every event.
    conn.prepare_cached(
        "UPDATE contacts SET segment = ?1, score = ?2, data = ?3, updated_at = ?4, version = version + 1 WHERE id = ?5",
    )?
    .execute(params![contact.segment, contact.score.value(), contact_json(contact)?, to_millis(now), id])?;
    Ok(())
}

/// Writes a contact's identities (when linked or edited).
fn save_identities(conn: &Connection, id: i64, contact: &Contact) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE contacts SET email = ?1, client_code = ?2 WHERE id = ?3")?.execute(params![
        contact.email.as_ref().map(Email::as_str),
        contact.client_code.as_ref().map(ClientCode::as_str),
        id
    ])?;
    Ok(())
}

/// Adds a batch's counters to the dashboard's hourly counts.
fn add_counts(conn: &Connection, counts: &[dashboard::HourlyCount]) -> Result<(), StoreError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO hourly_counts (hour, kind, name, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (hour, kind, name) DO UPDATE SET count = count + excluded.count",
    )?;
    for c in counts {
        upsert.execute(params![c.hour, c.kind.as_str(), c.name, c.count])?;
    }
    Ok(())
}

/// Writes what an engine outcome did to a contact: the contact, one history row per
/// change, cancellations, and a job per scheduled or suppressed action. Shared by ingest
/// and delayed internal actions so that both leave the same trail.
pub(crate) fn persist_outcome(
    conn: &Connection,
    contact_id: i64,
    event_id: &str,
    outcome: relance_core::Outcome,
    rule_version: i64,
    now: DateTime<Utc>,
) -> Result<Vec<ActionRecord>, StoreError> {
    save_contact(conn, contact_id, &outcome.contact, now)?;

    let mut history = conn.prepare_cached(
        "INSERT INTO history (contact_id, event_id, rule_id, action_type, field, before, after, at, rule_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for change in &outcome.changes {
        history.execute(params![
            contact_id,
            event_id,
            change.rule_id.as_deref(),
            change.action_type.map(|a| a.as_str()),
            change.field.as_str(),
            change.before.to_string(),
            change.after.to_string(),
            to_millis(now),
            rule_version,
        ])?;
    }

    if let Some(scope) = outcome.cancel_pending {
        let reason = match scope {
            CancelScope::OptOut => "cancelled: unsubscribed",
            CancelScope::All => "cancelled: pause_campaign",
        };
        conn.prepare_cached(
            "UPDATE jobs SET state = 'cancelled', last_error = ?1, updated_at = ?2
             WHERE contact_id = ?3 AND state IN ('pending', 'failed')
               AND (?4 OR action_type IN ('send_email', 'send_sms', 'schedule_call', 'create_task'))",
        )?
        .execute(params![reason, to_millis(now), contact_id, scope == CancelScope::All])?;
    }

    let mut insert_job = conn.prepare_cached(
        "INSERT INTO jobs (id, contact_id, event_id, rule_id, trigger, action_type, config, delay_minutes,
                           due_at, state, idempotency_key, last_error, created_at, updated_at, rule_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?1, ?11, ?12, ?12, ?13)",
    )?;
    let mut actions = Vec::with_capacity(outcome.actions.len());
    for fired in outcome.actions {
        let job_id = match fired.status {
            ActionStatus::Applied => None,
            ActionStatus::Scheduled | ActionStatus::Suppressed => {
                let id = Uuid::now_v7().to_string();
                let (state, reason) = match fired.status {
                    ActionStatus::Suppressed => {
                        ("suppressed", fired.reason.map(|r| format!("suppressed: {}", r.as_str())))
                    }
                    _ => ("pending", None),
                };
                insert_job.execute(params![
                    id,
                    contact_id,
                    event_id,
                    &*fired.rule_id,
                    fired.trigger.as_str(),
                    fired.action_type.as_str(),
                    fired.config.to_string(),
                    fired.delay_minutes,
                    to_millis(fired.due_at.unwrap_or(now)),
                    state,
                    reason,
                    to_millis(now),
                    rule_version,
                ])?;
                Some(id)
            }
        };
        actions.push(ActionRecord { fired, job_id });
    }
    Ok(actions)
}
