//! The kill switch on PostgreSQL: paused rules, their jobs held and released.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;

use super::{from_millis, to_millis};
use crate::store::StoreError;

pub(crate) const HELD: &str = "held: rule paused";

pub(crate) const PAUSED_SQL: &str = "SELECT rule_id, paused_at FROM paused_rules ORDER BY rule_id";

pub(crate) async fn pause<C: GenericClient>(c: &C, rule_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let now = to_millis(now);
    let insert = c
        .prepare_cached("INSERT INTO paused_rules (rule_id, paused_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .await?;
    c.execute(&insert, &[&rule_id, &now]).await?;
    let hold = c
        .prepare_cached(
            "UPDATE jobs SET state = 'held', last_error = $1, updated_at = $2
             WHERE rule_id = $3 AND state IN ('pending', 'failed')",
        )
        .await?;
    Ok(c.execute(&hold, &[&HELD, &now, &rule_id]).await?)
}

pub(crate) async fn resume<C: GenericClient>(c: &C, rule_id: &str, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let delete = c.prepare_cached("DELETE FROM paused_rules WHERE rule_id = $1").await?;
    c.execute(&delete, &[&rule_id]).await?;
    let release = c
        .prepare_cached(
            "UPDATE jobs SET state = 'pending', last_error = NULL, updated_at = $1 WHERE rule_id = $2 AND state = 'held'",
        )
        .await?;
    Ok(c.execute(&release, &[&to_millis(now), &rule_id]).await?)
}

pub(crate) async fn paused<C: GenericClient>(c: &C) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
    let stmt = c.prepare_cached(PAUSED_SQL).await?;
    Ok(c.query(&stmt, &[]).await?.iter().map(|r| (r.get(0), from_millis(r.get(1)))).collect())
}
