//! Retention: what the store prunes, one small batch at a time, and what it reports
//! about its own size. The policy (which cut-off, how often) lives in `ops::retention`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;

/// One kind of old data that can go. History is never pruned: it explains the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneKind {
    /// The raw payload of events received before the cut-off (the parsed event stays).
    RawPayloads,
    /// Whole events received before the cut-off.
    Events,
    /// Jobs that ended (done, dead, cancelled, suppressed, skipped) before the cut-off,
    /// with their attempts and outbox records.
    FinishedJobs,
    /// Rejected delivery items last received before the cut-off.
    RejectedDeliveries,
    /// Audit log entries written before the cut-off.
    AuditLog,
}

impl PruneKind {
    pub const ALL: [PruneKind; 5] = [
        PruneKind::RawPayloads,
        PruneKind::Events,
        PruneKind::FinishedJobs,
        PruneKind::RejectedDeliveries,
        PruneKind::AuditLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PruneKind::RawPayloads => "raw_payloads",
            PruneKind::Events => "events",
            PruneKind::FinishedJobs => "finished_jobs",
            PruneKind::RejectedDeliveries => "rejected_deliveries",
            PruneKind::AuditLog => "audit_log",
        }
    }
}

/// The job states that never change again: what `FinishedJobs` may delete.
pub const FINISHED_JOB_STATES: &str = "'done', 'dead', 'cancelled', 'suppressed', 'skipped'";

/// What a pruned raw payload reads as (a JSON `null`: "no longer kept").
pub const PRUNED_RAW: &str = "null";

/// One table's size, for `relance db stats`.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    pub table: String,
    pub rows: i64,
    /// Table and its indexes, on disk.
    pub bytes: i64,
    /// The oldest row's time, for tables that have one.
    pub oldest: Option<DateTime<Utc>>,
}

/// The column that dates each table's rows, for "oldest row".
pub const DATED_TABLES: &[(&str, &str)] = &[
    ("contacts", "created_at"),
    ("events", "received_at"),
    ("history", "at"),
    ("jobs", "created_at"),
    ("job_attempts", "started_at"),
    ("outbox", "created_at"),
    ("rejected_deliveries", "first_received_at"),
    ("runs", "started_at"),
    ("rule_sets", "created_at"),
    ("hourly_counts", "hour"),
    ("schedule_runs", "started_at"),
    ("paused_rules", "paused_at"),
    ("rules_files", "imported_at"),
    ("brevo_sync_attempts", "at"),
    ("users", "created_at"),
    ("sessions", "created_at"),
    ("api_keys", "created_at"),
    ("audit_log", "at"),
];

/// Pruning and size, for the retention task and `relance db`.
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Prunes at most `limit` rows of `kind` older than `before`; returns how many went.
    /// Fewer than `limit` means nothing older is left. Safe to call from several
    /// instances at once: on PostgreSQL only one prunes at a time, the others return 0.
    async fn prune(&self, kind: PruneKind, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError>;

    /// Rows, bytes and oldest row of every table.
    async fn table_stats(&self) -> Result<Vec<TableStats>, StoreError>;

    /// The daily decay sweep: materialises the decay of these contacts' scores (a `decay`
    /// history row per score that moved) in one transaction; returns how many changed.
    async fn settle_scores(&self, contact_ids: Vec<i64>) -> Result<u64, StoreError>;
}
