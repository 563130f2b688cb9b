//! PgStore: taking deliveries and contacts.

use async_trait::async_trait;

use super::*;
use crate::store::audit::Audit;
use crate::store::{ContactStore, IngestStore};

#[async_trait]
impl IngestStore for PgStore {
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

    async fn delete_test_events(&self, audit: Audit) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let n = tx.execute("DELETE FROM events WHERE source = 'test'", &[]).await?;
        access::write_audit(&tx, &audit, Some(format!("events:{n}")), (self.clock)()).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn record_rejected(&self, items: Vec<crate::store::rejected::NewRejected>) -> Result<(), StoreError> {
        let client = self.client().await?;
        rejected::record(&client, &items, (self.clock)()).await
    }

    fn queue_depth(&self) -> usize {
        self.queue.lock().ok().and_then(|q| q.as_ref().map(|q| q.max_capacity() - q.capacity())).unwrap_or(0)
    }
}

#[async_trait]
impl ContactStore for PgStore {
    async fn upsert_contact(
        &self,
        key: ContactKey,
        u: ContactUpdate,
        audit: Audit,
    ) -> Result<(StoredContact, bool), StoreError> {
        u.validate()?;
        let audit_of = |done: &[UpsertDone]| {
            let id = done.first().and_then(|d| d.as_ref().ok()).map(|(c, _)| c.id);
            audit.clone().subject(id.map_or_else(String::new, |id| format!("contact:{id}")))
        };
        match self.upsert_many(&[(key, u)], false, &audit_of).await?.map(|mut r| r.pop()) {
            Ok(Some(Ok(done))) => Ok(done),
            Ok(_) => Err(StoreError::Unavailable(anyhow::anyhow!("internal: an upsert without its row"))),
            Err((_, refused)) => Err(refused),
        }
    }

    async fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
        audit: Audit,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let pairs: Vec<_> = rows.iter().map(|r| (r.key.clone(), r.update.clone())).collect();
        let audit_of = |done: &[UpsertDone]| {
            let created = done.iter().filter(|d| matches!(d, Ok((_, true)))).count();
            let skipped = done.iter().filter(|d| d.is_err()).count();
            audit.clone().with_counts(created, done.len() - created - skipped, skipped)
        };
        let done = match self.upsert_many(&pairs, skip_invalid, &audit_of).await? {
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
            "SELECT id, COALESCE(legacy_id, id::TEXT), dedupe_key, event, occurred_at, received_at, name, source, trigger,
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

    async fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, contact_id, event, received_at, source, name, trigger, occurred_at FROM events
                 WHERE contact_id IS NOT NULL AND id > $1 AND ($2::INT8 IS NULL OR received_at >= $2)
                 ORDER BY id LIMIT $3",
            )
            .await?;
        let rows = client.query(&stmt, &[&after_seq, &since.map(to_millis), &(limit as i64)]).await?;
        rows.iter()
            .map(|r| {
                let event = stored_event_of(r, 2, 4).ok_or_else(|| {
                    StoreError::Unavailable(anyhow::anyhow!("stored event {} is unreadable", r.get::<_, i64>(0)))
                })?;
                Ok((
                    r.get::<_, i64>(0),
                    relance_core::backtest::ReplayEvent { contact_id: r.get(1), event, at: from_millis(r.get(3)) },
                ))
            })
            .collect()
    }

    async fn erase_contact(&self, key: ContactKey, audit: Audit) -> Result<ErasureReport, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = to_millis((self.clock)());
        let id = find_contact_id(&tx, &key, true).await?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
        let stored = load_contact(&tx, id).await?;
        let tombstone = serde_json::to_string(&crate::store::erased_contact(&stored.contact))
            .map_err(|e| StoreError::Unavailable(e.into()))?;
        tx.execute(
            "UPDATE contacts SET email = NULL, client_code = NULL, data = $1, updated_at = $2, version = version + 1 WHERE id = $3",
            &[&tombstone, &now, &id],
        )
        .await?;
        let rows = tx.query("SELECT id, source, event FROM events WHERE contact_id = $1", &[&id]).await?;
        let (mut ids, mut bodies) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
        for row in &rows {
            ids.push(row.get::<_, i64>(0));
            bodies.push(stored_event::erased(row.get(2), row.get(1))?);
        }
        // One statement for all of the contact's events.
        let events = tx
            .execute(
                "UPDATE events SET email = NULL, client_code = NULL, sender_event_id = NULL, raw = '{\"erased\":true}',
                        event = erased.event
                 FROM UNNEST($1::INT8[], $2::TEXT[]) AS erased(id, event)
                 WHERE events.id = erased.id",
                &[&ids, &bodies],
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
        access::write_audit(&tx, &audit, Some(format!("contact:{id}")), (self.clock)()).await?;
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
}
