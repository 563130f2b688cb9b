//! Rule-set versions and rules-file imports on PostgreSQL. Writers lock `rule_sets`, so
//! that two instances saving or activating at once cannot leave two versions active.

use deadpool_postgres::GenericClient;

use super::{from_millis, to_millis};
use crate::store::audit::Audit;
use crate::store::{NewRuleSet, RuleSetRow, StoreError};

const COLUMNS: &str = "version, hash, body, created_at, active, source, activated_via, replaced_version, activated_seq";

fn row(r: &tokio_postgres::Row) -> RuleSetRow {
    RuleSetRow {
        version: r.get(0),
        hash: r.get(1),
        body: r.get(2),
        created_at: from_millis(r.get(3)),
        active: r.get(4),
        source: r.get(5),
        activated_via: r.get(6),
        replaced_version: r.get(7),
        activated_seq: r.get(8),
    }
}

pub(super) async fn active(c: &impl GenericClient) -> Result<Option<RuleSetRow>, StoreError> {
    let stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM rule_sets WHERE active")).await?;
    Ok(c.query_opt(&stmt, &[]).await?.map(|r| row(&r)))
}

pub(super) async fn save(
    client: &mut deadpool_postgres::Client,
    new: &NewRuleSet,
    now: chrono::DateTime<chrono::Utc>,
    audit: &Audit,
) -> Result<RuleSetRow, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("LOCK TABLE rule_sets IN EXCLUSIVE MODE", &[]).await?;
    tx.execute("UPDATE rule_sets SET active = FALSE WHERE active", &[]).await?;
    let saved = tx
        .query_one(
            &format!(
                "INSERT INTO rule_sets (hash, body, created_at, active, source, activated_via, replaced_version,
                                        activated_seq)
                 VALUES ($1, $2, $3, TRUE, $4, $4, $5, (SELECT COALESCE(max(activated_seq), 0) + 1 FROM rule_sets))
                 RETURNING {COLUMNS}"
            ),
            &[&new.hash, &new.body, &to_millis(now), &new.source, &new.replaced_version],
        )
        .await?;
    let saved = row(&saved);
    super::access::write_audit(&tx, audit, Some(format!("rule_set:v{}", saved.version)), now).await?;
    tx.commit().await?;
    Ok(saved)
}

pub(super) async fn activate(
    client: &mut deadpool_postgres::Client,
    version: i64,
    via: &str,
    now: chrono::DateTime<chrono::Utc>,
    audit: &Audit,
) -> Result<RuleSetRow, StoreError> {
    let tx = client.transaction().await?;
    tx.execute("LOCK TABLE rule_sets IN EXCLUSIVE MODE", &[]).await?;
    let found = tx
        .query_opt(&format!("SELECT {COLUMNS} FROM rule_sets WHERE version = $1"), &[&version])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("rule-set version {version}")))?;
    tx.execute("UPDATE rule_sets SET active = (version = $1)", &[&version]).await?;
    let seq: i64 = tx
        .query_one(
            "UPDATE rule_sets SET activated_via = $2,
                 activated_seq = (SELECT COALESCE(max(activated_seq), 0) + 1 FROM rule_sets)
             WHERE version = $1 RETURNING activated_seq",
            &[&version, &via],
        )
        .await?
        .get(0);
    super::access::write_audit(&tx, audit, Some(format!("rule_set:v{version}")), now).await?;
    tx.commit().await?;
    Ok(RuleSetRow { active: true, activated_via: via.to_owned(), activated_seq: seq, ..row(&found) })
}

pub(super) async fn versions(c: &impl GenericClient) -> Result<Vec<RuleSetRow>, StoreError> {
    let rows = c.query(&format!("SELECT {COLUMNS} FROM rule_sets ORDER BY version DESC"), &[]).await?;
    Ok(rows.iter().map(row).collect())
}

pub(super) async fn file_hash(c: &impl GenericClient, path: &str) -> Result<Option<String>, StoreError> {
    Ok(c.query_opt("SELECT hash FROM rules_files WHERE path = $1", &[&path]).await?.map(|r| r.get(0)))
}

pub(super) async fn record_file(
    c: &impl GenericClient,
    path: &str,
    hash: &str,
    version: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO rules_files (path, hash, version, imported_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, version = excluded.version,
                                          imported_at = excluded.imported_at",
        &[&path, &hash, &version, &to_millis(now)],
    )
    .await?;
    Ok(())
}
