//! SQLite, the embedded default.
//!
//! One writer thread owns the only write connection; requests reach it through a bounded
//! queue. It takes everything queued (up to `max_batch`), runs it in one `BEGIN IMMEDIATE`
//! transaction with a savepoint per request, and commits once: with `synchronous=FULL`
//! one fsync then covers every request of the batch (group commit). Nobody is answered
//! before that commit. Reads use a small pool of separate connections (WAL lets them run
//! beside the writer).

mod jobs;
pub mod lock;
mod plan_io;
mod rejected;
mod rule_sets;
mod writer;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use relance_core::{ActionType, Contact, InboundEvent};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::dashboard::{ContactDistribution, CounterKind, HOUR_MS, HourlyCount};
use super::jobs::{Attempt, ClaimRequest, ClaimedJob, JobCount, JobFilter, JobFinish, JobRow, OutboxRow};
use super::{
    Clock, ContactFilter, ContactKey, ContactUpdate, ErasureReport, EventQuery, EventRow, HistoryRow, ImportOutcome,
    ImportRow, IngestResult, NewRuleSet, RuleSetRow, Store, StoreError, StoredContact,
};

const MIGRATIONS: &[&str] = &[
    include_str!("001_initial.sql"),
    include_str!("002_outbox.sql"),
    include_str!("003_schedule_runs.sql"),
    include_str!("004_rule_sets.sql"),
    include_str!("005_dashboard.sql"),
    include_str!("006_rejected.sql"),
    include_str!("007_rule_origins.sql"),
];

#[derive(Debug, Clone)]
pub struct SqliteSettings {
    pub default_segment: String,
    /// Requests that may wait for the writer; beyond it callers get `Overloaded`.
    pub queue_capacity: usize,
    /// Requests committed together at most.
    pub max_batch: usize,
    pub read_connections: usize,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            default_segment: relance_core::contact::DEFAULT_SEGMENT.to_owned(),
            queue_capacity: 4096,
            max_batch: 256,
            read_connections: 4,
        }
    }
}

pub(crate) enum Command {
    Ingest {
        events: Vec<InboundEvent>,
        reply: oneshot::Sender<Result<Vec<IngestResult>, StoreError>>,
    },
    Upsert {
        key: ContactKey,
        update: Box<ContactUpdate>,
        reply: oneshot::Sender<Result<(StoredContact, bool), StoreError>>,
    },
    /// Any other write. `Fn`, not `FnOnce`: a failed batch is replayed command by command.
    Write {
        f: WriteFn,
        reply: oneshot::Sender<Result<Box<dyn Any + Send>, StoreError>>,
    },
}

pub(crate) type WriteFn =
    Box<dyn Fn(&Connection, &writer::WriteContext, DateTime<Utc>) -> Result<Box<dyn Any + Send>, StoreError> + Send>;

pub struct SqliteStore {
    path: PathBuf,
    /// Woken after commits that may have created jobs.
    jobs_ready: Arc<tokio::sync::Notify>,
    queue: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    reads: Arc<ReadPool>,
}

/// `sqlite://relance.db`, `sqlite:relance.db`, `sqlite::memory:` is refused (the
/// writer and readers must share one file).
pub fn path_from_url(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .with_context(|| "not a sqlite:// URL".to_owned())?;
    let rest = rest.split('?').next().unwrap_or(rest);
    anyhow::ensure!(!rest.is_empty() && rest != ":memory:", "a SQLite database needs a file path");
    Ok(PathBuf::from(rest))
}

