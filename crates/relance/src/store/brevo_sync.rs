//! The Brevo contact sync queue as stored: which contacts are due, what became of each
//! push, every request made, and the shared request rate. Nothing here decides what a
//! Brevo answer means (that is `dispatch::brevo_sync`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use relance_core::Contact;
use serde::Serialize;

use super::StoreError;

/// A queued contact, leased to this worker, with its state as of now.
#[derive(Debug, Clone)]
pub struct SyncClaim {
    pub contact_id: i64,
    /// The change count being pushed: a change after the claim keeps the row pending.
    pub generation: i64,
    /// Pushes tried since the last success, this one included.
    pub attempts: i64,
    pub contact: Contact,
}

/// What became of one contact's push.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncResult {
    Done,
    /// Brevo does not know the contact (and creating it is off): reported, not retried
    /// until the contact changes again.
    NotInBrevo(String),
    /// No email address to name the contact by in Brevo.
    NoEmail,
    /// Try again at this time.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Given up (a refused request, or retries exhausted) until the contact changes.
    Failed(String),
}

impl SyncResult {
    pub fn status(&self) -> &'static str {
        match self {
            SyncResult::Done => "done",
            SyncResult::NotInBrevo(_) => "not_in_brevo",
            SyncResult::NoEmail => "no_email",
            SyncResult::Retry { .. } => "retrying",
            SyncResult::Failed(_) => "failed",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            SyncResult::NotInBrevo(e) | SyncResult::Failed(e) | SyncResult::Retry { error: e, .. } => Some(e),
            SyncResult::Done | SyncResult::NoEmail => None,
        }
    }
}

/// One request to Brevo's contacts API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncAttempt {
    pub at: DateTime<Utc>,
    /// `POST /contacts/batch`, `PUT /contacts/{email}`, `POST /contacts`.
    pub request: String,
    pub contacts: usize,
    pub http_status: Option<u16>,
    /// `done`, `retry`, `failed`, `not_found`.
    pub outcome: String,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// Contacts in the queue, by state.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SyncStatus {
    /// Changed and not pushed yet (or being retried).
    pub pending: u64,
    pub done: u64,
    pub not_in_brevo: u64,
    pub no_email: u64,
    pub failed: u64,
    pub last_attempt: Option<SyncAttempt>,
}

/// A contact whose latest push did not reach Brevo.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SyncProblem {
    pub email: Option<String>,
    pub status: String,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait BrevoSyncStore: Send + Sync {
    /// Leases up to `limit` due contacts not pushed within `min_interval`.
    async fn claim_brevo_sync(
        &self,
        limit: usize,
        min_interval: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<SyncClaim>, StoreError>;

    /// Records each contact's result (by the generation it pushed) and the requests made.
    async fn finish_brevo_sync(
        &self,
        results: Vec<(i64, i64, SyncResult)>,
        attempts: Vec<SyncAttempt>,
    ) -> Result<(), StoreError>;

    /// Takes the next request slot of the account's contacts API, shared by every
    /// instance: the time at which this request may be sent.
    async fn take_brevo_slot(&self, spacing: std::time::Duration) -> Result<DateTime<Utc>, StoreError>;

    /// Queues every contact with an email, `limit` at a time after contact id `after`:
    /// the last id queued (`None`: no more) and how many.
    async fn queue_all_brevo_sync(&self, after: i64, limit: usize) -> Result<Option<(i64, u64)>, StoreError>;

    async fn brevo_sync_status(&self) -> Result<SyncStatus, StoreError>;

    /// The latest contacts whose push did not reach Brevo, newest first.
    async fn brevo_sync_problems(&self, limit: usize) -> Result<Vec<SyncProblem>, StoreError>;
}
