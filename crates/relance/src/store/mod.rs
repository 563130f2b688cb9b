//! Storage: one trait, chosen once from the database URL. The SQLite implementation is
//! the embedded default; each implementation owns its migrations.

pub mod dashboard;
pub mod jobs;
pub mod peek;
pub mod postgres;
pub mod rejected;
pub mod sqlite;

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use relance_core::{ClientCode, Contact, Email, InboundEvent};
use serde::Serialize;
use serde_json::Value;

/// Where "now" comes from; tests pass a controlled clock.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// How a contact is addressed in the API and CLI: an email or a client code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactKey {
    Email(Email),
    ClientCode(ClientCode),
}

impl ContactKey {
    /// `contact CL001`, for "not found" answers.
    pub fn describe(&self) -> String {
        match self {
            ContactKey::Email(e) => format!("contact {}", e.as_str()),
            ContactKey::ClientCode(c) => format!("contact {}", c.as_str()),
        }
    }

    /// The key as the identity the planner looks contacts up by.
    pub fn identity(&self) -> relance_core::inbound::Identity {
        match self {
            ContactKey::Email(e) => relance_core::inbound::Identity { email: Some(e.clone()), client_code: None },
            ContactKey::ClientCode(c) => relance_core::inbound::Identity { email: None, client_code: Some(c.clone()) },
        }
    }

    /// Anything with an `@` is an email; the rest is a client code.
    pub fn parse(raw: &str) -> Result<ContactKey, StoreError> {
        if raw.contains('@') {
            Email::parse(raw).map(ContactKey::Email).map_err(|e| StoreError::invalid("key", e.to_string()))
        } else {
            ClientCode::parse(raw)
                .map(ContactKey::ClientCode)
                .map_err(|e| StoreError::invalid("key", format!("client code {e}")))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ingest queue is full: the caller should retry shortly.
    #[error("the ingest queue is full")]
    Overloaded,
    /// The database cannot take the write now (locked, disk full, read-only, down).
    #[error("storage unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// Names what was not found: `contact CL001`, `action 01a2…`, `rule-set version 9`.
    #[error("no {0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    pub fn invalid(field: &str, message: impl Into<String>) -> StoreError {
        StoreError::Invalid { field: field.to_owned(), message: message.into() }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Unavailable(e.into())
    }
}

/// A contact with its storage identity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredContact {
    #[serde(skip)]
    pub id: i64,
    #[serde(flatten)]
    pub contact: Contact,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i64,
}

/// What storing one event did, and each fired action with its job: the planner's answer.
pub use relance_core::plan::{ActionRecord, Answer as IngestResult};

/// A planned contact as stored, once the plan is written with these ids.
pub(crate) fn stored_contact(
    plan: &relance_core::plan::WritePlan,
    slot: relance_core::plan::Slot,
    ids: &[i64],
) -> StoredContact {
    let p = &plan.contacts[slot.0];
    StoredContact {
        id: ids[slot.0],
        contact: p.contact.clone(),
        created_at: p.created_at,
        updated_at: p.updated_at,
        version: p.version,
    }
}

/// The identities an upsert or import needs loaded: each row's key and the email and
/// client code it sets (which must not belong to another contact).
pub(crate) fn keys_to_load<'a>(
    rows: impl Iterator<Item = (&'a ContactKey, &'a ContactUpdate)>,
) -> (Vec<Email>, Vec<ClientCode>) {
    let (mut emails, mut codes) = (Vec::new(), Vec::new());
    for (key, u) in rows {
        match key {
            ContactKey::Email(e) => emails.push(e.clone()),
            ContactKey::ClientCode(c) => codes.push(c.clone()),
        }
        emails.extend(u.email.clone());
        codes.extend(u.client_code.clone());
    }
    emails.sort_unstable();
    emails.dedup();
    codes.sort_unstable();
    codes.dedup();
    (emails, codes)
}

