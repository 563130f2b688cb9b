//! SQLite, the embedded default.
//!
//! One writer thread owns the only write connection; requests reach it through a bounded
//! queue. It takes everything queued (up to `max_batch`), runs it in one `BEGIN IMMEDIATE`
//! transaction, and commits once: with `synchronous=FULL` one fsync then covers every
//! request of the batch (group commit). Nobody is answered before that commit. Reads use
//! a small pool of separate connections (WAL lets them run beside the writer), and a
//! thread of its own copies the WAL into the database file (`checkpoint`).

mod access;
mod brevo_sync;
mod checkpoint;
mod contact_cache;
mod contacts;
mod job_store;
mod jobs;
pub mod lock;
mod pause;
mod plan_io;
pub(crate) use brevo_sync::BREVO_SYNC_STATUS_SQL;
mod pressure;
mod reads;
mod rejected;
mod retention;
mod rule_sets;
mod runs;
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
    ImportRow, IngestResult, NewRuleSet, RuleSetRow, StoreError, StoredContact, stored_event,
};

/// The name of the thread that commits every write (under 15 bytes, the most Linux keeps
/// in `/proc/…/comm`).
pub const WRITER_THREAD: &str = "sqlite-writer";

/// The schema version this build creates (SQLite's `user_version` once migrated).
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}

/// The migration files this build knows, in order.
pub fn migration_names() -> Vec<&'static str> {
    MIGRATIONS.iter().map(|(name, _)| *name).collect()
}

/// Each migration file's name and SQL, in order; the schema version is how many ran.
const MIGRATIONS: &[(&str, &str)] = &[
    ("001_initial.sql", include_str!("001_initial.sql")),
    ("002_outbox.sql", include_str!("002_outbox.sql")),
    ("003_schedule_runs.sql", include_str!("003_schedule_runs.sql")),
    ("004_rule_sets.sql", include_str!("004_rule_sets.sql")),
    ("005_dashboard.sql", include_str!("005_dashboard.sql")),
    ("006_rejected.sql", include_str!("006_rejected.sql")),
    ("007_rule_origins.sql", include_str!("007_rule_origins.sql")),
    ("008_runs.sql", include_str!("008_runs.sql")),
    ("009_pressure.sql", include_str!("009_pressure.sql")),
    ("010_paused_rules.sql", include_str!("010_paused_rules.sql")),
    ("011_budgets.sql", include_str!("011_budgets.sql")),
    ("012_retention.sql", include_str!("012_retention.sql")),
    ("013_brevo_sync.sql", include_str!("013_brevo_sync.sql")),
    ("014_access.sql", include_str!("014_access.sql")),
    ("015_write_set.sql", include_str!("015_write_set.sql")),
    ("016_event_ids.sql", include_str!("016_event_ids.sql")),
];

#[derive(Debug, Clone)]
pub struct SqliteSettings {
    pub default_segment: String,
    /// Requests that may wait for the writer; beyond it callers get `Overloaded`.
    pub queue_capacity: usize,
    /// Requests committed together at most.
    pub max_batch: usize,
    pub read_connections: usize,
    /// Contact pressure for messages planned at ingest (the claim gets it per request).
    pub pressure: Arc<relance_core::pressure::Pressure>,
    /// Fields pushed to Brevo (`[brevo.sync]`): a change queues the contact.
    pub brevo_sync: Arc<relance_core::sync_fields::SyncFields>,
    /// Contacts the writer keeps in memory after writing them (0: none).
    pub contact_cache: usize,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        SqliteSettings {
            default_segment: relance_core::contact::DEFAULT_SEGMENT.to_owned(),
            queue_capacity: 4096,
            max_batch: 256,
            read_connections: 4,
            pressure: Arc::default(),
            brevo_sync: Arc::default(),
            contact_cache: DEFAULT_CONTACT_CACHE,
        }
    }
}

/// About 860 bytes per contact, 9 MB in all (bench/README.md, tenth pass).
pub const DEFAULT_CONTACT_CACHE: usize = 10_000;

pub(crate) enum Command {
    Ingest {
        events: Vec<InboundEvent>,
        reply: oneshot::Sender<Result<Vec<IngestResult>, StoreError>>,
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
    jobs_ready: Arc<crate::store::jobs_ready::JobsReady>,
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

/// Prepared statements kept per connection: more than any connection uses.
const STATEMENT_CACHE: usize = 256;

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // The writer runs some forty distinct statements (ingest loads and writes, claims,
    // finishes, runs, pressure); with rusqlite's default of 16 cached statements they
    // evicted each other and every batch parsed SQL again (measured: 14 % of the writer).
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
    for (i, (_, sql)) in MIGRATIONS.iter().enumerate().skip(current) {
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
        let jobs_ready = Arc::new(crate::store::jobs_ready::JobsReady::default());
        let checkpoints = checkpoint::Checkpoints::start(path, &conn, checkpoint::Thresholds::SERVE)?;
        let contacts = std::cell::RefCell::new(contact_cache::ContactCache::attach(&conn, settings.contact_cache));
        let writer = writer::Writer {
            conn,
            checkpoints,
            ctx: writer::WriteContext {
                rules,
                clock,
                default_segment: settings.default_segment.clone(),
                jobs_ready: jobs_ready.clone(),
                pressure: settings.pressure.clone(),
                brevo_sync: settings.brevo_sync.clone(),
                contacts,
            },
        };
        let max_batch = settings.max_batch.max(1);
        let handle = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                crate::sched::batch_this_thread(WRITER_THREAD);
                writer.run(rx, max_batch)
            })
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

/// The event of a row read as `event, …, source, name, trigger, occurred_at`: `json` is
/// the index of the `event` column, `columns` that of `source` (the other three follow).
/// `None` when the row is absent (a LEFT JOIN) or unreadable.
pub(crate) fn stored_event_of(
    r: &rusqlite::Row<'_>,
    json: usize,
    columns: usize,
) -> rusqlite::Result<Option<relance_core::Event>> {
    let Some(text) = r.get::<_, Option<String>>(json)? else { return Ok(None) };
    let (source, name, trigger): (String, String, Option<String>) =
        (r.get(columns)?, r.get(columns + 1)?, r.get(columns + 2)?);
    let columns = stored_event::EventColumns {
        source: &source,
        name: &name,
        trigger: trigger.as_deref(),
        occurred_at: from_millis(r.get(columns + 3)?),
    };
    Ok(stored_event::from_stored(&text, columns)
        .inspect_err(|e| tracing::warn!(error = %e, "a stored event is unreadable"))
        .ok())
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let event: Value = json_column(r.get(3)?);
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
    let (name, source, email, client_code, sender_event_id): (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (r.get(6)?, r.get(7)?, r.get(9)?, r.get(10)?, r.get(11)?);
    let raw = stored_event::raw_of(
        &r.get::<_, String>(12)?,
        &stored_event::RawColumns {
            source: &source,
            name: &name,
            email: email.as_deref(),
            client_code: client_code.as_deref(),
            sender_event_id: sender_event_id.as_deref(),
        },
        &event,
    );
    Ok(EventRow {
        seq: r.get(0)?,
        id: r.get(1)?,
        dedupe_key: r.get(2)?,
        timestamp: from_millis(r.get(4)?),
        received_at: from_millis(r.get(5)?),
        event_type: name,
        source,
        trigger: r.get(8)?,
        email,
        client_code,
        event_id: sender_event_id,
        raw,
        message_id: text("message_id"),
        link: text("link"),
    })
}
