//! Retention on SQLite: each prune is one small write through the single writer, so it
//! queues behind (and between) ingest batches instead of holding the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, from_millis, to_millis};
use crate::store::StoreError;
use crate::store::retention::{DATED_TABLES, FINISHED_JOB_STATES, Maintenance, PRUNED_RAW, PruneKind, TableStats};

#[async_trait]
impl Maintenance for SqliteStore {
    async fn prune(&self, kind: PruneKind, before: DateTime<Utc>, limit: usize) -> Result<u64, StoreError> {
        let (before, limit) = (to_millis(before), limit.max(1) as i64);
        self.write(move |conn, _, _| match kind {
            PruneKind::RawPayloads => prune_raw(conn, before, limit),
            PruneKind::Events => Ok(conn
                .prepare_cached(
                    // The oldest ids are the oldest events (ids follow the order of receipt), so
                    // the first `limit` rows by id are where expired ones are; no index on
                    // `received_at` needed. An event received out of order (a clock set back)
                    // waits for the events before it.
                    "DELETE FROM events WHERE id IN
                       (SELECT id FROM (SELECT id, received_at FROM events ORDER BY id LIMIT ?2)
                        WHERE received_at < ?1)",
                )?
                .execute(params![before, limit])? as u64),
            PruneKind::FinishedJobs => prune_jobs(conn, before, limit),
            PruneKind::RejectedDeliveries => Ok(conn
                .prepare_cached(
                    "DELETE FROM rejected_deliveries WHERE id IN
                       (SELECT id FROM rejected_deliveries WHERE last_received_at < ?1
                        ORDER BY last_received_at LIMIT ?2)",
                )?
                .execute(params![before, limit])? as u64),
            PruneKind::AuditLog => Ok(conn
                .prepare_cached(
                    "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE at < ?1 ORDER BY id LIMIT ?2)",
                )?
                .execute(params![before, limit])? as u64),
        })
        .await
    }

    async fn table_stats(&self) -> Result<Vec<TableStats>, StoreError> {
        self.read(table_stats).await
    }

    async fn settle_scores(&self, contact_ids: Vec<i64>) -> Result<u64, StoreError> {
        self.write(move |conn, ctx, now| {
            let rules = ctx.rules.current();
            let mut new_id = || uuid::Uuid::now_v7().to_string();
            let mut planner =
                relance_core::plan::Planner::new(&rules.engine, rules.version, &ctx.default_segment, &mut new_id);
            planner.set_sync(ctx.brevo_sync.clone());
            let mut changed = 0;
            for &id in &contact_ids {
                planner.load_contact(super::plan_io::load(conn, id)?);
                changed += u64::from(planner.settle(id, now)?);
            }
            super::plan_io::write_plan(conn, &planner.finish(), &[])?;
            Ok(changed)
        })
        .await
    }
}

/// Walks events in id order from where the last pass stopped, up to the first one
/// received at or after the cut-off, and blanks their raw payloads (an erased event
/// keeps its `{"erased":true}` marker).
fn prune_raw(conn: &Connection, before: i64, limit: i64) -> Result<u64, StoreError> {
    let mark: i64 = conn
        .prepare_cached("SELECT upto FROM retention_marks WHERE name = 'raw_payloads'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let walked = conn
        .prepare_cached("SELECT id, received_at FROM events WHERE id > ?1 ORDER BY id LIMIT ?2")?
        .query_map(params![mark, limit], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let old = walked.iter().take_while(|(_, received)| *received < before).count();
    let Some(&(upto, _)) = walked[..old].last() else { return Ok(0) };
    conn.prepare_cached(
        "UPDATE events SET raw = ?1 WHERE id > ?2 AND id <= ?3 AND raw NOT IN (?1, '{\"erased\":true}')",
    )?
    .execute(params![PRUNED_RAW, mark, upto])?;
    conn.prepare_cached(
        "INSERT INTO retention_marks (name, upto) VALUES ('raw_payloads', ?1)
         ON CONFLICT (name) DO UPDATE SET upto = excluded.upto",
    )?
    .execute([upto])?;
    Ok(old as u64)
}

/// Finished jobs both due and last changed before the cut-off (the due time narrows the
/// `jobs_due` index), with what refers to them.
/// Finished jobs with their attempts, and the Brevo contact sync's request log (the same
/// age: both record attempts); the larger of the two counts, so the pass goes on while
/// either has more.
fn prune_jobs(conn: &Connection, before: i64, limit: i64) -> Result<u64, StoreError> {
    let attempts = conn
        .prepare_cached(
            "DELETE FROM brevo_sync_attempts WHERE id IN
               (SELECT id FROM brevo_sync_attempts WHERE at < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![before, limit])? as u64;
    let ids: Vec<String> = conn
        .prepare_cached(&format!(
            "SELECT id FROM jobs WHERE state IN ({FINISHED_JOB_STATES}) AND due_at < ?1 AND updated_at < ?1 LIMIT ?2"
        ))?
        .query_map(params![before, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.is_empty() {
        return Ok(attempts);
    }
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Unavailable(e.into()))?;
    for sql in [
        "DELETE FROM job_attempts WHERE job_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM outbox WHERE job_id IN (SELECT value FROM json_each(?1))",
        "DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(?1))",
    ] {
        conn.prepare_cached(sql)?.execute([&ids])?;
    }
    Ok(conn.changes().max(attempts))
}

fn table_stats(conn: &Connection) -> Result<Vec<TableStats>, StoreError> {
    // dbstat counts the pages of each table and index; indexes are added to their table.
    let sizes = conn
        .prepare(
            "SELECT m.tbl_name, sum(s.pgsize) FROM dbstat s JOIN sqlite_schema m ON m.name = s.name
             WHERE m.tbl_name NOT LIKE 'sqlite_%' GROUP BY m.tbl_name ORDER BY m.tbl_name",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(sizes.len());
    for (table, bytes) in sizes {
        // Table names come from the schema itself, not from input.
        let rows = conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| r.get(0))?;
        let oldest = match DATED_TABLES.iter().find(|(t, _)| *t == table) {
            Some((_, column)) => conn
                .query_row(&format!("SELECT min({column}) FROM \"{table}\""), [], |r| r.get::<_, Option<i64>>(0))?
                .map(from_millis),
            None => None,
        };
        out.push(TableStats { table, rows, bytes, oldest });
    }
    Ok(out)
}
