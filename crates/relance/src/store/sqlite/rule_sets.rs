//! Rule-set versions and rules-file imports on SQLite.

use rusqlite::{Connection, OptionalExtension, params};

use super::{from_millis, to_millis};
use crate::store::{NewRuleSet, RuleSetRow, StoreError};

const COLUMNS: &str = "version, hash, body, created_at, active, source, activated_via, replaced_version, activated_seq";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RuleSetRow> {
    Ok(RuleSetRow {
        version: r.get(0)?,
        hash: r.get(1)?,
        body: r.get(2)?,
        created_at: from_millis(r.get(3)?),
        active: r.get::<_, i64>(4)? == 1,
        source: r.get(5)?,
        activated_via: r.get(6)?,
        replaced_version: r.get(7)?,
        activated_seq: r.get(8)?,
    })
}

pub(super) fn active(conn: &Connection) -> Result<Option<RuleSetRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM rule_sets WHERE active = 1"))?
        .query_row([], row)
        .optional()?)
}

pub(super) fn save(
    conn: &Connection,
    new: &NewRuleSet,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<RuleSetRow, StoreError> {
    conn.prepare_cached("UPDATE rule_sets SET active = 0 WHERE active = 1")?.execute([])?;
    Ok(conn
        .prepare_cached(&format!(
            "INSERT INTO rule_sets (hash, body, created_at, active, source, activated_via, replaced_version, activated_seq)
             VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, (SELECT COALESCE(max(activated_seq), 0) + 1 FROM rule_sets))
             RETURNING {COLUMNS}"
        ))?
        .query_row(params![new.hash, new.body, to_millis(now), new.source, new.replaced_version], row)?)
}

pub(super) fn activate(conn: &Connection, version: i64, via: &str) -> Result<RuleSetRow, StoreError> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM rule_sets WHERE version = ?1"))?
        .query_row([version], row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("rule-set version {version}")))?;
    conn.prepare_cached("UPDATE rule_sets SET active = (version = ?1)")?.execute([version])?;
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE rule_sets SET activated_via = ?2,
                 activated_seq = (SELECT COALESCE(max(activated_seq), 0) + 1 FROM rule_sets)
             WHERE version = ?1 RETURNING activated_seq",
        )?
        .query_row(params![version, via], |r| r.get(0))?;
    Ok(RuleSetRow { active: true, activated_via: via.to_owned(), activated_seq: seq, ..found })
}

pub(super) fn versions(conn: &Connection) -> Result<Vec<RuleSetRow>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM rule_sets ORDER BY version DESC"))?
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn file_hash(conn: &Connection, path: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT hash FROM rules_files WHERE path = ?1")?
        .query_row([path], |r| r.get(0))
        .optional()?)
}

pub(super) fn record_file(
    conn: &Connection,
    path: &str,
    hash: &str,
    version: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO rules_files (path, hash, version, imported_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, version = excluded.version,
                                          imported_at = excluded.imported_at",
    )?
    .execute(params![path, hash, version, to_millis(now)])?;
    Ok(())
}
