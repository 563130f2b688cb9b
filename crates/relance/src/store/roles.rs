//! The storage interface, by role. Each backend implements every role; the rest of
//! Relance holds a [`SharedStore`] chosen once from the database URL (a trait object:
//! one boxed future per call, nothing next to a database round trip, and no layer that
//! forwards each method to each backend).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use relance_core::InboundEvent;

use super::audit::Audit;
use super::*;

/// Taking deliveries in: events with their effects, and what could not be stored.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Stores a delivery (one or several events) atomically with its effects: events,
    /// contact changes, history rows and jobs commit together before this returns.
    async fn ingest(&self, events: Vec<InboundEvent>) -> Result<Vec<IngestResult>, StoreError>;

    /// Keeps delivery items that could not be stored as events (a redelivered item counts up).
    async fn record_rejected(&self, items: Vec<rejected::NewRejected>) -> Result<(), StoreError>;

    /// Deletes the dashboard's test events (source `test`); the count deleted.
    async fn delete_test_events(&self, audit: Audit) -> Result<u64, StoreError>;

    /// Deliveries waiting for the writer.
    fn queue_depth(&self) -> usize;
}

/// Contacts, their history and events: edits, imports, erasure, reads.
#[async_trait]
pub trait ContactStore: Send + Sync {
    /// Creates or updates a contact; `true` when created.
    async fn upsert_contact(
        &self,
        key: ContactKey,
        update: ContactUpdate,
        audit: Audit,
    ) -> Result<(StoredContact, bool), StoreError>;

    async fn contact(&self, key: ContactKey) -> Result<Option<StoredContact>, StoreError>;

    /// A contact's newest `limit` changes, oldest first.
    async fn history(&self, key: ContactKey, limit: usize) -> Result<Vec<HistoryRow>, StoreError>;

    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError>;

    /// Stored events for a backtest, in commit order, after `after_seq`.
    async fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError>;

    /// Creates or updates many contacts in one transaction: all or nothing, unless
    /// `skip_invalid`, when a row that conflicts is reported and the others go in.
    async fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
        audit: Audit,
    ) -> Result<Vec<ImportOutcome>, StoreError>;

    /// GDPR erasure: the contact becomes an anonymous tombstone, its events lose their
    /// identity and payload, its pending jobs are cancelled, its outbox records erased.
    async fn erase_contact(&self, key: ContactKey, audit: Audit) -> Result<ErasureReport, StoreError>;

    /// Contacts matching a filter, in id order.
    async fn list_contacts(&self, filter: ContactFilter) -> Result<Vec<StoredContact>, StoreError>;
}

/// Jobs and their leases, and the scheduler's occurrences.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Leases due jobs of the given action types.
    async fn claim_jobs(&self, req: jobs::ClaimRequest) -> Result<Vec<jobs::ClaimedJob>, StoreError>;

    /// Records an attempt and the job's next state; `false` if the job was no longer running.
    async fn finish_job(&self, id: String, finish: jobs::JobFinish) -> Result<bool, StoreError>;

    /// Applies a claimed delayed internal action, with its effects, in one transaction.
    async fn run_internal_job(&self, id: String) -> Result<bool, StoreError>;

    /// When the next job of these types is due (or a lease expires).
    async fn next_due(&self, action_types: Vec<relance_core::ActionType>) -> Result<Option<DateTime<Utc>>, StoreError>;

    async fn jobs(&self, filter: jobs::JobFilter, contact: Option<ContactKey>)
    -> Result<Vec<jobs::JobRow>, StoreError>;

    async fn job(&self, id: String) -> Result<Option<(jobs::JobRow, Vec<jobs::Attempt>)>, StoreError>;

    /// The latest successful and failed calls for jobs of these action types.
    async fn last_calls(&self, action_types: Vec<relance_core::ActionType>) -> Result<jobs::LastCalls, StoreError>;

    async fn cancel_job(&self, id: String, audit: Audit) -> Result<(), StoreError>;

    async fn retry_job(&self, id: String, audit: Audit) -> Result<(), StoreError>;

    /// An external worker ends a job it claimed.
    async fn finish_external(&self, id: String, finish: jobs::JobFinish, audit: Audit) -> Result<bool, StoreError>;

    async fn job_stats(&self) -> Result<Vec<jobs::JobCount>, StoreError>;

    async fn outbox(&self, limit: usize) -> Result<Vec<jobs::OutboxRow>, StoreError>;

    /// Takes an occurrence of a time-based rule; `false` if another run has it (or had it).
    async fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> Result<bool, StoreError>;

    async fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> Result<(), StoreError>;

    /// Notified when new jobs may be due.
    fn jobs_ready(&self) -> Arc<crate::store::jobs_ready::JobsReady>;
}

