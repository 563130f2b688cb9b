//! PostgreSQL, for several instances sharing one database.
//!
//! Ingest is batched per instance (`batch.rs`): the requests queued while a transaction
//! runs go into the next one, which locks the contacts they name in id order (a stable
//! order across instances: they wait for each other instead of deadlocking or losing an
//! update) and inserts an event (dedupe key unique) only after its contact is locked, so
//! the events of one contact are numbered in commit order. Jobs are claimed with
//! `FOR UPDATE SKIP LOCKED` and a lease. Migrations run under an advisory lock.

mod batch;
mod jobs;
mod plan_io;
mod rejected;
mod rule_sets;

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
    ImportRow, IngestResult, NewRuleSet, RuleSetRow, Store, StoreError, StoredContact, keys_to_load, stored_contact,
};

const MIGRATIONS: &[&str] = &[
    include_str!("001_initial.sql"),
    include_str!("002_rule_sets.sql"),
    include_str!("003_dashboard.sql"),
    include_str!("004_rejected.sql"),
    include_str!("005_rule_origins.sql"),
];
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
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            default_segment: relance_core::contact::DEFAULT_SEGMENT.to_owned(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            pool_wait: Duration::from_secs(2),
            queue_capacity: 4096,
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
    jobs_ready: Arc<tokio::sync::Notify>,
    /// The ingest queue; taken (closed) at shutdown so that the batch task drains and ends.
    queue: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Sender<batch::IngestJob>>>>,
    batchers: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
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
            jobs_ready: Arc::new(tokio::sync::Notify::new()),
            queue: Arc::new(std::sync::Mutex::new(Some(tx))),
            batchers: Arc::new(std::sync::Mutex::new(Vec::new())),
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
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
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

pub(crate) async fn load_contact<C: GenericClient>(c: &C, id: i64) -> Result<StoredContact, StoreError> {
    let stmt = c.prepare_cached("SELECT data, created_at, updated_at, version FROM contacts WHERE id = $1").await?;
    let row = c.query_one(&stmt, &[&id]).await?;
    let data: String = row.get(0);
    let contact: Contact = serde_json::from_str(&data)
        .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e).context(format!("contact {id} is unreadable"))))?;
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
    ) -> Result<Result<Vec<Result<(StoredContact, bool), String>>, (usize, StoreError)>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.upsert_once(rows, skip_conflicts).await {
                Err(e) if attempt < 3 && retryable(&e) => continue,
                other => return other,
            }
        }
    }

    async fn upsert_once(
        &self,
        rows: &[(ContactKey, ContactUpdate)],
        skip_conflicts: bool,
    ) -> Result<Result<Vec<Result<(StoredContact, bool), String>>, (usize, StoreError)>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let rules = self.rules.current();
        let mut new_id = || uuid::Uuid::now_v7().to_string();
        let mut planner = Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
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
        tx.commit().await?;
        Ok(Ok(planned
            .into_iter()
            .map(|r| r.map(|(slot, created)| (stored_contact(&plan, slot, &ids), created)))
            .collect()))
    }
}

fn event_row(r: &tokio_postgres::Row) -> EventRow {
    let event = json_text(r.get::<_, &str>(3));
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(str::to_owned);
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
        raw: json_text(r.get::<_, &str>(12)),
        message_id: text("message_id"),
        link: text("link"),
    }
}

