//! The single SQLite writer: group commit of queued requests.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use relance_core::InboundEvent;
use relance_core::plan::{LoadedContact, PlanError, Planner};
use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::contact_cache::ContactCache;
use super::{Command, from_millis, plan_io, to_millis};
use crate::store::{
    Clock, ContactKey, ContactUpdate, IngestResult, StoreError, StoredContact, dashboard, earliest_new_job,
    keys_to_load, log_plan_warnings, stored_contact,
};

pub(crate) struct Writer {
    pub conn: Connection,
    pub checkpoints: super::checkpoint::Checkpoints,
    pub ctx: WriteContext,
}

/// What the writer needs besides its connection.
pub(crate) struct WriteContext {
    pub rules: Arc<crate::live_rules::LiveRules>,
    pub clock: Clock,
    pub default_segment: String,
    pub jobs_ready: Arc<crate::store::jobs_ready::JobsReady>,
    /// Contact pressure, checked at ingest for messages without delay.
    pub pressure: Arc<relance_core::pressure::Pressure>,
    pub brevo_sync: Arc<relance_core::sync_fields::SyncFields>,
    /// The contacts this writer wrote last (only this thread touches it).
    pub contacts: RefCell<ContactCache>,
}

/// What one command produced, before its reply is sent.
enum Done {
    Ingest(Result<Vec<IngestResult>, StoreError>),
    Write(Result<Box<dyn Any + Send>, StoreError>),
}

