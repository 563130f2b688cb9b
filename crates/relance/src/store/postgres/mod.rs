//! PostgreSQL, for several instances sharing one database.
//!
//! Ingest is batched per instance (`batch.rs`): the requests queued while a transaction
//! runs go into the next one, which locks the contacts they name in id order (a stable
//! order across instances: they wait for each other instead of deadlocking or losing an
//! update) and inserts an event (dedupe key unique) only after its contact is locked, so
//! the events of one contact are numbered in commit order. Jobs are claimed with
//! `FOR UPDATE SKIP LOCKED` and a lease. Migrations run under an advisory lock.

mod access;
mod batch;
mod brevo_sync;
mod contacts;
mod finishes;
mod job_store;
mod jobs;
mod pause;
mod pipeline;
mod plan_io;
mod pressure;
mod reads;
mod rejected;
mod retention;
mod rule_sets;
mod runs;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use relance_core::plan::{PlanError, Planner};
use relance_core::{ActionType, ClientCode, Contact, Email, InboundEvent};
use serde_json::Value;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::dashboard::{ContactDistribution, CounterKind, HOUR_MS, HourlyCount};
use super::jobs::{Attempt, ClaimRequest, ClaimedJob, JobCount, JobFilter, JobFinish, JobRow, OutboxRow};
use super::{
    Clock, ContactFilter, ContactKey, ContactUpdate, ErasureReport, EventQuery, EventRow, HistoryRow, ImportOutcome,
    ImportRow, IngestResult, NewRuleSet, RuleSetRow, StoreError, StoredContact, keys_to_load, stored_contact,
    stored_event,
};

/// Each migration file's name and SQL, in order; the schema version is how many ran.
const MIGRATIONS: &[(&str, &str)] = &[
    ("001_initial.sql", include_str!("001_initial.sql")),
    ("002_rule_sets.sql", include_str!("002_rule_sets.sql")),
    ("003_dashboard.sql", include_str!("003_dashboard.sql")),
    ("004_rejected.sql", include_str!("004_rejected.sql")),
    ("005_rule_origins.sql", include_str!("005_rule_origins.sql")),
    ("006_runs.sql", include_str!("006_runs.sql")),
    ("007_pressure.sql", include_str!("007_pressure.sql")),
    ("008_paused_rules.sql", include_str!("008_paused_rules.sql")),
    ("009_budgets.sql", include_str!("009_budgets.sql")),
    ("010_retention.sql", include_str!("010_retention.sql")),
    ("011_brevo_sync.sql", include_str!("011_brevo_sync.sql")),
    ("012_access.sql", include_str!("012_access.sql")),
    ("013_write_set.sql", include_str!("013_write_set.sql")),
    ("014_event_ids.sql", include_str!("014_event_ids.sql")),
    ("015_dedupe_hash.sql", include_str!("015_dedupe_hash.sql")),
];
/// The migration files this build knows, in order.
pub fn migration_names() -> Vec<&'static str> {
    MIGRATIONS.iter().map(|(name, _)| *name).collect()
}

/// Any constant shared by all instances: it names the migration lock.
const MIGRATION_LOCK: i64 = 0x0072_656c_616e_6365;

#[derive(Debug, Clone)]
pub struct PgSettings {
    pub default_segment: String,
    pub pool_size: usize,
    /// A statement running longer is cancelled (and the request answered 429).
    pub statement_timeout: Duration,
    /// How long a request waits for a free connection before 429.
    pub pool_wait: Duration,
    /// Requests waiting for the batch task; beyond it callers get 429.
    pub queue_capacity: usize,
    /// Contact pressure for messages planned at ingest (the claim gets it per request).
    pub pressure: Arc<relance_core::pressure::Pressure>,
    /// Fields pushed to Brevo (`[brevo.sync]`): a change queues the contact.
    pub brevo_sync: Arc<relance_core::sync_fields::SyncFields>,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            default_segment: relance_core::contact::DEFAULT_SEGMENT.to_owned(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            pool_wait: Duration::from_secs(2),
            queue_capacity: 4096,
            pressure: Arc::default(),
            brevo_sync: Arc::default(),
        }
    }
}

/// Cheap to clone: the batch task holds a clone.
#[derive(Clone)]
pub struct PgStore {
    /// For error messages that say where PostgreSQL was looked for.
    url: String,
    pool: Pool,
    rules: Arc<crate::live_rules::LiveRules>,
    clock: Clock,
    default_segment: String,
    pressure: Arc<relance_core::pressure::Pressure>,
    brevo_sync: Arc<relance_core::sync_fields::SyncFields>,
    jobs_ready: Arc<crate::store::jobs_ready::JobsReady>,
    /// The ingest queue; taken (closed) at shutdown so that the batch task drains and ends.
    queue: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Sender<batch::IngestJob>>>>,
    batchers: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Job finishes waiting for the next grouped transaction.
    finishes: Arc<finishes::Finishes>,
    /// Dashboard counters of committed batches not written yet.
    counts: Arc<tokio::sync::Mutex<batch::PendingCounts>>,
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Unavailable(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            // Every connection is busy: the same as a full queue.
            deadpool_postgres::PoolError::Timeout(_) => StoreError::Overloaded,
            other => StoreError::Unavailable(other.into()),
        }
    }
}

