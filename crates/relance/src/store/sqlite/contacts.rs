//! SqliteStore: taking deliveries and contacts.

use async_trait::async_trait;

use super::*;
use crate::store::audit::Audit;
use crate::store::{ContactStore, IngestStore};

#[async_trait]
impl IngestStore for SqliteStore {
    async fn ingest(&self, events: Vec<InboundEvent>) -> Result<Vec<IngestResult>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Ingest { events, reply })?;
        answer.await.map_err(|_| StoreError::Unavailable(anyhow::anyhow!("the writer dropped the request")))?
    }

    async fn record_rejected(&self, items: Vec<crate::store::rejected::NewRejected>) -> Result<(), StoreError> {
        self.write(move |conn, _, now| rejected::record(conn, &items, now)).await
    }

    async fn delete_test_events(&self, audit: Audit) -> Result<u64, StoreError> {
        self.write(move |conn, _, now| {
            let n = conn.prepare_cached("DELETE FROM events WHERE source = 'test'")?.execute([])?;
            access::write_audit(conn, &audit, Some(format!("events:{n}")), now)?;
            Ok(n as u64)
        })
        .await
    }

    fn queue_depth(&self) -> usize {
        self.queue.lock().ok().and_then(|q| q.as_ref().map(|q| q.max_capacity() - q.capacity())).unwrap_or(0)
    }
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn upsert_contact(
        &self,
        key: ContactKey,
        update: ContactUpdate,
        audit: Audit,
    ) -> Result<(StoredContact, bool), StoreError> {
        update.validate()?;
        self.write(move |conn, ctx, now| {
            let rows = [(key.clone(), update.clone())];
            match ctx.upsert_many(conn, &rows, false, now)?.map(|mut r| r.pop()) {
                Ok(Some(writer::Upserted::Done(stored, created))) => {
                    let subject = format!("contact:{}", stored.id);
                    access::write_audit(conn, &audit, Some(subject), now)?;
                    Ok((*stored, created))
                }
                Ok(_) => Err(StoreError::Unavailable(anyhow::anyhow!("internal: an upsert without its row"))),
                Err((_, refused)) => Err(refused),
            }
        })
        .await
    }

    async fn contact(&self, key: ContactKey) -> Result<Option<StoredContact>, StoreError> {
        self.read(move |conn| match find_contact_id(conn, &key)? {
            Some(id) => load_contact(conn, id).map(Some),
            None => Ok(None),
        })
        .await
    }

    async fn history(&self, key: ContactKey, limit: usize) -> Result<Vec<HistoryRow>, StoreError> {
        self.read(move |conn| {
            let id = find_contact_id(conn, &key)?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
            let mut stmt = conn.prepare_cached(
                "SELECT at, event_id, rule_id, action_type, field, before, after FROM (
                     SELECT id, at, event_id, rule_id, action_type, field, before, after FROM history
                     WHERE contact_id = ?1 ORDER BY id DESC LIMIT ?2
                 ) ORDER BY id",
            )?;
            let rows = stmt
                .query_map(params![id, limit as i64], |r| {
                    Ok(HistoryRow {
                        at: from_millis(r.get(0)?),
                        event_id: r.get(1)?,
                        rule_id: r.get(2)?,
                        action_type: r.get(3)?,
                        field: r.get(4)?,
                        before: json_column(r.get(5)?),
                        after: json_column(r.get(6)?),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |conn| {
            let contact_id = match &query.contact {
                Some(key) => match find_contact_id(conn, key)? {
                    Some(id) => Some(id),
                    None => return Ok(Vec::new()),
                },
                None => None,
            };
            // One statement per shape rather than `(?1 IS NULL OR contact_id = ?1)` and a
            // computed ORDER BY: those stop SQLite from using the contact index and from
            // walking the primary key in order (a scan of every event per call).
            let by_contact = if contact_id.is_some() { "contact_id = ?1" } else { "?1 IS NULL" };
            let order = if query.newest { "DESC" } else { "ASC" };
            let sql = format!(
                "SELECT id, COALESCE(legacy_id, CAST(id AS TEXT)), dedupe_key, event, occurred_at, received_at, name, source, trigger,
                        email, client_code, sender_event_id, raw
                 FROM events
                 WHERE {by_contact} AND (?2 IS NULL OR received_at >= ?2) AND id > ?3
                 ORDER BY id {order} LIMIT ?4"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt
                .query_map(
                    params![contact_id, query.since.map(to_millis), query.after_seq.unwrap_or(0), query.limit as i64,],
                    event_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if query.newest {
                rows.reverse();
            }
            Ok(rows)
        })
        .await
    }

    async fn import_contacts(
        &self,
        rows: Vec<ImportRow>,
        skip_invalid: bool,
        audit: Audit,
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        self.write(move |conn, ctx, now| {
            // Planned as a whole before anything is written: a refused row leaves nothing.
            let pairs: Vec<_> = rows.iter().map(|r| (r.key.clone(), r.update.clone())).collect();
            let done = match ctx.upsert_many(conn, &pairs, skip_invalid, now)? {
                Ok(done) => done,
                Err((i, StoreError::Conflict(m))) => {
                    return Err(StoreError::Conflict(format!("line {}: {m}", rows[i].line)));
                }
                Err((_, refused)) => return Err(refused),
            };
            let outcomes: Vec<ImportOutcome> = rows
                .iter()
                .zip(done)
                .map(|(row, d)| match d {
                    writer::Upserted::Done(_, created) => ImportOutcome { line: row.line, created, rejected: None },
                    writer::Upserted::Skipped(m) => ImportOutcome { line: row.line, created: false, rejected: Some(m) },
                })
                .collect();
            access::write_audit(conn, &audit.clone().with_import_counts(&outcomes), None, now)?;
            Ok(outcomes)
        })
        .await
    }

    async fn replay_events(
        &self,
        since: Option<DateTime<Utc>>,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, relance_core::backtest::ReplayEvent)>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, contact_id, event, received_at, source, name, trigger, occurred_at FROM events
                 WHERE contact_id IS NOT NULL AND id > ?1 AND (?2 IS NULL OR received_at >= ?2)
                 ORDER BY id LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![after_seq, since.map(to_millis), limit as i64])?;
            let mut replay = Vec::with_capacity(limit.min(4096));
            while let Some(r) = rows.next()? {
                let event = stored_event_of(r, 2, 4)?.ok_or_else(|| {
                    StoreError::Unavailable(anyhow::anyhow!(
                        "stored event {} is unreadable",
                        r.get::<_, i64>(0).unwrap_or_default()
                    ))
                })?;
                let at = from_millis(r.get(3)?);
                replay.push((r.get(0)?, relance_core::backtest::ReplayEvent { contact_id: r.get(1)?, event, at }));
            }
            Ok(replay)
        })
        .await
    }

    async fn erase_contact(&self, key: ContactKey, audit: Audit) -> Result<ErasureReport, StoreError> {
        self.write(move |conn, _, now| {
            let id = find_contact_id(conn, &key)?.ok_or_else(|| StoreError::NotFound(key.describe()))?;
            let stored = load_contact(conn, id)?;
            let tombstone = serde_json::to_string(&crate::store::erased_contact(&stored.contact))
                .map_err(|e| StoreError::Unavailable(e.into()))?;
            conn.prepare_cached(
                "UPDATE contacts SET email = NULL, client_code = NULL, data = ?1, updated_at = ?2, version = version + 1
                 WHERE id = ?3",
            )?
            .execute(params![tombstone, to_millis(now), id])?;
            let rows: Vec<(i64, String, String)> = conn
                .prepare_cached("SELECT id, source, event FROM events WHERE contact_id = ?1")?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut anonymise = conn.prepare_cached(
                "UPDATE events SET email = NULL, client_code = NULL, sender_event_id = NULL, raw = '{\"erased\":true}',
                        event = ?1
                 WHERE id = ?2",
            )?;
            for (event_id, source, event) in &rows {
                anonymise.execute(params![stored_event::erased(event, source)?, event_id])?;
            }
            let events = rows.len();
            let jobs = conn
                .prepare_cached(
                    "UPDATE jobs SET state = 'cancelled', last_error = 'cancelled: the contact was erased', updated_at = ?1
                     WHERE contact_id = ?2 AND state IN ('pending', 'failed', 'running')",
                )?
                .execute(params![to_millis(now), id])?;
            let outbox = conn
                .prepare_cached(
                    "UPDATE outbox SET payload = '{\"erased\":true}' WHERE job_id IN (SELECT id FROM jobs WHERE contact_id = ?1)",
                )?
                .execute([id])?;
            access::write_audit(conn, &audit, Some(format!("contact:{id}")), now)?;
            Ok(ErasureReport {
                events_anonymised: events as u64,
                jobs_cancelled: jobs as u64,
                outbox_records_erased: outbox as u64,
            })
        })
        .await
    }

    async fn list_contacts(&self, f: ContactFilter) -> Result<Vec<StoredContact>, StoreError> {
        self.read(move |conn| {
            let ids: Vec<i64> = conn
                .prepare_cached(
                    "SELECT id FROM contacts
                     WHERE id > ?1 AND (?2 IS NULL OR segment = ?2) AND (?3 IS NULL OR score >= ?3)
                       AND (?4 IS NULL OR score <= ?4) AND (?5 IS NULL OR updated_at >= ?5)
                       AND (?6 IS NULL OR EXISTS (SELECT 1 FROM json_each(data, '$.tags') WHERE value = ?6))
                       AND (?8 IS NULL OR (email >= lower(?8) AND email < lower(?8) || char(1114111))
                            OR (client_code >= ?8 AND client_code < ?8 || char(1114111)))
                     ORDER BY id LIMIT ?7",
                )?
                .query_map(
                    params![
                        f.after_id,
                        f.segment,
                        f.score_min,
                        f.score_max,
                        f.updated_since.map(to_millis),
                        f.tag,
                        f.limit as i64,
                        f.search,
                    ],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            ids.into_iter().map(|id| load_contact(conn, id)).collect()
        })
        .await
    }
}