/// Engine warnings of a stored plan, logged with the contact they concern.
pub(crate) fn log_plan_warnings(plan: &relance_core::plan::WritePlan, ids: &[i64]) {
    for (slot, w) in &plan.warnings {
        tracing::warn!(contact_id = ids.get(slot.0).copied().unwrap_or_default(), "{w}");
    }
}

/// The planner's refusal, as a storage answer naming the field.
impl From<relance_core::plan::PlanError> for StoreError {
    fn from(e: relance_core::plan::PlanError) -> Self {
        match e {
            relance_core::plan::PlanError::NoIdentity(_) => StoreError::invalid("email", e.to_string()),
            relance_core::plan::PlanError::UnknownContact(id) => StoreError::NotFound(format!("contact {id}")),
            relance_core::plan::PlanError::Conflict(m) => StoreError::Conflict(m),
        }
    }
}

pub use relance_core::contact_update::ContactUpdate;

impl From<relance_core::contact_update::InvalidField> for StoreError {
    fn from(e: relance_core::contact_update::InvalidField) -> Self {
        StoreError::Invalid { field: e.field.to_owned(), message: e.message.to_owned() }
    }
}

/// One row of a contact's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryRow {
    pub at: DateTime<Utc>,
    pub event_id: Option<String>,
    pub rule_id: Option<String>,
    pub action_type: Option<String>,
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// A stored event, with the seed's log fields and ours.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRow {
    /// Commit order.
    #[serde(skip)]
    pub seq: i64,
    pub timestamp: DateTime<Utc>,
    pub event_type: String,
    pub email: Option<String>,
    pub message_id: Option<String>,
    pub link: Option<String>,
    pub source: String,
    pub id: String,
    pub event_id: Option<String>,
    pub client_code: Option<String>,
    pub trigger: Option<String>,
    pub dedupe_key: Option<String>,
    pub received_at: DateTime<Utc>,
    pub raw: Value,
}

/// A stored version of the rule set.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleSetRow {
    pub version: i64,
    pub hash: String,
    /// The rules in the seed's JSON export format.
    #[serde(skip)]
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub active: bool,
    /// Where this version came from: `file:/etc/relance/rules.toml`, `api`, `dashboard`,
    /// `cli`, `defaults` (`unknown` for versions stored before this was recorded).
    pub source: String,
    /// How it last became the active version (its `source`, or `api`/`dashboard` for a rollback).
    pub activated_via: String,
    /// The version a rules-file import replaced although it had been activated from the
    /// dashboard or the API (the rules page offers to roll back to it).
    pub replaced_version: Option<i64>,
    /// When it last became active, as a number that only grows (rollbacks included).
    #[serde(skip)]
    pub activated_seq: i64,
}

impl RuleSetRow {
    /// Whether a person chose this version (through the dashboard or the API), as
    /// opposed to a rules file or the defaults.
    pub fn chosen_by_a_person(&self) -> bool {
        matches!(self.activated_via.as_str(), "api" | "dashboard" | "cli")
    }
}

/// A rule set to store as the new active version.
#[derive(Debug, Clone)]
pub struct NewRuleSet {
    /// The rules in the seed's JSON export format.
    pub body: String,
    pub hash: String,
    /// See [`RuleSetRow::source`].
    pub source: String,
    pub replaced_version: Option<i64>,
}

/// One CSV row to import, already validated.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: usize,
    pub key: ContactKey,
    pub update: ContactUpdate,
}

/// What happened to one imported row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportOutcome {
    pub line: usize,
    pub created: bool,
    pub rejected: Option<String>,
}

/// What erasing a contact did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasureReport {
    pub events_anonymised: u64,
    pub jobs_cancelled: u64,
    pub outbox_records_erased: u64,
}

/// The contact left in place of an erased one: no identity, no personal data; kept so
/// that its events and jobs still count in aggregates.
pub fn erased_contact(c: &Contact) -> Contact {
    Contact {
        segment: c.segment.clone(),
        score: c.score,
        purchases: c.purchases,
        total_spent: c.total_spent,
        unsubscribed: true,
        attributes: serde_json::Map::from_iter([("erased".to_owned(), Value::Bool(true))]),
        ..Contact::default()
    }
}