/// "cannot reach PostgreSQL at 127.0.0.1:1: connection refused": where, and the root
/// cause in plain words (no pool or driver wrapping).
pub(crate) fn unreachable(url: &str, e: &(dyn std::error::Error + 'static)) -> anyhow::Error {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    let cause = cause.split(" (os error").next().unwrap_or(&cause).to_lowercase();
    let place = url
        .parse::<tokio_postgres::Config>()
        .ok()
        .map(|c| {
            let host = match c.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
                None => "localhost".into(),
            };
            format!("{host}:{}", c.get_ports().first().copied().unwrap_or(5432))
        })
        .unwrap_or_else(|| "the configured address".into());
    anyhow::anyhow!("cannot reach PostgreSQL at {place}: {cause}")
}

fn to_millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Deadlocks, serialization failures and races with another instance are worth another
/// try (planned again, the batch sees what the other instance stored).
fn retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(source) => {
            source.downcast_ref::<tokio_postgres::Error>().and_then(|e| e.code()).is_some_and(|c| {
                *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::T_R_SERIALIZATION_FAILURE
                    // An identity linked by another instance meanwhile.
                    || *c == SqlState::UNIQUE_VIOLATION
                    // An event another instance stored meanwhile (its dedupe key).
                    || *c == SqlState::EXCLUSION_VIOLATION
            }) || source.downcast_ref::<plan_io::Raced>().is_some()
        }
        _ => false,
    }
}

impl PgStore {
    pub async fn open(
        url: &str,
        rules: Arc<crate::live_rules::LiveRules>,
        clock: Clock,
        settings: PgSettings,
    ) -> anyhow::Result<PgStore> {
        let mut config: tokio_postgres::Config = url.parse().context("not a valid postgres:// URL")?;
        config.options(format!("-c statement_timeout={}", settings.statement_timeout.as_millis()));
        config.connect_timeout(Duration::from_secs(5));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(2))
            .wait_timeout(Some(settings.pool_wait))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(Runtime::Tokio1)
            .build()
            .context("building the PostgreSQL pool")?;
        let (tx, rx) = tokio::sync::mpsc::channel(settings.queue_capacity.max(1));
        let store = PgStore {
            url: url.to_owned(),
            pool,
            rules,
            clock,
            default_segment: settings.default_segment,
            pressure: settings.pressure,
            brevo_sync: settings.brevo_sync,
            jobs_ready: Arc::new(crate::store::jobs_ready::JobsReady::default()),
            queue: Arc::new(std::sync::Mutex::new(Some(tx))),
            batchers: Arc::new(std::sync::Mutex::new(Vec::new())),
            finishes: Arc::default(),
            counts: Arc::default(),
        };
        store.migrate().await?;
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let tasks: Vec<_> = (0..batch::WORKERS).map(|_| tokio::spawn(store.clone().batch_loop(rx.clone()))).collect();
        if let Ok(mut b) = store.batchers.lock() {
            *b = tasks;
        }
        Ok(store)
    }

    /// Runs pending migrations; instances starting together wait on the advisory lock.
    async fn migrate(&self) -> anyhow::Result<()> {
        let mut client = self.pool.get().await.map_err(|e| unreachable(&self.url, &e))?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS relance_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let current: i32 = tx.query_one("SELECT COALESCE(max(version), 0) FROM relance_migrations", &[]).await?.get(0);
        anyhow::ensure!(
            current as usize <= MIGRATIONS.len(),
            "the database schema (version {current}) is newer than this binary knows ({})",
            MIGRATIONS.len()
        );
        for (i, (_, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql).await.with_context(|| format!("migration {}", i + 1))?;
            tx.execute(
                "INSERT INTO relance_migrations (version, applied_at) VALUES ($1, $2)",
                &[&((i + 1) as i32), &to_millis(Utc::now())],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        Ok(self.pool.get().await?)
    }
}

pub(crate) async fn find_contact_id<C: GenericClient>(
    c: &C,
    key: &ContactKey,
    lock: bool,
) -> Result<Option<i64>, StoreError> {
    let (sql, value) = match (key, lock) {
        (ContactKey::Email(e), false) => ("SELECT id FROM contacts WHERE email = $1", e.as_str()),
        (ContactKey::Email(e), true) => ("SELECT id FROM contacts WHERE email = $1 FOR UPDATE", e.as_str()),
        (ContactKey::ClientCode(k), false) => ("SELECT id FROM contacts WHERE client_code = $1", k.as_str()),
        (ContactKey::ClientCode(k), true) => ("SELECT id FROM contacts WHERE client_code = $1 FOR UPDATE", k.as_str()),
    };
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, &[&value]).await?.map(|r| r.get(0)))
}

