//! Everything held about a contact, in one document: the answer to a GDPR
//! subject-access request.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::jobs::{JobFilter, JobRow};
use crate::store::{ContactKey, EventQuery, EventRow, HistoryRow, Store, StoreError, StoredContact};

#[derive(Serialize, utoipa::ToSchema)]
pub struct ContactExport {
    pub exported_at: DateTime<Utc>,
    pub contact: StoredContact,
    pub history: Vec<HistoryRow>,
    pub events: Vec<EventRow>,
    pub actions: Vec<JobRow>,
}

/// The contact, its history, its events with their payloads and its actions; `None`
/// when there is no such contact.
pub async fn export_contact(
    store: &dyn Store,
    key: ContactKey,
    now: DateTime<Utc>,
) -> Result<Option<ContactExport>, StoreError> {
    let Some(contact) = store.contact(key.clone()).await? else { return Ok(None) };
    let history = store.history(key.clone(), 100_000).await?;
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let query =
            EventQuery { contact: Some(key.clone()), after_seq: Some(after), limit: 1000, ..EventQuery::default() };
        let page = store.events(query).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        events.extend(page);
    }
    let actions = store.jobs(JobFilter { limit: 100_000, ..JobFilter::default() }, Some(key)).await?;
    Ok(Some(ContactExport { exported_at: now, contact, history, events, actions }))
}