impl Command {
    fn reply(self, done: Done) {
        match (self, done) {
            (Command::Ingest { reply, .. }, Done::Ingest(r)) => {
                let _ = reply.send(r);
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
            let (size, started) = (batch.len(), std::time::Instant::now());
            self.commit_batch(&mut batch);
            self.checkpoints.after_commit(&self.conn);
            tracing::debug!(size, ms = started.elapsed().as_secs_f64() * 1000.0, "write batch");
        }
        self.checkpoints.finish(&self.conn);
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
        ctx.contacts.borrow_mut().begin(&tx)?;
        let deliveries: Vec<&[InboundEvent]> = commands
            .iter()
            .filter_map(|c| match c {
                Command::Ingest { events, .. } => Some(events.as_slice()),
                Command::Write { .. } => None,
            })
            .collect();
        // Every delivery of the batch planned together: one load of what they name and
        // one write of the plan, instead of one each (measured: the per-delivery loads
        // and statement look-ups were a fifth of the writer's time). If the planner
        // refuses one of them, nothing is written yet: plan them one by one instead, so
        // that only that delivery is refused.
        let mut earliest_job = None;
        let mut ingested = match ctx.ingest(&tx, &deliveries, now)? {
            Ok((answers, earliest)) => {
                earliest_job = earliest;
                answers.into_iter().map(|a| Done::Ingest(Ok(a))).collect()
            }
            Err(_) => {
                let mut each = Vec::with_capacity(deliveries.len());
                for delivery in &deliveries {
                    each.push(Done::Ingest(match ctx.ingest(&tx, std::slice::from_ref(delivery), now)? {
                        Ok((mut answers, earliest)) => {
                            earliest_job = earliest_job.into_iter().chain(earliest).min();
                            Ok(answers.pop().unwrap_or_default())
                        }
                        Err(refused) => Err(refused),
                    }));
                }
                each
            }
        }
        .into_iter();
        let mut done = Vec::with_capacity(commands.len());
        for command in commands {
            done.push(match command {
                Command::Ingest { .. } => ingested.next().ok_or_else(|| {
                    StoreError::Unavailable(anyhow::anyhow!("internal: a delivery without an answer"))
                })?,
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
        ctx.contacts.borrow_mut().committed();
        if earliest_job.is_some() {
            ctx.jobs_ready.stored(earliest_job);
        }
        Ok(done)
    }
}

impl WriteContext {
    /// Plans deliveries against what is stored and writes the plan; answers each
    /// delivery's events, with when the earliest job it stored is due. The outer `Err`
    /// is a database error (the batch is retried); the inner one refuses a delivery,
    /// before anything of the batch is written.
    fn ingest(
        &self,
        conn: &Connection,
        deliveries: &[&[InboundEvent]],
        now: DateTime<Utc>,
    ) -> Result<Result<Planned, StoreError>, StoreError> {
        if deliveries.is_empty() {
            return Ok(Ok((Vec::new(), None)));
        }
        let events: Vec<&InboundEvent> = deliveries.iter().flat_map(|d| d.iter()).collect();
        let rules = self.rules.current();
        let mut new_id = || Uuid::now_v7().to_string();
        let mut planner = Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
        planner.set_pressure(self.pressure.clone());
        planner.set_sync(self.brevo_sync.clone());
        let mut cache = self.contacts.borrow_mut();
        plan_io::load_for(conn, &mut cache, &mut planner, &events, now)?;
        let first = plan_io::next_event_id(conn)?;
        planner.reserve_event_ids(first..first + events.len() as i64);
        for e in &events {
            if let Err(refused) = planner.ingest(e, now) {
                return Ok(Err(refused.into()));
            }
        }
        let plan = planner.finish();
        let ids = plan_io::write_plan(conn, &plan, &events)?;
        log_plan_warnings(&plan, &ids);
        let earliest = earliest_new_job(&plan);
        // The plan's own writes are forgotten first: what it planned replaces them.
        cache.forget_written();
        cache.planned(plan.contacts.into_iter().zip(&ids).map(|(c, &id)| LoadedContact {
            id,
            contact: c.contact,
            version: c.version,
            // As a read gives them back: the row keeps milliseconds.
            created_at: from_millis(to_millis(c.created_at)),
            updated_at: from_millis(to_millis(c.updated_at)),
        }));
        let mut answers = plan.answers.into_iter();
        Ok(Ok((deliveries.iter().map(|d| answers.by_ref().take(d.len()).collect()).collect(), earliest)))
    }

    /// Creates or updates contacts (the API: one row; an import: many, all or nothing
    /// unless `skip_conflicts`). Decided by the planner before anything is written: the
    /// outer `Err` is a database error, the inner one the refused row (by index).
    pub(crate) fn upsert_many(
        &self,
        conn: &Connection,
        rows: &[(ContactKey, ContactUpdate)],
        skip_conflicts: bool,
        now: DateTime<Utc>,
    ) -> Result<Result<Vec<Upserted>, (usize, StoreError)>, StoreError> {
        let rules = self.rules.current();
        let mut new_id = || Uuid::now_v7().to_string();
        let mut planner = Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
        planner.set_sync(self.brevo_sync.clone());
        let (emails, codes) = keys_to_load(rows.iter().map(|(k, u)| (k, u)));
        plan_io::load_identities(conn, &mut self.contacts.borrow_mut(), &mut planner, &emails, &codes)?;
        let mut planned = Vec::with_capacity(rows.len());
        for (i, (key, update)) in rows.iter().enumerate() {
            match planner.upsert(&key.identity(), update.clone(), now) {
                Ok(done) => planned.push(Ok(done)),
                Err(PlanError::Conflict(m)) if skip_conflicts => planned.push(Err(m)),
                Err(e) => return Ok(Err((i, e.into()))),
            }
        }
        let plan = planner.finish();
        let ids = plan_io::write_plan(conn, &plan, &[])?;
        Ok(Ok(planned
            .into_iter()
            .map(|r| match r {
                Ok((slot, created)) => Upserted::Done(Box::new(stored_contact(&plan, slot, &ids)), created),
                Err(m) => Upserted::Skipped(m),
            })
            .collect()))
    }
}

/// Each delivery's answers, and when the earliest job the plan stored is due.
type Planned = (Vec<Vec<IngestResult>>, Option<DateTime<Utc>>);

/// One row of an upsert.
pub(crate) enum Upserted {
    Done(Box<StoredContact>, bool),
    /// Refused (an identity another contact holds), the others went in.
    Skipped(String),
}

/// Adds a batch's counters to the dashboard's hourly counts.
pub(super) fn add_counts(conn: &Connection, counts: &[dashboard::HourlyCount]) -> Result<(), StoreError> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO hourly_counts (hour, kind, name, count) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (hour, kind, name) DO UPDATE SET count = count + excluded.count",
    )?;
    for c in counts {
        upsert.execute(params![c.hour, c.kind.as_str(), c.name, c.count])?;
    }
    Ok(())
}