/// Creates the database's folder when its parent exists; a typo in a deep path should not
/// silently build a tree of folders.
pub(crate) fn ensure_folder(path: &Path) -> anyhow::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) else { return Ok(()) };
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) if !parent.exists() => anyhow::bail!(
            "cannot create the database {}: its folder {} does not exist, nor its parent {}; \
             create it, or give another path with --database / RELANCE_DATABASE_URL",
            path.display(),
            dir.display(),
            parent.display()
        ),
        _ => std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display())),
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // FULL: a commit survives power loss, not only a process crash.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Only other processes (a backup, a second `relance` command) can hold the write lock;
    // waiting long for them would hold every webhook sender. A second, then 429.
    conn.busy_timeout(Duration::from_secs(1))?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    anyhow::ensure!(
        current <= MIGRATIONS.len(),
        "the database schema (version {current}) is newer than this binary knows ({})",
        MIGRATIONS.len()
    );
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql).with_context(|| format!("migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database, then starts the writer.
    pub fn open(
        path: &Path,
        rules: Arc<crate::live_rules::LiveRules>,
        clock: Clock,
        settings: SqliteSettings,
    ) -> anyhow::Result<SqliteStore> {
        ensure_folder(path)?;
        let mut conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        configure(&conn).context("configuring SQLite")?;
        migrate(&mut conn).context("migrating the database")?;

        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let jobs_ready = Arc::new(tokio::sync::Notify::new());
        let writer = writer::Writer {
            conn,
            ctx: writer::WriteContext {
                rules,
                clock,
                default_segment: settings.default_segment.clone(),
                jobs_ready: jobs_ready.clone(),
            },
        };
        let max_batch = settings.max_batch.max(1);
        let handle = std::thread::Builder::new()
            .name("relance-sqlite-writer".into())
            .spawn(move || writer.run(rx, max_batch))
            .context("starting the writer thread")?;
        Ok(SqliteStore {
            path: path.to_owned(),
            jobs_ready,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
            reads: Arc::new(ReadPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
                keep: settings.read_connections,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        let queue = self.queue.lock().map_err(|_| StoreError::Overloaded)?;
        let Some(queue) = queue.as_ref() else {
            return Err(StoreError::Unavailable(anyhow::anyhow!("shutting down")));
        };
        queue.try_send(command).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Unavailable(anyhow::anyhow!("the writer stopped")),
        })
    }

    /// Runs `f` on the writer thread, in the next batch's transaction.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection, &writer::WriteContext, DateTime<Utc>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let f: WriteFn = Box::new(move |conn, ctx, now| f(conn, ctx, now).map(|v| Box::new(v) as Box<dyn Any + Send>));
        self.send(Command::Write { f, reply })?;
        let any =
            answer.await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the writer dropped the request")))??;
        any.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Unavailable(anyhow::anyhow!("internal: wrong reply type")))
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.reads.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            let result = f(&conn);
            pool.put(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.into()))?
    }
}

/// A handful of read-only connections, opened on demand and kept for reuse.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

impl ReadPool {
    fn get(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.keep
        {
            idle.push(conn);
        }
    }
}

pub(crate) fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn json_column(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The contact id for a key, if any.
pub(crate) fn find_contact_id(conn: &Connection, key: &ContactKey) -> rusqlite::Result<Option<i64>> {
    match key {
        ContactKey::Email(e) => conn
            .prepare_cached("SELECT id FROM contacts WHERE email = ?1")?
            .query_row([e.as_str()], |r| r.get(0))
            .optional(),
        ContactKey::ClientCode(c) => conn
            .prepare_cached("SELECT id FROM contacts WHERE client_code = ?1")?
            .query_row([c.as_str()], |r| r.get(0))
            .optional(),
    }
}

pub(crate) fn load_contact(conn: &Connection, id: i64) -> Result<StoredContact, StoreError> {
    let (data, created, updated, version): (String, i64, i64, i64) = conn
        .prepare_cached("SELECT data, created_at, updated_at, version FROM contacts WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let contact: Contact = serde_json::from_str(&data)
        .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e).context(format!("contact {id} is unreadable"))))?;
    Ok(StoredContact { id, contact, created_at: from_millis(created), updated_at: from_millis(updated), version })
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let event: Value = json_column(r.get(3)?);
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(EventRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        dedupe_key: r.get(2)?,
        timestamp: from_millis(r.get(4)?),
        received_at: from_millis(r.get(5)?),
        event_type: r.get(6)?,
        source: r.get(7)?,
        trigger: r.get(8)?,
        email: r.get(9)?,
        client_code: r.get(10)?,
        event_id: r.get(11)?,
        raw: json_column(r.get(12)?),
        message_id: text("message_id"),
        link: text("link"),
    })
}

