//! The Brevo contact sync queue on SQLite: every change goes through the writer.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, from_millis, load_contact, to_millis};
use crate::store::StoreError;
use crate::store::brevo_sync::{BrevoSyncStore, SyncAttempt, SyncClaim, SyncProblem, SyncResult, SyncStatus};

#[async_trait]
impl BrevoSyncStore for SqliteStore {
    async fn claim_brevo_sync(
        &self,
        limit: usize,
        min_interval: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<SyncClaim>, StoreError> {
        self.write(move |conn, _, now| {
            let now_ms = to_millis(now);
            let cutoff = now_ms - min_interval.as_millis() as i64;
            let lease_until = now_ms + lease.as_millis() as i64;
            let mut claim = conn.prepare_cached(
                "UPDATE brevo_sync SET lease_until = ?1, attempts = attempts + 1
                 WHERE contact_id IN (
                   SELECT contact_id FROM brevo_sync
                   WHERE generation > synced_generation AND due_at <= ?2
                     AND (lease_until IS NULL OR lease_until < ?2)
                     AND (last_synced_at IS NULL OR last_synced_at <= ?3)
                   ORDER BY due_at LIMIT ?4)
                 RETURNING contact_id, generation, attempts",
            )?;
            let rows: Vec<(i64, i64, i64)> = claim
                .query_map(params![lease_until, now_ms, cutoff, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(rows.len());
            for (contact_id, generation, attempts) in rows {
                let contact = load_contact(conn, contact_id)?.contact;
                out.push(SyncClaim { contact_id, generation, attempts, contact });
            }
            out.sort_by_key(|c| c.contact_id);
            Ok(out)
        })
        .await
    }

    async fn finish_brevo_sync(
        &self,
        results: Vec<(i64, i64, SyncResult)>,
        attempts: Vec<SyncAttempt>,
    ) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            for (contact_id, generation, result) in &results {
                finish_one(conn, *contact_id, *generation, result, to_millis(now))?;
            }
            let mut insert = conn.prepare_cached(
                "INSERT INTO brevo_sync_attempts (at, request, contacts, http_status, outcome, error, duration_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for a in &attempts {
                insert.execute(params![
                    to_millis(a.at),
                    a.request,
                    a.contacts as i64,
                    a.http_status,
                    a.outcome,
                    a.error,
                    a.duration_ms as i64
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn take_brevo_slot(&self, spacing: std::time::Duration) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.write(move |conn, _, now| {
            let spacing = spacing.as_millis() as i64;
            let at: i64 = conn
                .prepare_cached(
                    "UPDATE brevo_rate SET next_at = max(next_at, ?1) + ?2 WHERE id = 1 RETURNING next_at - ?2",
                )?
                .query_row(params![to_millis(now), spacing], |r| r.get(0))?;
            Ok(from_millis(at))
        })
        .await
    }

    async fn queue_all_brevo_sync(&self, after: i64, limit: usize) -> Result<Option<(i64, u64)>, StoreError> {
        self.write(move |conn, _, now| {
            let upto: Option<i64> = conn
                .prepare_cached(
                    "SELECT max(id) FROM (SELECT id FROM contacts WHERE id > ?1 AND email IS NOT NULL
                     ORDER BY id LIMIT ?2)",
                )?
                .query_row(params![after, limit as i64], |r| r.get(0))
                .optional()?
                .flatten();
            let Some(upto) = upto else { return Ok(None) };
            let queued = conn
                .prepare_cached(
                    "INSERT INTO brevo_sync (contact_id, due_at, updated_at)
                     SELECT id, ?3, ?3 FROM contacts WHERE id > ?1 AND id <= ?2 AND email IS NOT NULL
                     ON CONFLICT (contact_id) DO UPDATE SET
                       generation = brevo_sync.generation + 1,
                       due_at = CASE WHEN brevo_sync.generation > brevo_sync.synced_generation
                                     THEN brevo_sync.due_at ELSE excluded.due_at END,
                       updated_at = excluded.updated_at",
                )?
                .execute(params![after, upto, to_millis(now)])?;
            Ok(Some((upto, queued as u64)))
        })
        .await
    }

    async fn brevo_sync_status(&self) -> Result<SyncStatus, StoreError> {
        self.read(|conn| {
            let mut status = conn.prepare_cached(BREVO_SYNC_STATUS_SQL)?.query_row([], |r| {
                Ok(SyncStatus {
                    pending: r.get::<_, Option<i64>>(0)?.unwrap_or(0) as u64,
                    done: r.get::<_, Option<i64>>(1)?.unwrap_or(0) as u64,
                    not_in_brevo: r.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                    no_email: r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
                    failed: r.get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
                    last_attempt: None,
                })
            })?;
            status.last_attempt = conn
                .prepare_cached(
                    "SELECT at, request, contacts, http_status, outcome, error, duration_ms
                     FROM brevo_sync_attempts ORDER BY id DESC LIMIT 1",
                )?
                .query_row([], |r| {
                    Ok(SyncAttempt {
                        at: from_millis(r.get(0)?),
                        request: r.get(1)?,
                        contacts: r.get::<_, i64>(2)? as usize,
                        http_status: r.get(3)?,
                        outcome: r.get(4)?,
                        error: r.get(5)?,
                        duration_ms: r.get::<_, i64>(6)? as u64,
                    })
                })
                .optional()?;
            Ok(status)
        })
        .await
    }

    async fn brevo_sync_problems(&self, limit: usize) -> Result<Vec<SyncProblem>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT c.email, s.last_status, s.last_error, s.updated_at FROM brevo_sync s
                 JOIN contacts c ON c.id = s.contact_id
                 WHERE s.last_status IN ('not_in_brevo', 'no_email', 'failed', 'retrying')
                 ORDER BY s.updated_at DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(SyncProblem { email: r.get(0)?, status: r.get(1)?, error: r.get(2)?, at: from_millis(r.get(3)?) })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

/// The queue's counts by state, one row (shared with PostgreSQL's text).
pub(crate) const BREVO_SYNC_STATUS_SQL: &str = "SELECT
    sum(CASE WHEN generation > synced_generation THEN 1 ELSE 0 END),
    sum(CASE WHEN generation <= synced_generation AND last_status = 'done' THEN 1 ELSE 0 END),
    sum(CASE WHEN generation <= synced_generation AND last_status = 'not_in_brevo' THEN 1 ELSE 0 END),
    sum(CASE WHEN generation <= synced_generation AND last_status = 'no_email' THEN 1 ELSE 0 END),
    sum(CASE WHEN generation <= synced_generation AND last_status = 'failed' THEN 1 ELSE 0 END)
  FROM brevo_sync";

fn finish_one(
    conn: &Connection,
    contact_id: i64,
    generation: i64,
    result: &SyncResult,
    now: i64,
) -> Result<(), StoreError> {
    match result {
        SyncResult::Retry { at, error } => {
            conn.prepare_cached(
                "UPDATE brevo_sync SET lease_until = NULL, due_at = ?2, last_status = 'retrying', last_error = ?3,
                   updated_at = ?4 WHERE contact_id = ?1",
            )?
            .execute(params![contact_id, to_millis(*at), error, now])?;
        }
        settled => {
            // Settled at this generation; a change since keeps the row pending, and the
            // next push waits for `min_interval` after this one.
            conn.prepare_cached(
                "UPDATE brevo_sync SET synced_generation = max(synced_generation, ?2), lease_until = NULL,
                   attempts = 0, last_synced_at = ?3, last_status = ?4, last_error = ?5, updated_at = ?3
                 WHERE contact_id = ?1",
            )?
            .execute(params![contact_id, generation, now, settled.status(), settled.error()])?;
        }
    }
    Ok(())
}
