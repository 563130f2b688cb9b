//! `relance db …` and `relance migrate`: the database's size, pruning old data now, and
//! the schema.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use relance_core::RuleSet;

use crate::config::{Flags, Settings};
use crate::server::open_store;
use crate::store::system_clock;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Rows, bytes on disk and the oldest row of every table.
    Stats {
        #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
        database_url: String,
        #[arg(long)]
        json: bool,
    },
    /// Run one retention pass now, with the `[retention]` settings `serve` would use.
    Prune {
        /// A relance.toml (default: ./relance.toml when present); the environment
        /// overrides it.
        #[arg(long, env = "RELANCE_CONFIG")]
        config: Option<std::path::PathBuf>,
        #[arg(long = "database")]
        database_url: Option<String>,
    },
}

#[derive(Args)]
pub struct MigrateArgs {
    #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// List the migrations that would run, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Stats { database_url, json } => stats(&database_url, json).await,
        DbCommand::Prune { config, database_url } => {
            let default_file = std::path::Path::new("relance.toml");
            let file = config.as_deref().or(default_file.exists().then_some(default_file));
            let settings = Settings::load(file, &Flags { database_url, ..Flags::default() })?;
            ensure_exists(&settings.database_url)?;
            let store =
                open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
            let report = crate::ops::retention::prune_pass(
                &*store,
                &settings.retention,
                chrono::Utc::now(),
                || false,
                |_, _| {},
            )
            .await;
            store.shutdown().await;
            let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
            if report.pruned.is_empty() {
                out!("nothing to prune: [retention] keeps everything");
            }
            for (kind, n) in &report.pruned {
                out!("{kind}: {n} pruned");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let shown = crate::config::shown_url(&args.database_url);
    if args.dry_run {
        let status = crate::store::peek::schema(&args.database_url).await?;
        if status.is_newer() {
            eprintln!(
                "{shown} has schema {} but this build knows {}: it was migrated by a newer relance; \
                 run that version (or restore a backup made before the upgrade)",
                status.current,
                status.known.len()
            );
            return Ok(ExitCode::from(1));
        }
        let pending = status.pending();
        if !status.exists {
            out!("{shown} does not exist yet: `relance migrate` creates it with {} migration(s):", pending.len());
        } else if pending.is_empty() {
            out!("{shown} is up to date (schema {})", status.current);
            return Ok(ExitCode::SUCCESS);
        } else {
            out!("{shown} has schema {}; `relance migrate` would run {}:", status.current, pending.len());
        }
        for (i, name) in pending.iter().enumerate() {
            out!("  {:>3}  {name}", status.current + i + 1);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let before = crate::store::peek::schema(&args.database_url).await.ok();
    let settings = Settings { database_url: args.database_url, ..Settings::default() };
    let store = open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
    store.shutdown().await;
    match before {
        Some(s) if !s.pending().is_empty() => {
            out!("database {shown}: {} migration(s) applied, schema {}", s.pending().len(), s.known.len())
        }
        _ => out!("database {shown} is up to date"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn check(args: super::CheckArgs) -> anyhow::Result<ExitCode> {
    use crate::ops::check::Level;
    let (file, flags) = args.serve.layers();
    let findings = crate::ops::check::check(file, &flags).await;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            let mark = match f.level {
                Level::Ok => "ok     ",
                Level::Warning => "warning",
                Level::Problem => "PROBLEM",
            };
            out!("{mark}  {:<16} {}", f.subject, f.message);
        }
    }
    let problems = findings.iter().filter(|f| f.level == Level::Problem).count();
    if problems > 0 {
        eprintln!("{problems} problem(s): relance serve would fail or run unsafely");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ensure_exists(url: &str) -> anyhow::Result<()> {
    if !url.starts_with("postgres") {
        let path = crate::store::sqlite::path_from_url(url)?;
        anyhow::ensure!(path.exists(), "no database at {}", path.display());
    }
    Ok(())
}

async fn stats(database_url: &str, json: bool) -> anyhow::Result<ExitCode> {
    ensure_exists(database_url)?;
    let settings = Settings { database_url: database_url.to_owned(), ..Settings::default() };
    let store = open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
    let tables = store.table_stats().await;
    store.shutdown().await;
    let tables = tables.map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        out!("{}", serde_json::to_string_pretty(&tables)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!("{:<22} {:>12} {:>12}  oldest row", "table", "rows", "bytes");
    for t in &tables {
        let oldest = t.oldest.map_or_else(|| "-".to_owned(), |at| at.format("%Y-%m-%d %H:%M UTC").to_string());
        out!("{:<22} {:>12} {:>12}  {oldest}", t.table, t.rows, human_bytes(t.bytes));
    }
    let (rows, bytes) = tables.iter().fold((0, 0), |(r, b), t| (r + t.rows, b + t.bytes));
    out!("{:<22} {:>12} {:>12}", "total", rows, human_bytes(bytes));
    if let Some(events) = tables.iter().find(|t| t.table == "events").filter(|t| t.rows > 0) {
        out!("bytes per stored event (events table and its indexes): {}", events.bytes / events.rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_a_person_would_write_them() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(14 * 1024 * 1024 * 1024), "14.0 GiB");
    }
}
