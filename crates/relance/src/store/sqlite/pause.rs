//! The kill switch on SQLite: paused rules, their jobs held and released.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{from_millis, to_millis};
use crate::store::StoreError;

/// What a held job records.
pub(crate) const HELD: &str = "held: rule paused";

pub(crate) fn pause(conn: &Connection, rule_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let now = to_millis(now);
    conn.prepare_cached("INSERT INTO paused_rules (rule_id, paused_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING")?
        .execute(params![rule_id, now])?;
    let held = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'held', last_error = ?1, updated_at = ?2
             WHERE rule_id = ?3 AND state IN ('pending', 'failed')",
        )?
        .execute(params![HELD, now, rule_id])?;
    Ok(held as u64)
}

pub(crate) fn resume(conn: &Connection, rule_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    conn.prepare_cached("DELETE FROM paused_rules WHERE rule_id = ?1")?.execute([rule_id])?;
    let released = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'pending', last_error = NULL, updated_at = ?1 WHERE rule_id = ?2 AND state = 'held'",
        )?
        .execute(params![to_millis(now), rule_id])?;
    Ok(released as u64)
}

pub(crate) fn paused(conn: &Connection) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT rule_id, paused_at FROM paused_rules ORDER BY rule_id")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, from_millis(r.get(1)?))))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The paused rules' ids, for the planner.
pub(crate) fn paused_ids(conn: &Connection) -> Result<Vec<String>, StoreError> {
    Ok(paused(conn)?.into_iter().map(|(id, _)| id).collect())
}
