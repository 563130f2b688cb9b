//! Rejected delivery items on SQLite.

use rusqlite::{Connection, params};

use super::{from_millis, to_millis};
use crate::store::StoreError;
use crate::store::rejected::{NewRejected, RejectedDelivery};

pub(super) fn record(
    conn: &Connection,
    items: &[NewRejected],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO rejected_deliveries
             (payload_hash, source, first_received_at, last_received_at, times, field, error, payload)
         VALUES (?1, ?2, ?3, ?3, 1, ?4, ?5, ?6)
         ON CONFLICT (payload_hash) DO UPDATE SET last_received_at = excluded.last_received_at, times = times + 1",
    )?;
    for item in items {
        stmt.execute(params![item.hash(), item.source, to_millis(now), item.field, item.error, item.payload])?;
    }
    Ok(())
}

pub(super) fn newest(conn: &Connection, limit: usize) -> Result<Vec<RejectedDelivery>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, source, first_received_at, last_received_at, times, field, error, payload
         FROM rejected_deliveries ORDER BY last_received_at DESC, id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok(RejectedDelivery {
                id: r.get(0)?,
                source: r.get(1)?,
                first_received_at: from_millis(r.get(2)?),
                last_received_at: from_millis(r.get(3)?),
                times: r.get(4)?,
                field: r.get(5)?,
                error: r.get(6)?,
                payload: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
