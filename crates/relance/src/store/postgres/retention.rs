//! Retention on PostgreSQL: each prune is one short transaction. Instances sharing the
//! database take turns through an advisory lock: one that does not get it prunes nothing
//! this time (the holder is doing the same work).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{PgStore, from_millis, to_millis};
use crate::store::StoreError;
use crate::store::retention::{DATED_TABLES, FINISHED_JOB_STATES, Maintenance, PRUNED_RAW, PruneKind, TableStats};

/// Names the pruning lock (distinct from the migration lock).
const RETENTION_LOCK: i64 = 0x0072_656c_7265_746e;

#[async_trait]
impl Maintenance for PgStore {
    async fn prune(&self, kind: PruneKind, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let (before, limit) = (to_millis(before), limit.max(1) as i64);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let locked: bool = tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RETENTION_LOCK]).await?.get(0);
        if !locked {
            return Ok(0);
        }
        let n = match kind {
            PruneKind::RawPayloads => prune_raw(&tx, before, limit).await?,
            PruneKind::Events => {
                let stmt = tx
                    .prepare_cached(
                        // In id order, as on SQLite: no index on `received_at` to keep up.
                        "DELETE FROM events WHERE id IN
                           (SELECT id FROM (SELECT id, received_at FROM events ORDER BY id LIMIT $2) AS oldest
                            WHERE received_at < $1)",
                    )
                    .await?;
                tx.execute(&stmt, &[&before, &limit]).await?
            }
            PruneKind::FinishedJobs => prune_jobs(&tx, before, limit).await?,
            PruneKind::RejectedDeliveries => {
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM rejected_deliveries WHERE id IN
                           (SELECT id FROM rejected_deliveries WHERE last_received_at < $1
                            ORDER BY last_received_at LIMIT $2)",
                    )
                    .await?;
                tx.execute(&stmt, &[&before, &limit]).await?
            }
            PruneKind::AuditLog => {
                let stmt = tx
                    .prepare_cached(
                        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)",
                    )
                    .await?;
                tx.execute(&stmt, &[&before, &limit]).await?
            }
        };
        tx.commit().await?;
        Ok(n)
    }

    async fn table_stats(&self) -> Result<Vec<TableStats>, StoreError> {
        let client = self.client().await?;
        let tables = client
            .query(
                "SELECT tablename::text, pg_total_relation_size(format('%I', tablename)::regclass)
                 FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename",
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(tables.len());
        for row in tables {
            let (table, bytes): (String, i64) = (row.get(0), row.get(1));
            // Table names come from the catalogue, not from input.
            let rows: i64 = client.query_one(&format!("SELECT count(*) FROM \"{table}\""), &[]).await?.get(0);
            let oldest = match DATED_TABLES.iter().find(|(t, _)| *t == table) {
                Some((_, column)) => client
                    .query_one(&format!("SELECT min({column})::bigint FROM \"{table}\""), &[])
                    .await?
                    .get::<_, Option<i64>>(0)
                    .map(from_millis),
                None => None,
            };
            out.push(TableStats { table, rows, bytes, oldest });
        }
        Ok(out)
    }

    async fn settle_scores(&self, mut contact_ids: Vec<i64>) -> Result<u64, StoreError> {
        // Locked in id order, as ingest locks them: no deadlock with a batch.
        contact_ids.sort_unstable();
        let now = (self.clock)();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let rules = self.rules.current();
        let mut new_id = || uuid::Uuid::now_v7().to_string();
        let mut planner =
            relance_core::plan::Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
        planner.set_sync(self.brevo_sync.clone());
        let mut changed = 0;
        for &id in &contact_ids {
            planner.load_contact(super::plan_io::load_locked(&tx, id).await?);
            changed += u64::from(planner.settle(id, now)?);
        }
        super::plan_io::write_plan(&tx, &planner.finish(), &[]).await?;
        tx.commit().await?;
        Ok(changed)
    }
}

/// See the SQLite twin: walk from the mark, stop at the first recent event.
async fn prune_raw<C: GenericClient>(c: &C, before: i64, limit: i64) -> Result<u64, StoreError> {
    let mark: i64 =
        c.query_opt("SELECT upto FROM retention_marks WHERE name = 'raw_payloads'", &[]).await?.map_or(0, |r| r.get(0));
    let walk = c.prepare_cached("SELECT id, received_at FROM events WHERE id > $1 ORDER BY id LIMIT $2").await?;
    let walked: Vec<(i64, i64)> =
        c.query(&walk, &[&mark, &limit]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
    let old = walked.iter().take_while(|(_, received)| *received < before).count();
    let Some(&(upto, _)) = walked[..old].last() else { return Ok(0) };
    let blank = c
        .prepare_cached(
            "UPDATE events SET raw = $1 WHERE id > $2 AND id <= $3 AND raw NOT IN ($1, '{\"erased\":true}')",
        )
        .await?;
    c.execute(&blank, &[&PRUNED_RAW, &mark, &upto]).await?;
    let save = c
        .prepare_cached(
            "INSERT INTO retention_marks (name, upto) VALUES ('raw_payloads', $1)
             ON CONFLICT (name) DO UPDATE SET upto = excluded.upto",
        )
        .await?;
    c.execute(&save, &[&upto]).await?;
    Ok(old as u64)
}

/// See the SQLite twin: finished jobs, and the Brevo sync's request log of the same age.
async fn prune_jobs<C: GenericClient>(c: &C, before: i64, limit: i64) -> Result<u64, StoreError> {
    let log = c
        .prepare_cached(
            "DELETE FROM brevo_sync_attempts WHERE id IN
               (SELECT id FROM brevo_sync_attempts WHERE at < $1 ORDER BY id LIMIT $2)",
        )
        .await?;
    let attempts = c.execute(&log, &[&before, &limit]).await?;
    let pick = c
        .prepare_cached(&format!(
            "SELECT id FROM jobs WHERE state IN ({FINISHED_JOB_STATES}) AND due_at < $1 AND updated_at < $1 LIMIT $2"
        ))
        .await?;
    let ids: Vec<String> = c.query(&pick, &[&before, &limit]).await?.iter().map(|r| r.get(0)).collect();
    if ids.is_empty() {
        return Ok(attempts);
    }
    for sql in ["DELETE FROM job_attempts WHERE job_id = ANY($1)", "DELETE FROM outbox WHERE job_id = ANY($1)"] {
        let stmt = c.prepare_cached(sql).await?;
        c.execute(&stmt, &[&ids]).await?;
    }
    let stmt = c.prepare_cached("DELETE FROM jobs WHERE id = ANY($1)").await?;
    Ok(c.execute(&stmt, &[&ids]).await?.max(attempts))
}