/// Filters for listing contacts; results come in id order, after `after_id`.
#[derive(Debug, Clone, Default)]
pub struct ContactFilter {
    pub segment: Option<String>,
    pub tag: Option<String>,
    pub score_min: Option<u8>,
    pub score_max: Option<u8>,
    pub updated_since: Option<DateTime<Utc>>,
    /// Email or client code starting with this text.
    pub search: Option<String>,
    pub after_id: i64,
    pub limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub contact: Option<ContactKey>,
    /// Events received at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events after this commit sequence (for paging through everything).
    pub after_seq: Option<i64>,
    /// The newest `limit` events (still answered oldest first) instead of the oldest.
    pub newest: bool,
    pub limit: usize,
}

/// The storage contract both backends keep.
pub trait Store: Send + Sync + 'static {
    /// Stores a delivery (one or several events) atomically with its effects: events,
    /// contact changes, history rows and jobs commit together before this returns.
    fn ingest(&self, events: Vec<InboundEvent>) -> impl Future<Output = Result<Vec<IngestResult>, StoreError>> + Send;

    /// Creates or updates a contact; `true` when created.
    fn upsert_contact(
        &self,
        key: ContactKey,
        update: ContactUpdate,
    ) -> impl Future<Output = Result<(StoredContact, bool), StoreError>> + Send;

    fn contact(&self, key: ContactKey) -> impl Future<Output = Result<Option<StoredContact>, StoreError>> + Send;

    /// A contact's newest `limit` changes, oldest first.
    fn history(
        &self,
        key: ContactKey,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<HistoryRow>, StoreError>> + Send;

    fn events(&self, query: EventQuery) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// Leases due jobs of the given action types.
    fn claim_jobs(
        &self,
        req: jobs::ClaimRequest,
    ) -> impl Future<Output = Result<Vec<jobs::ClaimedJob>, StoreError>> + Send;

    /// Records an attempt and the job's next state; `false` if the job was no longer running.
    fn finish_job(&self, id: String, finish: jobs::JobFinish) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Applies a claimed delayed internal action, with its effects, in one transaction.
    fn run_internal_job(&self, id: String) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// When the next job of these types is due (or a lease expires).
    fn next_due(
        &self,
        action_types: Vec<relance_core::ActionType>,
    ) -> impl Future<Output = Result<Option<DateTime<Utc>>, StoreError>> + Send;

    fn jobs(
        &self,
        filter: jobs::JobFilter,
        contact: Option<ContactKey>,
    ) -> impl Future<Output = Result<Vec<jobs::JobRow>, StoreError>> + Send;

    fn job(
        &self,
        id: String,
    ) -> impl Future<Output = Result<Option<(jobs::JobRow, Vec<jobs::Attempt>)>, StoreError>> + Send;

    fn cancel_job(&self, id: String) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn retry_job(&self, id: String) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// An external worker ends a job it claimed.
    fn finish_external(
        &self,
        id: String,
        finish: jobs::JobFinish,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn job_stats(&self) -> impl Future<Output = Result<Vec<jobs::JobCount>, StoreError>> + Send;

    fn outbox(&self, limit: usize) -> impl Future<Output = Result<Vec<jobs::OutboxRow>, StoreError>> + Send;

    /// Takes an occurrence of a time-based rule; `false` if another run has it (or had it).
    fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stored events for a backtest, in commit order, after `after_seq`.
    fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError>> + Send;

    /// The active rule set, if any was ever stored.
    fn active_rule_set(&self) -> impl Future<Output = Result<Option<RuleSetRow>, StoreError>> + Send;

    /// Stores a rule set as a new version and makes it the active one.
    fn save_rule_set(&self, new: NewRuleSet) -> impl Future<Output = Result<RuleSetRow, StoreError>> + Send;

    /// Makes an earlier version active again (rollback), recording how (`api`, `dashboard`…).
    fn activate_rule_set(
        &self,
        version: i64,
        via: String,
    ) -> impl Future<Output = Result<RuleSetRow, StoreError>> + Send;

    /// The hash of the rules last imported from this rules-file path.
    fn rules_file_hash(&self, path: String) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Records that the rules file at `path` (with this hash) is now version `version`.
    fn record_rules_file(
        &self,
        path: String,
        hash: String,
        version: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every version, newest first.
    fn rule_set_versions(&self) -> impl Future<Output = Result<Vec<RuleSetRow>, StoreError>> + Send;

    /// Creates or updates many contacts in one transaction: all or nothing, unless
    /// `skip_invalid`, when a row that conflicts is reported and the others go in.
    fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
    ) -> impl Future<Output = Result<Vec<ImportOutcome>, StoreError>> + Send;

    /// GDPR erasure: the contact becomes an anonymous tombstone, its events lose their
    /// identity and payload, its pending jobs are cancelled, its outbox records erased.
    fn erase_contact(&self, key: ContactKey) -> impl Future<Output = Result<ErasureReport, StoreError>> + Send;

    /// Contacts matching a filter, in id order.
    fn list_contacts(
        &self,
        filter: ContactFilter,
    ) -> impl Future<Output = Result<Vec<StoredContact>, StoreError>> + Send;

    /// The dashboard's hourly counters from `since` on.
    fn hourly_counts(
        &self,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<dashboard::HourlyCount>, StoreError>> + Send;

    /// Score histogram and contacts per segment.
    fn contact_distribution(&self) -> impl Future<Output = Result<dashboard::ContactDistribution, StoreError>> + Send;

    /// The latest stored events, newest first.
    fn recent_events(&self, limit: usize) -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// Keeps delivery items that could not be stored as events (a redelivered item counts up).
    fn record_rejected(&self, items: Vec<rejected::NewRejected>)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The most recently received rejected items, newest first.
    fn rejected_deliveries(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<rejected::RejectedDelivery>, StoreError>> + Send;

    /// Notified when new jobs may be due.
    fn jobs_ready(&self) -> Arc<tokio::sync::Notify>;

    /// Deliveries waiting for the writer.
    fn queue_depth(&self) -> usize;

    /// Checks that the database answers (for health).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stops taking writes, drains the queue, commits what it holds.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}

/// The backend chosen from the database URL: `sqlite://…` or `postgres://…`.
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl AnyStore {
    pub fn backend(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

impl Store for AnyStore {
    async fn ingest(&self, events: Vec<InboundEvent>) -> Result<Vec<IngestResult>, StoreError> {
        both!(self, s => s.ingest(events).await)
    }

    async fn upsert_contact(
        &self,
        key: ContactKey,
        update: ContactUpdate,
    ) -> Result<(StoredContact, bool), StoreError> {
        both!(self, s => s.upsert_contact(key, update).await)
    }

    async fn contact(&self, key: ContactKey) -> Result<Option<StoredContact>, StoreError> {
        both!(self, s => s.contact(key).await)
    }

    async fn history(&self, key: ContactKey, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        both!(self, s => s.history(key, limit).await)
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        both!(self, s => s.events(query).await)
    }

    async fn claim_jobs(&self, req: jobs::ClaimRequest) -> Result<Vec<jobs::ClaimedJob>, StoreError> {
        both!(self, s => s.claim_jobs(req).await)
    }

    async fn finish_job(&self, id: String, finish: jobs::JobFinish) -> Result<bool, StoreError> {
        both!(self, s => s.finish_job(id, finish).await)
    }

    async fn run_internal_job(&self, id: String) -> Result<bool, StoreError> {
        both!(self, s => s.run_internal_job(id).await)
    }

    async fn next_due(&self, action_types: Vec<relance_core::ActionType>) -> Result<Option<DateTime<Utc>>, StoreError> {
        both!(self, s => s.next_due(action_types).await)
    }

    async fn jobs(
        &self,
        filter: jobs::JobFilter,
        contact: Option<ContactKey>,
    ) -> Result<Vec<jobs::JobRow>, StoreError> {
        both!(self, s => s.jobs(filter, contact).await)
    }

    async fn job(&self, id: String) -> Result<Option<(jobs::JobRow, Vec<jobs::Attempt>)>, StoreError> {
        both!(self, s => s.job(id).await)
    }

    async fn cancel_job(&self, id: String) -> Result<(), StoreError> {
        both!(self, s => s.cancel_job(id).await)
    }

    async fn retry_job(&self, id: String) -> Result<(), StoreError> {
        both!(self, s => s.retry_job(id).await)
    }

    async fn finish_external(&self, id: String, finish: jobs::JobFinish) -> Result<bool, StoreError> {
        both!(self, s => s.finish_external(id, finish).await)
    }

    async fn job_stats(&self) -> Result<Vec<jobs::JobCount>, StoreError> {
        both!(self, s => s.job_stats().await)
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<jobs::OutboxRow>, StoreError> {
        both!(self, s => s.outbox(limit).await)
    }

    async fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> Result<bool, StoreError> {
        both!(self, s => s.claim_occurrence(rule_id, occurrence, stale_after).await)
    }

    async fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> Result<(), StoreError> {
        both!(self, s => s.finish_occurrence(rule_id, occurrence, contacts).await)
    }

    async fn list_contacts(&self, filter: ContactFilter) -> Result<Vec<StoredContact>, StoreError> {
        both!(self, s => s.list_contacts(filter).await)
    }

    async fn active_rule_set(&self) -> Result<Option<RuleSetRow>, StoreError> {
        both!(self, s => s.active_rule_set().await)
    }

    async fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError> {
        both!(self, s => s.replay_events(since, after_seq, limit).await)
    }

    async fn save_rule_set(&self, new: NewRuleSet) -> Result<RuleSetRow, StoreError> {
        both!(self, s => s.save_rule_set(new).await)
    }

    async fn activate_rule_set(&self, version: i64, via: String) -> Result<RuleSetRow, StoreError> {
        both!(self, s => s.activate_rule_set(version, via).await)
    }

    async fn rules_file_hash(&self, path: String) -> Result<Option<String>, StoreError> {
        both!(self, s => s.rules_file_hash(path).await)
    }

    async fn record_rules_file(&self, path: String, hash: String, version: i64) -> Result<(), StoreError> {
        both!(self, s => s.record_rules_file(path, hash, version).await)
    }

    async fn rule_set_versions(&self) -> Result<Vec<RuleSetRow>, StoreError> {
        both!(self, s => s.rule_set_versions().await)
    }

    async fn erase_contact(&self, key: ContactKey) -> Result<ErasureReport, StoreError> {
        both!(self, s => s.erase_contact(key).await)
    }

    async fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        both!(self, s => s.import_contacts(rows, skip_invalid).await)
    }

    fn jobs_ready(&self) -> Arc<tokio::sync::Notify> {
        both!(self, s => s.jobs_ready())
    }

    fn queue_depth(&self) -> usize {
        both!(self, s => s.queue_depth())
    }

    async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<dashboard::HourlyCount>, StoreError> {
        both!(self, s => s.hourly_counts(since).await)
    }

    async fn contact_distribution(&self) -> Result<dashboard::ContactDistribution, StoreError> {
        both!(self, s => s.contact_distribution().await)
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        both!(self, s => s.recent_events(limit).await)
    }

    async fn record_rejected(&self, items: Vec<rejected::NewRejected>) -> Result<(), StoreError> {
        both!(self, s => s.record_rejected(items).await)
    }

    async fn rejected_deliveries(&self, limit: usize) -> Result<Vec<rejected::RejectedDelivery>, StoreError> {
        both!(self, s => s.rejected_deliveries(limit).await)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        both!(self, s => s.ping().await)
    }

    async fn shutdown(&self) {
        both!(self, s => s.shutdown().await)
    }
}