impl Store for PgStore {
    async fn ingest(&self, events: Vec<InboundEvent>) -> Result<Vec<IngestResult>, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        {
            let queue = self.queue.lock().map_err(|_| StoreError::Overloaded)?;
            let Some(queue) = queue.as_ref() else {
                return Err(StoreError::Unavailable(anyhow::anyhow!("shutting down")));
            };
            queue.try_send(batch::IngestJob { events, reply }).map_err(|e| match e {
                tokio::sync::mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable(anyhow::anyhow!("the ingest task stopped"))
                }
            })?;
        }
        answer.await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the ingest task dropped the request")))?
    }

    async fn upsert_contact(&self, key: ContactKey, u: ContactUpdate) -> Result<(StoredContact, bool), StoreError> {
        u.validate()?;
        match self.upsert_many(&[(key, u)], false).await?.map(|mut r| r.pop()) {
            Ok(Some(Ok(done))) => Ok(done),
            Ok(_) => Err(StoreError::Unavailable(anyhow::anyhow!("internal: an upsert without its row"))),
            Err((_, refused)) => Err(refused),
        }
    }

    async fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let pairs: Vec<_> = rows.iter().map(|r| (r.key.clone(), r.update.clone())).collect();
        let done = match self.upsert_many(&pairs, skip_invalid).await? {
            Ok(done) => done,
            Err((i, StoreError::Conflict(m))) => {
                return Err(StoreError::Conflict(format!("line {}: {m}", rows[i].line)));
            }
            Err((_, refused)) => return Err(refused),
        };
        Ok(rows
            .iter()
            .zip(done)
            .map(|(row, d)| match d {
                Ok((_, created)) => ImportOutcome { line: row.line, created, rejected: None },
                Err(m) => ImportOutcome { line: row.line, created: false, rejected: Some(m) },
            })
            .collect())
    }

    async fn contact(&self, key: ContactKey) -> Result<Option<StoredContact>, StoreError> {
        let client = self.client().await?;
        match find_contact_id(&client, &key, false).await? {
            Some(id) => load_contact(&client, id).await.map(Some),
            None => Ok(None),
        }
    }

    async fn history(&self, key: ContactKey, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        let client = self.client().await?;
        let id = find_contact_id(&client, &key, false).await?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
        let stmt = client
            .prepare_cached(
                "SELECT at, event_id, rule_id, action_type, field, before, after FROM (
                     SELECT id, at, event_id, rule_id, action_type, field, before, after FROM history
                     WHERE contact_id = $1 ORDER BY id DESC LIMIT $2
                 ) AS newest ORDER BY id",
            )
            .await?;
        let rows = client.query(&stmt, &[&id, &(limit as i64)]).await?;
        Ok(rows
            .iter()
            .map(|r| HistoryRow {
                at: from_millis(r.get(0)),
                event_id: r.get(1),
                rule_id: r.get(2),
                action_type: r.get(3),
                field: r.get(4),
                before: json_text(r.get::<_, &str>(5)),
                after: json_text(r.get::<_, &str>(6)),
            })
            .collect())
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        let client = self.client().await?;
        let contact_id = match &query.contact {
            Some(key) => match find_contact_id(&client, key, false).await? {
                Some(id) => Some(id),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        // One statement per shape: `($1 IS NULL OR contact_id = $1)` and a computed ORDER BY
        // would keep the planner from the contact index and from the primary key's order.
        let by_contact = if contact_id.is_some() { "contact_id = $1" } else { "$1::BIGINT IS NULL" };
        let order = if query.newest { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT id, public_id, dedupe_key, event, occurred_at, received_at, name, source, trigger,
                    email, client_code, sender_event_id, raw
             FROM events
             WHERE {by_contact} AND ($2::BIGINT IS NULL OR received_at >= $2) AND id > $3
             ORDER BY id {order} LIMIT $4"
        );
        let stmt = client.prepare_cached(&sql).await?;
        let rows = client
            .query(
                &stmt,
                &[&contact_id, &query.since.map(to_millis), &query.after_seq.unwrap_or(0), &(query.limit as i64)],
            )
            .await?;
        let mut rows: Vec<EventRow> = rows.iter().map(event_row).collect();
        if query.newest {
            rows.reverse();
        }
        Ok(rows)
    }

    async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT hour, kind, name, count FROM hourly_counts WHERE hour >= $1 ORDER BY hour, kind, name",
            )
            .await?;
        let rows = client.query(&stmt, &[&(to_millis(since).div_euclid(HOUR_MS) * HOUR_MS)]).await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let kind: String = r.get(1);
                Some(HourlyCount { hour: r.get(0), kind: CounterKind::parse(&kind)?, name: r.get(2), count: r.get(3) })
            })
            .collect())
    }

    async fn contact_distribution(&self) -> Result<ContactDistribution, StoreError> {
        let client = self.client().await?;
        let mut d = ContactDistribution::default();
        let stmt = client.prepare_cached("SELECT score, count(*) FROM contacts GROUP BY score").await?;
        for r in client.query(&stmt, &[]).await? {
            let (score, n): (i32, i64) = (r.get(0), r.get(1));
            d.add_score(i64::from(score), n);
            d.total += n;
        }
        let stmt = client
            .prepare_cached(
                "SELECT segment, count(*) AS n FROM contacts GROUP BY segment ORDER BY n DESC, segment LIMIT 50",
            )
            .await?;
        d.segments = client.query(&stmt, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(d)
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, public_id, dedupe_key, event, occurred_at, received_at, name, source, trigger,
                        email, client_code, sender_event_id, raw
                 FROM events ORDER BY id DESC LIMIT $1",
            )
            .await?;
        Ok(client.query(&stmt, &[&(limit as i64)]).await?.iter().map(event_row).collect())
    }

    async fn claim_jobs(&self, req: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        jobs::claim(self, &req).await
    }

    async fn finish_job(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        let client = self.client().await?;
        jobs::finish(&client, &id, &finish, (self.clock)()).await
    }

    async fn run_internal_job(&self, id: String) -> Result<bool, StoreError> {
        jobs::run_internal(self, &id).await
    }

    async fn next_due(&self, action_types: Vec<ActionType>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        jobs::next_due(&client, &action_types).await
    }

    async fn jobs(&self, filter: JobFilter, contact: Option<ContactKey>) -> Result<Vec<JobRow>, StoreError> {
        let client = self.client().await?;
        let mut filter = filter;
        if let Some(key) = &contact {
            match find_contact_id(&client, key, false).await? {
                Some(id) => filter.contact_id = Some(id),
                None => return Ok(Vec::new()),
            }
        }
        jobs::list(&client, &filter).await
    }

    async fn job(&self, id: String) -> Result<Option<(JobRow, Vec<Attempt>)>, StoreError> {
        let client = self.client().await?;
        jobs::get(&client, &id).await
    }

    async fn cancel_job(&self, id: String) -> Result<(), StoreError> {
        let client = self.client().await?;
        jobs::cancel(&client, &id, (self.clock)()).await
    }

    async fn retry_job(&self, id: String) -> Result<(), StoreError> {
        let client = self.client().await?;
        jobs::retry(&client, &id, (self.clock)()).await?;
        self.jobs_ready.notify_one();
        Ok(())
    }

    async fn finish_external(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        jobs::check_running(&tx, &id).await?;
        let moved = jobs::finish(&tx, &id, &finish, (self.clock)()).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn job_stats(&self) -> Result<Vec<JobCount>, StoreError> {
        let client = self.client().await?;
        jobs::stats(&client).await
    }

    async fn record_rejected(&self, items: Vec<crate::store::rejected::NewRejected>) -> Result<(), StoreError> {
        let client = self.client().await?;
        rejected::record(&client, &items, (self.clock)()).await
    }

    async fn rejected_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::store::rejected::RejectedDelivery>, StoreError> {
        let client = self.client().await?;
        rejected::newest(&client, limit).await
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let client = self.client().await?;
        jobs::outbox(&client, limit).await
    }

    async fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let now = to_millis((self.clock)());
        let occ = to_millis(occurrence);
        let stmt = client
            .prepare_cached(
                "INSERT INTO schedule_runs (rule_id, occurrence_at, started_at) VALUES ($1, $2, $3)
                 ON CONFLICT (rule_id, occurrence_at) DO NOTHING",
            )
            .await?;
        if client.execute(&stmt, &[&rule_id, &occ, &now]).await? == 1 {
            return Ok(true);
        }
        let stale = now - stale_after.as_millis() as i64;
        let stmt = client
            .prepare_cached(
                "UPDATE schedule_runs SET started_at = $3
                 WHERE rule_id = $1 AND occurrence_at = $2 AND finished_at IS NULL AND started_at < $4",
            )
            .await?;
        Ok(client.execute(&stmt, &[&rule_id, &occ, &now, &stale]).await? == 1)
    }

    async fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE schedule_runs SET finished_at = $3, contacts = $4 WHERE rule_id = $1 AND occurrence_at = $2",
            )
            .await?;
        client
            .execute(&stmt, &[&rule_id, &to_millis(occurrence), &to_millis((self.clock)()), &(contacts as i64)])
            .await?;
        Ok(())
    }

    async fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, contact_id, event, received_at FROM events
                 WHERE contact_id IS NOT NULL AND id > $1 AND ($2::INT8 IS NULL OR received_at >= $2)
                 ORDER BY id LIMIT $3",
            )
            .await?;
        let rows = client.query(&stmt, &[&after_seq, &since.map(to_millis), &(limit as i64)]).await?;
        rows.iter()
            .map(|r| {
                let event = serde_json::from_str(r.get::<_, &str>(2)).map_err(|e| StoreError::Unavailable(e.into()))?;
                Ok((
                    r.get::<_, i64>(0),
                    relance_core::backtest::ReplayEvent { contact_id: r.get(1), event, at: from_millis(r.get(3)) },
                ))
            })
            .collect()
    }

    async fn active_rule_set(&self) -> Result<Option<RuleSetRow>, StoreError> {
        rule_sets::active(&self.client().await?).await
    }

    async fn save_rule_set(&self, new: NewRuleSet) -> Result<RuleSetRow, StoreError> {
        rule_sets::save(&mut self.client().await?, &new, (self.clock)()).await
    }

    async fn activate_rule_set(&self, version: i64, via: String) -> Result<RuleSetRow, StoreError> {
        rule_sets::activate(&mut self.client().await?, version, &via).await
    }

    async fn rule_set_versions(&self) -> Result<Vec<RuleSetRow>, StoreError> {
        rule_sets::versions(&self.client().await?).await
    }

    async fn rules_file_hash(&self, path: String) -> Result<Option<String>, StoreError> {
        rule_sets::file_hash(&self.client().await?, &path).await
    }

    async fn record_rules_file(&self, path: String, hash: String, version: i64) -> Result<(), StoreError> {
        rule_sets::record_file(&self.client().await?, &path, &hash, version, (self.clock)()).await
    }

    async fn erase_contact(&self, key: ContactKey) -> Result<ErasureReport, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = to_millis((self.clock)());
        let id = find_contact_id(&tx, &key, true).await?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
        let stored = load_contact(&tx, id).await?;
        let tombstone = serde_json::to_string(&super::erased_contact(&stored.contact))
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        tx.execute(
            "UPDATE contacts SET email = NULL, client_code = NULL, data = $1, updated_at = $2, version = version + 1 WHERE id = $3",
            &[&tombstone, &now, &id],
        )
        .await?;
        let events = tx
            .execute(
                "UPDATE events SET email = NULL, client_code = NULL, sender_event_id = NULL, raw = '{\"erased\":true}',
                        event = (jsonb_set(event::jsonb - 'link' - 'message_id', '{attributes}', '{}'::jsonb))::text
                 WHERE contact_id = $1",
                &[&id],
            )
            .await?;
        let jobs = tx
            .execute(
                "UPDATE jobs SET state = 'cancelled', last_error = 'cancelled: the contact was erased', updated_at = $1
                 WHERE contact_id = $2 AND state IN ('pending', 'failed', 'running')",
                &[&now, &id],
            )
            .await?;
        let outbox = tx
            .execute(
                "UPDATE outbox SET payload = '{\"erased\":true}' WHERE job_id IN (SELECT id FROM jobs WHERE contact_id = $1)",
                &[&id],
            )
            .await?;
        tx.commit().await?;
        Ok(ErasureReport { events_anonymised: events, jobs_cancelled: jobs, outbox_records_erased: outbox })
    }

    async fn list_contacts(&self, f: ContactFilter) -> Result<Vec<StoredContact>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, data, created_at, updated_at, version FROM contacts
                 WHERE id > $1 AND ($2::TEXT IS NULL OR segment = $2) AND ($3::INT4 IS NULL OR score >= $3)
                   AND ($4::INT4 IS NULL OR score <= $4) AND ($5::INT8 IS NULL OR updated_at >= $5)
                   AND ($6::TEXT IS NULL OR (data::jsonb -> 'tags') ? $6)
                   AND ($8::TEXT IS NULL OR starts_with(email, lower($8)) OR starts_with(client_code, $8))
                 ORDER BY id LIMIT $7",
            )
            .await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &f.after_id,
                    &f.segment,
                    &f.score_min.map(i32::from),
                    &f.score_max.map(i32::from),
                    &f.updated_since.map(to_millis),
                    &f.tag,
                    &(f.limit as i64),
                    &f.search,
                ],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let contact: Contact = serde_json::from_str(r.get::<_, &str>(1))
                    .map_err(|e| StoreError::Unavailable(anyhow::Error::new(e)))?;
                Ok(StoredContact {
                    id: r.get(0),
                    contact,
                    created_at: from_millis(r.get(2)),
                    updated_at: from_millis(r.get(3)),
                    version: r.get(4),
                })
            })
            .collect()
    }

    fn jobs_ready(&self) -> Arc<tokio::sync::Notify> {
        self.jobs_ready.clone()
    }

    fn queue_depth(&self) -> usize {
        self.queue.lock().ok().and_then(|q| q.as_ref().map(|q| q.max_capacity() - q.capacity())).unwrap_or(0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn shutdown(&self) {
        // Close the queue, let the batch task finish what it holds, then the pool.
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        let tasks = self.batchers.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.pool.close();
    }
}
