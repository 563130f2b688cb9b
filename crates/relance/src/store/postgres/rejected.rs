//! Rejected delivery items on PostgreSQL.

use deadpool_postgres::GenericClient;

use super::{from_millis, to_millis};
use crate::store::StoreError;
use crate::store::rejected::{NewRejected, RejectedDelivery};

pub(super) async fn record(
    client: &impl GenericClient,
    items: &[NewRejected],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO rejected_deliveries
                 (payload_hash, source, first_received_at, last_received_at, times, field, error, payload)
             SELECT h, s, $6, $6, 1, f, e, p
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS t(h, s, f, e, p)
             ON CONFLICT (payload_hash) DO UPDATE
                 SET last_received_at = excluded.last_received_at,
                     times = rejected_deliveries.times + 1",
        )
        .await?;
    // One row per hash: ON CONFLICT cannot touch the same row twice in one statement.
    let mut seen = std::collections::HashSet::new();
    let items: Vec<(&NewRejected, String)> =
        items.iter().map(|i| (i, i.hash())).filter(|(_, h)| seen.insert(h.clone())).collect();
    let hashes: Vec<&str> = items.iter().map(|(_, h)| h.as_str()).collect();
    let sources: Vec<&str> = items.iter().map(|(i, _)| i.source).collect();
    let fields: Vec<&str> = items.iter().map(|(i, _)| i.field.as_str()).collect();
    let errors: Vec<&str> = items.iter().map(|(i, _)| i.error.as_str()).collect();
    let payloads: Vec<&str> = items.iter().map(|(i, _)| i.payload.as_str()).collect();
    client.execute(&stmt, &[&hashes, &sources, &fields, &errors, &payloads, &to_millis(now)]).await?;
    Ok(())
}

pub(super) async fn newest(client: &impl GenericClient, limit: usize) -> Result<Vec<RejectedDelivery>, StoreError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, source, first_received_at, last_received_at, times, field, error, payload
             FROM rejected_deliveries ORDER BY last_received_at DESC, id DESC LIMIT $1",
        )
        .await?;
    let rows = client.query(&stmt, &[&(limit as i64)]).await?;
    Ok(rows
        .iter()
        .map(|r| RejectedDelivery {
            id: r.get(0),
            source: r.get(1),
            first_received_at: from_millis(r.get(2)),
            last_received_at: from_millis(r.get(3)),
            times: r.get(4),
            field: r.get(5),
            error: r.get(6),
            payload: r.get(7),
        })
        .collect())
}