/// A contact's stored JSON (`contacts.data`), read back.
pub(crate) fn parse_contact(id: i64, data: &str) -> Result<Contact, StoreError> {
    serde_json::from_str(data)
        .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e).context(format!("contact {id} is unreadable"))))
}

pub(crate) async fn load_contact<C: GenericClient>(c: &C, id: i64) -> Result<StoredContact, StoreError> {
    let stmt = c.prepare_cached("SELECT data, created_at, updated_at, version FROM contacts WHERE id = $1").await?;
    let row = c.query_one(&stmt, &[&id]).await?;
    let contact = parse_contact(id, row.get(0))?;
    Ok(StoredContact {
        id,
        contact,
        created_at: from_millis(row.get(1)),
        updated_at: from_millis(row.get(2)),
        version: row.get(3),
    })
}

impl PgStore {
    /// Creates or updates contacts in one transaction, planned before anything is
    /// written; tried again when another instance created one of them meanwhile. The
    /// inner `Err` is the refused row (by index).
    async fn upsert_many(
        &self,
        rows: &[(ContactKey, ContactUpdate)],
        skip_conflicts: bool,
        audit_of: &AuditOf<'_>,
    ) -> Result<Result<Vec<UpsertDone>, (usize, StoreError)>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upsert_once(rows, skip_conflicts, audit_of).await {
                Err(e) if attempt < 3 && retryable(&e) => continue,
                other => return other,
            }
        }
    }

    async fn upsert_once(
        &self,
        rows: &[(ContactKey, ContactUpdate)],
        skip_conflicts: bool,
        audit_of: &AuditOf<'_>,
    ) -> Result<Result<Vec<UpsertDone>, (usize, StoreError)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let rules = self.rules.current();
        let mut new_id = || uuid::Uuid::now_v7().to_string();
        let mut planner = Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
        planner.set_sync(self.brevo_sync.clone());
        let (emails, codes) = keys_to_load(rows.iter().map(|(k, u)| (k, u)));
        let emails = emails.iter().map(Email::as_str).collect();
        let codes = codes.iter().map(ClientCode::as_str).collect();
        plan_io::load_identities(&tx, &mut planner, emails, codes).await?;
        let mut planned = Vec::with_capacity(rows.len());
        for (i, (key, update)) in rows.iter().enumerate() {
            match planner.upsert(&key.identity(), update.clone(), now) {
                Ok(done) => planned.push(Ok(done)),
                Err(PlanError::Conflict(m)) if skip_conflicts => planned.push(Err(m)),
                Err(e) => return Ok(Err((i, e.into()))),
            }
        }
        let plan = planner.finish();
        let ids = plan_io::write_plan(&tx, &plan, &[]).await?;
        let done: Vec<UpsertDone> = planned
            .into_iter()
            .map(|r| r.map(|(slot, created)| (stored_contact(&plan, slot, &ids), created)))
            .collect();
        access::write_audit(&tx, &audit_of(&done), None, now).await?;
        tx.commit().await?;
        Ok(Ok(done))
    }
}

/// One contact upserted (`true`: created), or why it was skipped.
type UpsertDone = Result<(StoredContact, bool), String>;
/// The audit entry of an upsert, once its outcome is known (inside the transaction).
type AuditOf<'a> = dyn Fn(&[UpsertDone]) -> super::audit::Audit + Sync + 'a;

/// The event of a row read as `event, …, source, name, trigger, occurred_at`: `json` is
/// the index of the `event` column, `columns` that of `source` (the other three follow).
/// `None` when the row is absent (a LEFT JOIN) or unreadable.
pub(crate) fn stored_event_of(r: &tokio_postgres::Row, json: usize, columns: usize) -> Option<relance_core::Event> {
    let text: &str = r.get::<_, Option<&str>>(json)?;
    let columns = stored_event::EventColumns {
        source: r.get(columns),
        name: r.get(columns + 1),
        trigger: r.get(columns + 2),
        occurred_at: from_millis(r.get(columns + 3)),
    };
    stored_event::from_stored(text, columns)
        .inspect_err(|e| tracing::warn!(error = %e, "a stored event is unreadable"))
        .ok()
}

fn event_row(r: &tokio_postgres::Row) -> EventRow {
    let event = json_text(r.get::<_, &str>(3));
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
    let raw = stored_event::raw_of(
        r.get(12),
        &stored_event::RawColumns {
            source: r.get(7),
            name: r.get(6),
            email: r.get(9),
            client_code: r.get(10),
            sender_event_id: r.get(11),
        },
        &event,
    );
    EventRow {
        seq: r.get(0),
        id: r.get(1),
        dedupe_key: r.get(2),
        timestamp: from_millis(r.get(4)),
        received_at: from_millis(r.get(5)),
        event_type: r.get(6),
        source: r.get(7),
        trigger: r.get(8),
        email: r.get(9),
        client_code: r.get(10),
        event_id: r.get(11),
        raw,
        message_id: text("message_id"),
        link: text("link"),
    }
}