/// Runs of follow-up sequences, as shown and as an operator ends them; the kill switch.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Runs matching a filter (a contact named by key), newest first, with their steps.
    async fn runs(
        &self,
        filter: runs::RunFilter,
        contact: Option<ContactKey>,
    ) -> Result<Vec<runs::RunView>, StoreError>;

    /// Runs per rule started since `since`, by state.
    async fn run_counts(&self, since: DateTime<Utc>) -> Result<Vec<runs::RunCounts>, StoreError>;

    /// Ends the active runs of these rules (`cancelled`, `reason`) and cancels their
    /// pending steps; returns how many runs.
    async fn cancel_runs_of(&self, rule_ids: Vec<String>, reason: String, audit: Audit) -> Result<u64, StoreError>;

    /// The kill switch: the rule fires no more and its pending jobs are `held` (on every
    /// instance, across restarts); returns how many jobs were held.
    async fn pause_rule(&self, rule_id: String, audit: Audit) -> Result<u64, StoreError>;

    /// Ends a pause: held jobs are pending again (checked again when claimed); returns
    /// how many.
    async fn resume_rule(&self, rule_id: String, audit: Audit) -> Result<u64, StoreError>;

    /// Paused rules and since when.
    async fn paused_rules(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError>;
}

/// Versions of the rule set.
#[async_trait]
pub trait RuleSetStore: Send + Sync {
    /// The active rule set, if any was ever stored.
    async fn active_rule_set(&self) -> Result<Option<RuleSetRow>, StoreError>;

    /// Stores a rule set as a new version and makes it the active one.
    /// The audit entry's subject becomes `rule_set:v{new version}`.
    async fn save_rule_set(&self, new: NewRuleSet, audit: Audit) -> Result<RuleSetRow, StoreError>;

    /// Makes an earlier version active again (rollback), recording how (`api`, `dashboard`…).
    async fn activate_rule_set(&self, version: i64, via: String, audit: Audit) -> Result<RuleSetRow, StoreError>;

    /// The hash of the rules last imported from this rules-file path.
    async fn rules_file_hash(&self, path: String) -> Result<Option<String>, StoreError>;

    /// Records that the rules file at `path` (with this hash) is now version `version`.
    async fn record_rules_file(&self, path: String, hash: String, version: i64) -> Result<(), StoreError>;

    /// Every version, newest first.
    async fn rule_set_versions(&self) -> Result<Vec<RuleSetRow>, StoreError>;
}

/// What the dashboard reads.
#[async_trait]
pub trait DashboardReads: Send + Sync {
    /// The dashboard's hourly counters from `since` on.
    async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<dashboard::HourlyCount>, StoreError>;

    /// Score histogram and contacts per segment.
    async fn contact_distribution(&self) -> Result<dashboard::ContactDistribution, StoreError>;

    /// The latest stored events, newest first.
    async fn recent_events(&self, limit: usize) -> Result<Vec<EventRow>, StoreError>;

    /// Whether any event other than a dashboard test one is stored (the first-run guide
    /// shows until one is).
    async fn has_real_events(&self) -> Result<bool, StoreError>;

    /// The most recently received rejected items, newest first.
    async fn rejected_deliveries(&self, limit: usize) -> Result<Vec<rejected::RejectedDelivery>, StoreError>;
}

/// Health and shutdown.
#[async_trait]
pub trait Lifecycle: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Checks that the database answers (for health).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The database's size in bytes and its schema version (migrations applied).
    async fn database_facts(&self) -> Result<(i64, i64), StoreError>;

    /// Stops taking writes, drains the queue, commits what it holds.
    async fn shutdown(&self);
}

/// Every role: what a backend is.
pub trait Store:
    IngestStore
    + ContactStore
    + JobStore
    + RunStore
    + RuleSetStore
    + DashboardReads
    + super::retention::Maintenance
    + super::brevo_sync::BrevoSyncStore
    + super::access::AccessStore
    + Lifecycle
    + 'static
{
}

impl<T> Store for T where
    T: IngestStore
        + ContactStore
        + JobStore
        + RunStore
        + RuleSetStore
        + DashboardReads
        + super::retention::Maintenance
        + super::brevo_sync::BrevoSyncStore
        + super::access::AccessStore
        + Lifecycle
        + 'static
{
}

/// The backend in use, chosen once.
pub type SharedStore = Arc<dyn Store>;
