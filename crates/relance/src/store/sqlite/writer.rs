//! The single SQLite writer: group commit of queued requests.

use std::any::Any;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use relance_core::plan::Planner;
use relance_core::{ClientCode, Contact, Email, InboundEvent};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Command, find_contact_id, load_contact, plan_io, to_millis};
use crate::store::{
    Clock, ContactKey, ContactUpdate, IngestResult, StoreError, StoredContact, dashboard, log_plan_warnings,
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
                Command::Ingest { events, .. } => Done::Ingest(ctx.ingest(&tx, events, now)?),
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
    /// Plans a delivery against what is stored and writes the plan. The outer `Err` is a
    /// database error (the batch is retried); the inner one refuses this delivery only,
    /// before anything of it is written.
    fn ingest(
        &self,
        conn: &Connection,
        events: &[InboundEvent],
        now: DateTime<Utc>,
    ) -> Result<Result<Vec<IngestResult>, StoreError>, StoreError> {
        let rules = self.rules.current();
        let mut new_id = || Uuid::now_v7().to_string();
        let mut planner = Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
        plan_io::load_for(conn, &mut planner, events)?;
        for e in events {
            if let Err(refused) = planner.ingest(e, now) {
                return Ok(Err(refused.into()));
            }
        }
        let plan = planner.finish();
        let ids = plan_io::write_plan(conn, &plan, events)?;
        log_plan_warnings(&plan, &ids);
        Ok(Ok(plan.answers))
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
