//! Backups of the embedded SQLite database: a consistent copy taken while the server
//! keeps ingesting, and a restore that never lands on a database in use or from a file
//! that is not a sound Relance database. PostgreSQL has `pg_dump` / `pg_restore` (see
//! `docs/deploying.md`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use rusqlite::{Connection, OpenFlags};

use crate::store::sqlite::{lock, schema_version};

/// What a backup or a restore found in the file it wrote or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub schema_version: usize,
    pub contacts: i64,
    pub events: i64,
    pub jobs: i64,
}

/// Copies the live database at `database` to `output` with `VACUUM INTO`: one read
/// transaction, so the copy is the database as of one commit, and in WAL mode the
/// server's writer is not blocked while it runs. `output` must not exist.
pub fn backup(database: &Path, output: &Path) -> anyhow::Result<BackupSummary> {
    ensure!(database.exists(), "no database at {}", database.display());
    ensure!(!output.exists(), "{} exists already; backups never overwrite (choose a new name)", output.display());
    let conn = Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", database.display()))?;
    // Waits for a write in progress rather than failing at once.
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = output.to_str().with_context(|| format!("{} is not a UTF-8 path", output.display()))?;
    conn.execute("VACUUM INTO ?1", [target]).with_context(|| format!("writing {}", output.display()))?;
    check(output).with_context(|| format!("the backup {} does not check out", output.display()))
}

/// The name prefix of scheduled backups, followed by a UTC time stamp: they sort by time.
const SCHEDULED: &str = "relance-";

/// One scheduled backup into `dir` (created if missing), named by `stamp`
/// (`20261202T040000Z`), then the oldest scheduled ones beyond `keep` removed. Other files
/// in `dir` are never touched.
pub fn scheduled(database: &Path, dir: &Path, keep: usize, stamp: &str) -> anyhow::Result<BackupSummary> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let summary = backup(database, &dir.join(format!("{SCHEDULED}{stamp}.db")))?;
    let mut taken: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(SCHEDULED) && n.ends_with(".db"))
        })
        .collect();
    taken.sort();
    let excess = taken.len().saturating_sub(keep.max(1));
    for old in &taken[..excess] {
        std::fs::remove_file(old).with_context(|| format!("removing the old backup {}", old.display()))?;
    }
    Ok(summary)
}

/// Restores `backup` over `database`: refused while a `relance serve` holds it, and
/// unless the backup passes SQLite's integrity check and has a schema this build can
/// open. An existing database is kept beside it (`<name>.before-restore-<time>`) and
/// only replaced with `replace = true`.
pub fn restore(backup: &Path, database: &Path, replace: bool, stamp: &str) -> anyhow::Result<BackupSummary> {
    if lock::is_served(database)? {
        bail!("{} is in use by a running relance serve; stop it first", database.display());
    }
    let summary = check(backup).with_context(|| format!("{} is not a sound Relance backup", backup.display()))?;
    if database.exists() {
        ensure!(
            replace,
            "{} exists; pass --replace to restore over it (it is kept beside as a copy)",
            database.display()
        );
        let mut kept = database.as_os_str().to_owned();
        kept.push(format!(".before-restore-{stamp}"));
        std::fs::rename(database, &kept).with_context(|| format!("moving {} aside", database.display()))?;
    }
    // A write-ahead log left by the database that was there would be replayed onto the
    // restored file: it goes too.
    for suffix in ["-wal", "-shm"] {
        let mut side = database.as_os_str().to_owned();
        side.push(suffix);
        let side = PathBuf::from(side);
        if side.exists() {
            std::fs::remove_file(&side).with_context(|| format!("removing {}", side.display()))?;
        }
    }
    let mut partial = database.as_os_str().to_owned();
    partial.push(".restoring");
    let partial = PathBuf::from(partial);
    std::fs::copy(backup, &partial).with_context(|| format!("copying to {}", partial.display()))?;
    std::fs::rename(&partial, database).with_context(|| format!("moving into {}", database.display()))?;
    Ok(BackupSummary { path: database.to_owned(), ..summary })
}

/// Opens a backup read-only and checks it: integrity, a Relance schema this build knows,
/// and what it holds.
pub fn check(path: &Path) -> anyhow::Result<BackupSummary> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    ensure!(integrity == "ok", "integrity check failed: {integrity}");
    let version = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    ensure!(version > 0, "not a Relance database (no schema)");
    ensure!(
        version <= schema_version(),
        "made by a newer Relance (schema {version}; this build knows up to {}): upgrade first",
        schema_version()
    );
    let count = |table: &str| -> anyhow::Result<i64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .with_context(|| format!("not a Relance database (no {table} table)"))
    };
    Ok(BackupSummary {
        path: path.to_owned(),
        bytes: std::fs::metadata(path)?.len(),
        schema_version: version,
        contacts: count("contacts")?,
        events: count("events")?,
        jobs: count("jobs")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_backups_keep_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relance.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE contacts (x); CREATE TABLE events (x); CREATE TABLE jobs (x); PRAGMA user_version = 1;",
        )
        .unwrap();
        drop(conn);
        let backups = dir.path().join("backups");
        std::fs::create_dir_all(&backups).unwrap();
        std::fs::write(backups.join("notes.txt"), "mine").unwrap();
        for stamp in ["20261201T000000Z", "20261202T000000Z", "20261203T000000Z"] {
            scheduled(&db, &backups, 2, stamp).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&backups)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["notes.txt", "relance-20261202T000000Z.db", "relance-20261203T000000Z.db"]);
    }

    #[test]
    fn a_file_that_is_not_a_relance_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"not sqlite at all").unwrap();
        assert!(check(&junk).is_err());
        let empty = dir.path().join("empty.db");
        Connection::open(&empty).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        let err = check(&empty).unwrap_err().to_string();
        assert!(err.contains("no schema"), "{err}");
        let target = dir.path().join("relance.db");
        let err = restore(&empty, &target, false, "x").unwrap_err();
        assert!(format!("{err:#}").contains("not a sound Relance backup"), "{err:#}");
        assert!(!target.exists(), "nothing written");
    }
}
