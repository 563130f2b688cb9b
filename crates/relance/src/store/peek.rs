//! Reading the rules in force from a database without opening it as a store: no writer,
//! no migration, nothing created. `relance rules export` uses it, so that it works beside
//! a running server and never makes an empty database where there was none.

use anyhow::Context;

use super::sqlite::path_from_url;

/// The active rule set's version and body (seed JSON), or `None` when the database does
/// not exist yet or holds no rule set.
pub async fn active_rules(url: &str) -> anyhow::Result<Option<(i64, String)>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let client = connect(url).await?;
        let table = client.query_one("SELECT to_regclass('rule_sets') IS NOT NULL", &[]).await?;
        if !table.get::<_, bool>(0) {
            return Ok(None);
        }
        let row = client.query_opt("SELECT version, body FROM rule_sets WHERE active", &[]).await?;
        return Ok(row.map(|r| (r.get(0), r.get(1))));
    }
    let path = path_from_url(url)?;
    if !path.exists() {
        return Ok(None);
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<Option<(i64, String)>> {
        let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {} read-only", path.display()))?;
        let has_table: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'rule_sets'",
            [],
            |r| r.get(0),
        )?;
        if !has_table {
            return Ok(None);
        }
        use rusqlite::OptionalExtension as _;
        Ok(conn
            .query_row("SELECT version, body FROM rule_sets WHERE active = 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    })
    .await?
}

/// One short-lived connection, for a read.
async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let mut config: tokio_postgres::Config = url.parse().context("not a valid postgres:// URL")?;
    config.connect_timeout(std::time::Duration::from_secs(5));
    let (client, conn) =
        config.connect(tokio_postgres::NoTls).await.map_err(|e| super::postgres::unreachable(url, &e))?;
    tokio::spawn(conn);
    Ok(client)
}

/// A database's schema against this build's migrations.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaStatus {
    /// Whether there is a database at all (a missing SQLite file is created on first use).
    pub exists: bool,
    /// Migrations already applied.
    pub current: usize,
    /// Every migration this build knows, in order.
    pub known: Vec<&'static str>,
}

impl SchemaStatus {
    /// What `relance migrate` would run; empty when up to date.
    pub fn pending(&self) -> &[&'static str] {
        self.known.get(self.current..).unwrap_or(&[])
    }

    /// The database was migrated by a newer build.
    pub fn is_newer(&self) -> bool {
        self.current > self.known.len()
    }
}

/// The schema version of a database, read without changing it.
pub async fn schema(url: &str) -> anyhow::Result<SchemaStatus> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let client = connect(url).await?;
        let known = super::postgres::migration_names();
        let table = client.query_one("SELECT to_regclass('relance_migrations') IS NOT NULL", &[]).await?;
        if !table.get::<_, bool>(0) {
            return Ok(SchemaStatus { exists: true, current: 0, known });
        }
        let current: i32 =
            client.query_one("SELECT COALESCE(max(version), 0) FROM relance_migrations", &[]).await?.get(0);
        return Ok(SchemaStatus { exists: true, current: current.max(0) as usize, known });
    }
    let path = path_from_url(url)?;
    let known = super::sqlite::migration_names();
    if !path.exists() {
        return Ok(SchemaStatus { exists: false, current: 0, known });
    }
    tokio::task::spawn_blocking(move || -> anyhow::Result<SchemaStatus> {
        let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {} read-only", path.display()))?;
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok(SchemaStatus { exists: true, current: current.max(0) as usize, known })
    })
    .await?
}