impl Store for SqliteStore {
    async fn ingest(&self, events: Vec<InboundEvent>) -> Result<Vec<IngestResult>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Ingest { events, reply })?;
        answer.await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the writer dropped the request")))?
    }

    async fn upsert_contact(
        &self,
        key: ContactKey,
        update: ContactUpdate,
    ) -> Result<(StoredContact, bool), StoreError> {
        update.validate()?;
        let (reply, answer) = oneshot::channel();
        self.send(Command::Upsert { key, update: Box::new(update), reply })?;
        answer.await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the writer dropped the request")))?
    }

    async fn contact(&self, key: ContactKey) -> Result<Option<StoredContact>, StoreError> {
        self.read(move |conn| match find_contact_id(conn, &key)? {
            Some(id) => load_contact(conn, id).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn history(&self, key: ContactKey, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        self.read(move |conn| {
            let id = find_contact_id(conn, &key)?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
            let mut stmt = conn.prepare_cached(
                "SELECT at, event_id, rule_id, action_type, field, before, after FROM (
                     SELECT id, at, event_id, rule_id, action_type, field, before, after FROM history
                     WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2
                 ) ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![id, limit as i64], |r| {
                    Ok(HistoryRow {
                        at: from_millis(r.get(0)?),
                        event_id: r.get(1)?,
                        rule_id: r.get(2)?,
                        action_type: r.get(3)?,
                        field: r.get(4)?,
                        before: json_column(r.get(5)?),
                        after: json_column(r.get(6)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |conn| {
            let contact_id = match &query.contact {
                Some(key) => match find_contact_id(conn, key)? {
                    Some(id) => Some(id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            // One statement per shape rather than `(?1 IS NULL OR contact_id = ?1)` and a
            // computed ORDER BY: those stop SQLite from using the contact index and from
            // walking the primary key in order (a scan of every event per call).
            let by_contact = if contact_id.is_some() { "contact_id = ?1" } else { "?1 IS NULL" };
            let order = if query.newest { "DESC" } else { "ASC" };
            let sql = format!(
                "SELECT id, public_id, dedupe_key, event, occurred_at, received_at, name, source, trigger,
                        email, client_code, sender_event_id, raw
                 FROM events
                 WHERE {by_contact} AND (?2 IS NULL OR received_at >= ?2) AND id > ?3
                 ORDER BY id {order} LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt
                .query_map(
                    params![contact_id, query.since.map(to_millis), query.after_seq.unwrap_or(0), query.limit as i64,],
                    event_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if query.newest {
                rows.reverse();
            }
            Ok(rows)
        })
        .await
    }

    async fn claim_jobs(&self, req: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        self.write(move |conn, _, now| jobs::claim(conn, &req, now)).await
    }

    async fn finish_job(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        self.write(move |conn, _, now| jobs::finish(conn, &id, &finish, now)).await
    }

    async fn run_internal_job(&self, id: String) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        self.write(move |conn, ctx, now| jobs::run_internal(conn, ctx, &id, started, now)).await
    }

    async fn next_due(&self, action_types: Vec<ActionType>) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(move |conn| jobs::next_due(conn, &action_types)).await
    }

    async fn jobs(&self, filter: JobFilter, contact: Option<ContactKey>) -> Result<Vec<JobRow>, StoreError> {
        self.read(move |conn| {
            let mut filter = filter;
            if let Some(key) = &contact {
                match find_contact_id(conn, key)? {
                    Some(id) => filter.contact_id = Some(id),
                    None => return Ok(Vec::new()),
                }
            }
            jobs::list(conn, &filter)
        })
        .await
    }

    async fn job(&self, id: String) -> Result<Option<(JobRow, Vec<Attempt>)>, StoreError> {
        self.read(move |conn| jobs::get(conn, &id)).await
    }

    async fn cancel_job(&self, id: String) -> Result<(), StoreError> {
        self.write(move |conn, _, now| jobs::cancel(conn, &id, now)).await
    }

    async fn retry_job(&self, id: String) -> Result<(), StoreError> {
        self.write(move |conn, _, now| jobs::retry(conn, &id, now)).await?;
        self.jobs_ready.notify_one();
        Ok(())
    }

    async fn finish_external(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        self.write(move |conn, _, now| {
            jobs::check_running(conn, &id)?;
            jobs::finish(conn, &id, &finish, now)
        })
        .await
    }

    async fn job_stats(&self) -> Result<Vec<JobCount>, StoreError> {
        self.read(jobs::stats).await
    }

    async fn record_rejected(&self, items: Vec<crate::store::rejected::NewRejected>) -> Result<(), StoreError> {
        self.write(move |conn, _, now| rejected::record(conn, &items, now)).await
    }

    async fn rejected_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::store::rejected::RejectedDelivery>, StoreError> {
        self.read(move |conn| rejected::newest(conn, limit)).await
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| jobs::outbox(conn, limit)).await
    }

    async fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.write(move |conn, _, now| {
            let occ = to_millis(occurrence);
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO schedule_runs (rule_id, occurrence_at, started_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (rule_id, occurrence_at) DO NOTHING",
                )?
                .execute(params![rule_id, occ, to_millis(now)])?;
            if inserted == 1 {
                return Ok(true);
            }
            // A run that started and never finished (its instance died) is taken over;
            // the per-contact dedupe keys make the second pass harmless.
            let stale = to_millis(now) - stale_after.as_millis() as i64;
            let taken = conn
                .prepare_cached(
                    "UPDATE schedule_runs SET started_at = ?3
                     WHERE rule_id = ?1 AND occurrence_at = ?2 AND finished_at IS NULL AND started_at < ?4",
                )?
                .execute(params![rule_id, occ, to_millis(now), stale])?;
            Ok(taken == 1)
        })
        .await
    }

    async fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            conn.prepare_cached(
                "UPDATE schedule_runs SET finished_at = ?3, contacts = ?4 WHERE rule_id = ?1 AND occurrence_at = ?2",
            )?
            .execute(params![rule_id, to_millis(occurrence), to_millis(now), contacts as i64])?;
            Ok(())
        })
        .await
    }

    async fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        self.write(move |conn, ctx, now| {
            // Planned as a whole before anything is written: a refused row leaves nothing.
            let pairs: Vec<_> = rows.iter().map(|r| (r.key.clone(), r.update.clone())).collect();
            let done = match ctx.upsert_many(conn, &pairs, skip_invalid, now)? {
                Ok(done) => done,
                Err((i, StoreError::Conflict(m))) => {
                    return Err(StoreError::Conflict(format!("line {}: {m}", rows[i].line)));
                }
                Err((_, refused)) => return Err(refused),
            };
            let outcomes: Vec<ImportOutcome> = rows
                .iter()
                .zip(done)
                .map(|(row, d)| match d {
                    writer::Upserted::Done(_, created) => ImportOutcome { line: row.line, created, rejected: None },
                    writer::Upserted::Skipped(m) => ImportOutcome { line: row.line, created: false, rejected: Some(m) },
                })
                .collect();
            Ok(outcomes)
        })
        .await
    }

    async fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, contact_id, event, received_at FROM events
                 WHERE contact_id IS NOT NULL AND id > ?1 AND (?2 IS NULL OR received_at >= ?2)
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![after_seq, since.map(to_millis), limit as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(seq, contact_id, event, at)| {
                    let event = serde_json::from_str(&event).map_err(|e| StoreError::Unavailable(e.into()))?;
                    Ok((seq, relance_core::backtest::ReplayEvent { contact_id, event, at: from_millis(at) }))
                })
                .collect()
        })
        .await
    }

    async fn active_rule_set(&self) -> Result<Option<RuleSetRow>, StoreError> {
        self.read(rule_sets::active).await
    }

    async fn save_rule_set(&self, new: NewRuleSet) -> Result<RuleSetRow, StoreError> {
        self.write(move |conn, _, now| rule_sets::save(conn, &new, now)).await
    }

    async fn activate_rule_set(&self, version: i64, via: String) -> Result<RuleSetRow, StoreError> {
        self.write(move |conn, _, _| rule_sets::activate(conn, version, &via)).await
    }

    async fn rule_set_versions(&self) -> Result<Vec<RuleSetRow>, StoreError> {
        self.read(rule_sets::versions).await
    }

    async fn rules_file_hash(&self, path: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn| rule_sets::file_hash(conn, &path)).await
    }

    async fn record_rules_file(&self, path: String, hash: String, version: i64) -> Result<(), StoreError> {
        self.write(move |conn, _, now| rule_sets::record_file(conn, &path, &hash, version, now)).await
    }

    async fn erase_contact(&self, key: ContactKey) -> Result<ErasureReport, StoreError> {
        self.write(move |conn, _, now| {
            let id = find_contact_id(conn, &key)?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
            let stored = load_contact(conn, id)?;
            let tombstone = serde_json::to_string(&super::erased_contact(&stored.contact))
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            conn.prepare_cached(
                "UPDATE contacts SET email = NULL, client_code = NULL, data = ?1, updated_at = ?2, version = version + 1
                 WHERE id = ?3",
            )?
            .execute(params![tombstone, to_millis(now), id])?;
            let events = conn
                .prepare_cached(
                    "UPDATE events SET email = NULL, client_code = NULL, sender_event_id = NULL, raw = '{\"erased\":true}',
                            event = json_set(json_remove(event, '$.link', '$.message_id'), '$.attributes', json('{}'))
                     WHERE contact_id = ?1",
                )?
                .execute([id])?;
            let jobs = conn
                .prepare_cached(
                    "UPDATE jobs SET state = 'cancelled', last_error = 'cancelled: the contact was erased', updated_at = ?1
                     WHERE contact_id = ?2 AND state IN ('pending', 'failed', 'running')",
                )?
                .execute(params![to_millis(now), id])?;
            let outbox = conn
                .prepare_cached(
                    "UPDATE outbox SET payload = '{\"erased\":true}' WHERE job_id IN (SELECT id FROM jobs WHERE contact_id = ?1)",
                )?
                .execute([id])?;
            Ok(ErasureReport {
                events_anonymised: events as u64,
                jobs_cancelled: jobs as u64,
                outbox_records_erased: outbox as u64,
            })
        })
        .await
    }

    async fn list_contacts(&self, f: ContactFilter) -> Result<Vec<StoredContact>, StoreError> {
        self.read(move |conn| {
            let ids: Vec<i64> = conn
                .prepare_cached(
                    "SELECT id FROM contacts
                     WHERE id > ?1 AND (?2 IS NULL OR segment = ?2) AND (?3 IS NULL OR score >= ?3)
                       AND (?4 IS NULL OR score <= ?4) AND (?5 IS NULL OR updated_at >= ?5)
                       AND (?6 IS NULL OR EXISTS (SELECT 1 FROM json_each(data, '$.tags') WHERE value = ?6))
                       AND (?8 IS NULL OR (email >= lower(?8) AND email < lower(?8) || char(1114111))
                            OR (client_code >= ?8 AND client_code < ?8 || char(1114111)))
                     ORDER BY id LIMIT ?7",
                )?
                .query_map(
                    params![
                        f.after_id,
                        f.segment,
                        f.score_min,
                        f.score_max,
                        f.updated_since.map(to_millis),
                        f.tag,
                        f.limit as i64,
                        f.search,
                    ],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            ids.into_iter().map(|id| load_contact(conn, id)).collect()
        })
        .await
    }

    async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT hour, kind, name, count FROM hourly_counts WHERE hour >= ?1 ORDER BY hour, kind, name",
            )?;
            let rows = stmt
                .query_map([to_millis(since).div_euclid(HOUR_MS) * HOUR_MS], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(hour, kind, name, count)| {
                    Some(HourlyCount { hour, kind: CounterKind::parse(&kind)?, name, count })
                })
                .collect())
        })
        .await
    }

    async fn contact_distribution(&self) -> Result<ContactDistribution, StoreError> {
        self.read(|conn| {
            let mut d = ContactDistribution::default();
            let mut scores = conn.prepare_cached("SELECT score, count(*) FROM contacts GROUP BY score")?;
            for row in scores.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
                let (score, n) = row?;
                d.add_score(score, n);
                d.total += n;
            }
            let mut segments = conn.prepare_cached(
                "SELECT segment, count(*) AS n FROM contacts GROUP BY segment ORDER BY n DESC, segment LIMIT 50",
            )?;
            d.segments =
                segments.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(d)
        })
        .await
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, public_id, dedupe_key, event, occurred_at, received_at, name, source, trigger,
                        email, client_code, sender_event_id, raw
                 FROM events ORDER BY id DESC LIMIT ?1",
            )?;
            Ok(stmt.query_map([limit as i64], event_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    fn jobs_ready(&self) -> Arc<tokio::sync::Notify> {
        self.jobs_ready.clone()
    }

    fn queue_depth(&self) -> usize {
        self.queue.lock().ok().and_then(|q| q.as_ref().map(|q| q.max_capacity() - q.capacity())).unwrap_or(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    async fn shutdown(&self) {
        // Dropping the sender lets the writer finish what is queued, commit, and stop.
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}
