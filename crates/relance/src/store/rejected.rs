//! Delivery items that could never become events, kept for a person to see.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// One rejected item, as received.
#[derive(Debug, Clone)]
pub struct NewRejected {
    /// `brevo` or `tracking`.
    pub source: &'static str,
    pub field: String,
    pub error: String,
    /// The item's JSON (or the body's text when it was not JSON).
    pub payload: String,
}

impl NewRejected {
    /// Same source and payload, same record: a redelivery counts up instead of adding a row.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.source.as_bytes());
        h.update([0]);
        h.update(self.payload.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A stored rejected item.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectedDelivery {
    pub id: i64,
    pub source: String,
    pub first_received_at: DateTime<Utc>,
    pub last_received_at: DateTime<Utc>,
    /// How many times this exact item was delivered.
    pub times: i64,
    /// The field that made it unstorable (`event`, `email`, `body`…).
    pub field: String,
    pub error: String,
    /// The item as received.
    pub payload: String,
}
