//! The Brevo contact sync queue on PostgreSQL: instances share it, each claim skipping
//! rows another instance holds, and the request rate row is shared by all.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{PgStore, from_millis, load_contact, to_millis};
use crate::store::StoreError;
use crate::store::brevo_sync::{BrevoSyncStore, SyncAttempt, SyncClaim, SyncProblem, SyncResult, SyncStatus};

#[async_trait]
impl BrevoSyncStore for PgStore {
    async fn claim_brevo_sync(
        &self,
        limit: usize,
        min_interval: std::time::Duration,
        lease: std::time::Duration,
    ) -> Result<Vec<SyncClaim>, StoreError> {
        let now = to_millis((self.clock)());
        let cutoff = now - min_interval.as_millis() as i64;
        let lease_until = now + lease.as_millis() as i64;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached(
                "UPDATE brevo_sync SET lease_until = $1, attempts = attempts + 1
                 WHERE contact_id IN (
                   SELECT contact_id FROM brevo_sync
                   WHERE generation > synced_generation AND due_at <= $2
                     AND (lease_until IS NULL OR lease_until < $2)
                     AND (last_synced_at IS NULL OR last_synced_at <= $3)
                   ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING contact_id, generation, attempts",
            )
            .await?;
        let rows = tx.query(&stmt, &[&lease_until, &now, &cutoff, &(limit as i64)]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let contact_id: i64 = r.get(0);
            let contact = load_contact(&tx, contact_id).await?.contact;
            out.push(SyncClaim { contact_id, generation: r.get(1), attempts: r.get(2), contact });
        }
        tx.commit().await?;
        out.sort_by_key(|c| c.contact_id);
        Ok(out)
    }

    async fn finish_brevo_sync(
        &self,
        results: Vec<(i64, i64, SyncResult)>,
        attempts: Vec<SyncAttempt>,
    ) -> Result<(), StoreError> {
        let now = to_millis((self.clock)());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for (contact_id, generation, result) in &results {
            finish_one(&tx, *contact_id, *generation, result, now).await?;
        }
        let insert = tx
            .prepare_cached(
                "INSERT INTO brevo_sync_attempts (at, request, contacts, http_status, outcome, error, duration_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        for a in &attempts {
            let status = a.http_status.map(i64::from);
            tx.execute(
                &insert,
                &[
                    &to_millis(a.at),
                    &a.request,
                    &(a.contacts as i64),
                    &status,
                    &a.outcome,
                    &a.error,
                    &(a.duration_ms as i64),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn take_brevo_slot(&self, spacing: std::time::Duration) -> Result<DateTime<Utc>, StoreError> {
        let now = to_millis((self.clock)());
        let spacing = spacing.as_millis() as i64;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE brevo_rate SET next_at = greatest(next_at, $1) + $2 WHERE id = 1 RETURNING next_at - $2",
            )
            .await?;
        let at: i64 = client.query_one(&stmt, &[&now, &spacing]).await?.get(0);
        Ok(from_millis(at))
    }

    async fn queue_all_brevo_sync(&self, after: i64, limit: usize) -> Result<Option<(i64, u64)>, StoreError> {
        let now = to_millis((self.clock)());
        let client = self.client().await?;
        let upto: Option<i64> = client
            .query_one(
                "SELECT max(id) FROM (SELECT id FROM contacts WHERE id > $1 AND email IS NOT NULL
                 ORDER BY id LIMIT $2) t",
                &[&after, &(limit as i64)],
            )
            .await?
            .get(0);
        let Some(upto) = upto else { return Ok(None) };
        let queued = client
            .execute(
                "INSERT INTO brevo_sync (contact_id, due_at, updated_at)
                 SELECT id, $3, $3 FROM contacts WHERE id > $1 AND id <= $2 AND email IS NOT NULL
                 ON CONFLICT (contact_id) DO UPDATE SET
                   generation = brevo_sync.generation + 1,
                   due_at = CASE WHEN brevo_sync.generation > brevo_sync.synced_generation
                                 THEN brevo_sync.due_at ELSE excluded.due_at END,
                   updated_at = excluded.updated_at",
                &[&after, &upto, &now],
            )
            .await?;
        Ok(Some((upto, queued)))
    }

    async fn brevo_sync_status(&self) -> Result<SyncStatus, StoreError> {
        let client = self.client().await?;
        let r = client.query_one(crate::store::sqlite::BREVO_SYNC_STATUS_SQL, &[]).await?;
        let n = |i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0) as u64;
        let mut status = SyncStatus {
            pending: n(0),
            done: n(1),
            not_in_brevo: n(2),
            no_email: n(3),
            failed: n(4),
            last_attempt: None,
        };
        status.last_attempt = client
            .query_opt(
                "SELECT at, request, contacts, http_status, outcome, error, duration_ms
                 FROM brevo_sync_attempts ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await?
            .map(|r| SyncAttempt {
                at: from_millis(r.get(0)),
                request: r.get(1),
                contacts: r.get::<_, i64>(2) as usize,
                http_status: r.get::<_, Option<i64>>(3).and_then(|s| u16::try_from(s).ok()),
                outcome: r.get(4),
                error: r.get(5),
                duration_ms: r.get::<_, i64>(6) as u64,
            });
        Ok(status)
    }

    async fn brevo_sync_problems(&self, limit: usize) -> Result<Vec<SyncProblem>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT c.email, s.last_status, s.last_error, s.updated_at FROM brevo_sync s
                 JOIN contacts c ON c.id = s.contact_id
                 WHERE s.last_status IN ('not_in_brevo', 'no_email', 'failed', 'retrying')
                 ORDER BY s.updated_at DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SyncProblem { email: r.get(0), status: r.get(1), error: r.get(2), at: from_millis(r.get(3)) })
            .collect())
    }
}

async fn finish_one<C: GenericClient>(
    c: &C,
    contact_id: i64,
    generation: i64,
    result: &SyncResult,
    now: i64,
) -> Result<(), StoreError> {
    match result {
        SyncResult::Retry { at, error } => {
            let stmt = c
                .prepare_cached(
                    "UPDATE brevo_sync SET lease_until = NULL, due_at = $2, last_status = 'retrying',
                       last_error = $3, updated_at = $4 WHERE contact_id = $1",
                )
                .await?;
            c.execute(&stmt, &[&contact_id, &to_millis(*at), error, &now]).await?;
        }
        settled => {
            let stmt = c
                .prepare_cached(
                    "UPDATE brevo_sync SET synced_generation = greatest(synced_generation, $2), lease_until = NULL,
                       attempts = 0, last_synced_at = $3, last_status = $4, last_error = $5, updated_at = $3
                     WHERE contact_id = $1",
                )
                .await?;
            c.execute(&stmt, &[&contact_id, &generation, &now, &settled.status(), &settled.error()]).await?;
        }
    }
    Ok(())
}
