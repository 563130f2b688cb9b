//! Storage: one trait, chosen once from the database URL. The SQLite implementation is
//! the embedded default; each implementation owns its migrations.

pub mod access;
pub mod audit;
pub mod brevo_sync;
pub(crate) mod contact_json;
pub mod dashboard;
pub mod jobs;
pub mod jobs_ready;
pub mod peek;
pub mod postgres;
pub mod rejected;
pub mod retention;
mod roles;
pub mod runs;
pub mod sqlite;
pub mod stored_event;

pub use roles::{
    ContactStore, DashboardReads, IngestStore, JobStore, Lifecycle, RuleSetStore, RunStore, SharedStore, Store,
};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use relance_core::{ClientCode, Contact, Email};
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

/// When the earliest of the plan's new runnable jobs is due (what the dispatcher must
/// hear about); `None` when the plan stores none.
pub(crate) fn earliest_new_job(plan: &relance_core::plan::WritePlan) -> Option<DateTime<Utc>> {
    plan.jobs.iter().filter(|j| j.state == relance_core::plan::JobState::Pending).map(|j| j.due_at).min()
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
            relance_core::plan::PlanError::NoEventId(_) => StoreError::Unavailable(anyhow::Error::new(e)),
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
