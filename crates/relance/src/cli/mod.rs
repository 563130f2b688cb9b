//! The `relance` command line. Every command but `serve` works offline.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use relance_core::inbound::{BrevoOptions, parse_behavior, parse_brevo};
use relance_core::plan::memory::{MemoryRules, MemoryStore};
use relance_core::{Contact, Engine, RuleFormat, RuleSet, ScoreInputs};
use serde_json::{Value, json};

use crate::config::{Flags, Settings};
use crate::server::{Server, load_rules, open_store, shutdown_signal};
use crate::store::{EventQuery, system_clock};

/// Prints a line to standard output; a closed pipe (`relance … | head`) ends the command
/// quietly instead of panicking (see [`is_closed_pipe`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, $($arg)*).map_err(anyhow::Error::from)?;
    }};
}

// After `out!`: macros are in scope only below their definition.
mod access;
mod brevo;
mod db;
mod simulate;

use simulate::{backtest, simulate};

/// Whether an error is only the reader of our output going away (`| head`).
pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

#[derive(Parser)]
#[command(
    name = "relance",
    version,
    about = "Event-driven marketing automation: Brevo and website events in, scores, tags and follow-ups out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the webhook server.
    Serve(ServeArgs),
    /// Compute a lead score with the formula.
    Score(ScoreArgs),
    /// Validate, export rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Run events through the rules in memory and show what would happen.
    Simulate(SimulateArgs),
    /// Stored events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Contacts.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Create or upgrade the database schema, then exit (`--dry-run`: list what would run).
    Migrate(db::MigrateArgs),
    /// Read the configuration as `serve` would and report every problem (exit 1 on any).
    Check(CheckArgs),
    /// The database: size per table, pruning old data now.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Scores and tags in Brevo's contact attributes (`[brevo.sync]`): push now, create
    /// the attributes.
    #[command(subcommand)]
    Brevo(brevo::BrevoCommand),
    /// Copy a live SQLite database to a file (consistent; the server keeps running).
    Backup(BackupArgs),
    /// Restore a backup made by `relance backup` (refused while the database is served).
    Restore(RestoreArgs),
    /// People who sign in to the dashboard: add, list, disable, enable, new password.
    #[command(subcommand)]
    Users(access::UsersCommand),
    /// API keys for programs (Power Automate, the website): create, list, revoke.
    #[command(subcommand)]
    Keys(access::KeysCommand),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Where to write the copy (must not exist).
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    pub file: PathBuf,
    #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Restore over an existing database (kept beside as `<name>.before-restore-<time>`).
    #[arg(long)]
    pub replace: bool,
}

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// A relance.toml with settings (default: ./relance.toml when present). The
    /// environment overrides it, and the flags override both.
    #[arg(long, env = "RELANCE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on: host:port (127.0.0.1:8080, localhost:8092, 0.0.0.0:8080).
    /// Environment: RELANCE_BIND.
    #[arg(long)]
    pub bind: Option<String>,
    /// sqlite://FILE (default sqlite://relance.db, created if missing) or postgres://….
    /// Environment: RELANCE_DATABASE_URL.
    #[arg(long = "database")]
    pub database_url: Option<String>,
    /// A rules file (seed JSON or TOML); default: the six seed rules. Environment: RELANCE_RULES.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Segment given to contacts first seen through an event. Environment: RELANCE_DEFAULT_SEGMENT.
    #[arg(long)]
    pub default_segment: Option<String>,
    /// The URL Power Automate uses to reach this server (for /connector/swagger.json).
    /// Environment: RELANCE_PUBLIC_URL.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Count Brevo proxy (Apple MPP) opens as opens. Environment:
    /// RELANCE_PROXY_OPENS_ARE_OPENS=true.
    #[arg(long)]
    pub proxy_opens_are_opens: bool,
}

impl ServeArgs {
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let (file, flags) = self.layers();
        Settings::load(file, &flags)
    }

    /// The file (`--config`, else ./relance.toml when present) and the flags.
    pub fn layers(&self) -> (Option<&Path>, Flags) {
        let default_file = Path::new("relance.toml");
        let file = self.config.as_deref().or(default_file.exists().then_some(default_file));
        let flags = Flags {
            bind: self.bind.clone(),
            database_url: self.database_url.clone(),
            rules: self.rules.clone(),
            default_segment: self.default_segment.clone(),
            public_url: self.public_url.clone(),
            // Off means "not given": the layers below decide.
            proxy_opens_are_opens: self.proxy_opens_are_opens.then_some(true),
        };
        (file, flags)
    }
}

#[derive(Args)]
pub struct ScoreArgs {
    /// RFM score, 0 to 4 (`--rfm-score`, the seed's name, works too).
    #[arg(long, visible_alias = "rfm-score", allow_negative_numbers = true)]
    pub rfm: f64,
    /// Number of engagement events: opens, clicks, visits, forms (`--engagement-events`
    /// works too).
    #[arg(long, visible_alias = "engagement-events", default_value_t = 0, allow_negative_numbers = true)]
    pub engagement: i64,
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub purchases: i64,
    /// Days since the last purchase; omit if the contact never bought.
    #[arg(long, allow_negative_numbers = true)]
    pub days_since_purchase: Option<i64>,
    /// Print every term of the formula as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Check a rule file; exits 1 listing every problem.
    Validate { file: PathBuf },
    /// Store a rule file as the new active version in the database; running servers pick
    /// it up within seconds.
    Import {
        file: PathBuf,
        #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
    /// Print the rules in force in the database (the active version); with --rules FILE
    /// that file's rules, with --defaults the built-in six.
    Export {
        #[arg(long, conflicts_with = "defaults")]
        rules: Option<PathBuf>,
        /// The six built-in default rules, whatever the database holds.
        #[arg(long)]
        defaults: bool,
        #[arg(long, value_enum, default_value_t = ExportFormat::SeedJson)]
        format: ExportFormat,
        #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
        database_url: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    SeedJson,
    Toml,
}

#[derive(Args)]
pub struct SimulateArgs {
    /// Events, one JSON object per line, each with "source": "brevo" or "tracking".
    #[arg(long, required_unless_present = "against_history")]
    pub events: Option<PathBuf>,
    /// Backtest --rules against the events stored in the database, compared with the
    /// active rule set.
    #[arg(long, requires = "rules")]
    pub against_history: bool,
    /// With --against-history: only events received since (RFC 3339 or YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Starting contacts, one JSON object per line with the contact fields.
    #[arg(long)]
    pub contacts: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// Write stored events with the seed's log fields and ours.
    Export {
        #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
        database_url: String,
        #[arg(long, value_enum, default_value_t = EventsFormat::Json)]
        format: EventsFormat,
        /// Only events received at or after this time (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum ContactsCommand {
    /// Import contacts from the CRM's CSV export; nothing is imported if a row is bad,
    /// unless --skip-invalid.
    Import {
        file: PathBuf,
        #[arg(long)]
        skip_invalid: bool,
        #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
        database_url: String,
        /// ISO country of national phone numbers (FR: 06 12 34 56 78 → +33612345678).
        #[arg(long, env = "RELANCE_IMPORT_DEFAULT_COUNTRY")]
        default_country: Option<String>,
    },
    /// Why a contact has its score, tags and suppression, and what is pending for it.
    Explain {
        /// An email or a client code.
        key: String,
        #[arg(long = "database", env = "RELANCE_DATABASE_URL", default_value = crate::config::DEFAULT_DATABASE_URL)]
        database_url: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EventsFormat {
    Json,
    Ndjson,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            let server = Server::build(args.settings()?, system_clock()).await?;
            server.run(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(args) => score(args),
        Command::Rules(RulesCommand::Validate { file }) => validate(&file),
        Command::Rules(RulesCommand::Import { file, database_url }) => {
            let rules = load_rules(Some(&file))?;
            let settings = Settings { database_url, ..Settings::default() };
            let store =
                open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
            let new = crate::store::NewRuleSet {
                body: rules.to_seed_json(),
                hash: crate::live_rules::hash_rules(&rules),
                source: "cli".into(),
                replaced_version: None,
            };
            let audit = crate::store::audit::Audit::cli("rules import", crate::store::audit::AuditKind::Rules, "put")
                .summary(format!("imported from {}", file.display()));
            let saved = store.save_rule_set(new, audit).await;
            store.shutdown().await;
            let row = saved.map_err(|e| anyhow::anyhow!("{e}"))?;
            out!("{}: {} rule(s) stored as version {} (active)", file.display(), rules.rules().len(), row.version);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(RulesCommand::Export { rules, defaults, format, database_url }) => {
            let set = if defaults {
                RuleSet::defaults()
            } else if let Some(file) = rules.as_deref() {
                load_rules(Some(file))?
            } else {
                match crate::store::peek::active_rules(&database_url).await? {
                    Some((version, body)) => {
                        eprintln!("rules in force: version {version} of {}", crate::config::shown_url(&database_url));
                        RuleSet::parse(&body, RuleFormat::Json).map_err(|errors| {
                            anyhow::anyhow!("stored rule set version {version} is invalid: {}", errors[0])
                        })?
                    }
                    None => {
                        eprintln!(
                            "no rule set stored in {} (no database yet): these are the six built-in defaults",
                            crate::config::shown_url(&database_url)
                        );
                        RuleSet::defaults()
                    }
                }
            };
            let text = match format {
                ExportFormat::SeedJson => set.to_seed_json(),
                ExportFormat::Toml => set.to_toml(),
            };
            out!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulate(args) if args.against_history => backtest(args).await,
        Command::Simulate(args) => simulate(args),
        Command::Events(EventsCommand::Export { database_url, format, since, output }) => {
            export_events(&database_url, format, since.as_deref(), output.as_deref()).await
        }
        Command::Contacts(ContactsCommand::Import { file, skip_invalid, database_url, default_country }) => {
            let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let settings = Settings { database_url, ..Settings::default() };
            let store =
                open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
            let options = crate::import::ImportOptions { default_country };
            let audit =
                crate::store::audit::Audit::cli("contacts import", crate::store::audit::AuditKind::Contacts, "import")
                    .summary(format!("CSV import (skip_invalid={skip_invalid})"));
            let report = crate::import::import(&*store, &data, skip_invalid, &options, audit).await;
            store.shutdown().await;
            let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
            out!(
                "{} ({}, separator {:?}): {} created, {} updated, {} rejected{}",
                file.display(),
                report.encoding,
                report.separator,
                report.created,
                report.updated,
                report.rejected.len(),
                if report.imported { "" } else { " — nothing imported" }
            );
            for r in &report.rejected {
                eprintln!("  line {}: {}", r.line, r.reason);
            }
            Ok(if report.imported { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Contacts(ContactsCommand::Explain { key, database_url, json }) => {
            explain(&key, &database_url, json).await
        }
        Command::Backup(args) => {
            let database = sqlite_only(&args.database_url, "backup")?;
            let s = crate::ops::backup::backup(&database, &args.output)?;
            out!(
                "backed up {} to {} ({} bytes, schema {}): {} contacts, {} events, {} actions",
                database.display(),
                s.path.display(),
                s.bytes,
                s.schema_version,
                s.contacts,
                s.events,
                s.jobs
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(args) => {
            let database = sqlite_only(&args.database_url, "restore")?;
            let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            let s = crate::ops::backup::restore(&args.file, &database, args.replace, &stamp)?;
            out!(
                "restored {} into {}: {} contacts, {} events, {} actions (schema {}; `relance serve` migrates it if older)",
                args.file.display(),
                s.path.display(),
                s.contacts,
                s.events,
                s.jobs,
                s.schema_version
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate(args) => db::migrate(args).await,
        Command::Db(command) => db::run(command).await,
        Command::Brevo(command) => brevo::run(command).await,
        Command::Users(command) => access::users(command).await,
        Command::Keys(command) => access::keys(command).await,
        Command::Check(args) => db::check(args).await,
    }
}

fn score(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let inputs = ScoreInputs::parse(args.rfm, args.engagement, args.purchases, args.days_since_purchase)?;
    let b = inputs.breakdown();
    if args.json {
        out!("{}", serde_json::to_string_pretty(&b)?);
    } else {
        out!("{}", b.score);
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    match RuleSet::parse(&text, RuleFormat::detect(&file.to_string_lossy(), &text)) {
        Ok(set) => {
            out!("{}: {} rule(s), valid", file.display(), set.rules().len());
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{}: {} problem(s)", file.display(), errors.len());
            for e in errors {
                eprintln!("  - {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if !line.trim().is_empty() {
            lines.push((i + 1, line));
        }
    }
    Ok(lines)
}

async fn export_events(
    database_url: &str,
    format: EventsFormat,
    since: Option<&str>,
    output: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let since = since.map(since_flag).transpose()?;
    if !database_url.starts_with("postgres") {
        let path = crate::store::sqlite::path_from_url(database_url)?;
        anyhow::ensure!(path.exists(), "no database at {}", path.display());
    }
    let settings = Settings { database_url: database_url.to_owned(), ..Settings::default() };
    let store = open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = 0;
    let mut first = true;
    if matches!(format, EventsFormat::Json) {
        write!(out, "[")?;
    }
    loop {
        let page =
            store.events(EventQuery { since, after_seq: Some(after), limit: 5000, ..EventQuery::default() }).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for row in &page {
            match format {
                EventsFormat::Ndjson => writeln!(out, "{}", serde_json::to_string(row)?)?,
                EventsFormat::Json => {
                    write!(out, "{}\n  {}", if first { "" } else { "," }, serde_json::to_string(row)?)?;
                    first = false;
                }
            }
        }
    }
    if matches!(format, EventsFormat::Json) {
        writeln!(out, "\n]")?;
    }
    out.flush()?;
    store.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn explain(raw: &str, database_url: &str, as_json: bool) -> anyhow::Result<ExitCode> {
    let key = crate::store::ContactKey::parse(raw).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !database_url.starts_with("postgres") {
        let path = crate::store::sqlite::path_from_url(database_url)?;
        anyhow::ensure!(path.exists(), "no database at {}", path.display());
    }
    let settings = Settings { database_url: database_url.to_owned(), ..Settings::default() };
    let store = open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
    let found = crate::ops::explain::explain_contact(&*store, key, chrono::Utc::now(), &[]).await;
    store.shutdown().await;
    let Some(e) = found? else {
        eprintln!("no contact {raw:?}");
        return Ok(ExitCode::from(1));
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        serde_json::to_writer_pretty(&mut out, &e)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let c = &e.contact;
    let name = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
    writeln!(
        out,
        "{} / {}: segment {}, score {}",
        name("client_code"),
        name("email"),
        name("segment"),
        e.score.current
    )?;
    writeln!(out, "  {:>4}  starting score", e.score.baseline)?;
    for ch in &e.score.changes {
        let cause = ch.rule_id.as_deref().unwrap_or("(event)");
        writeln!(
            out,
            "  {:>+4}  {cause} at {} (event {})",
            ch.delta,
            ch.at.to_rfc3339(),
            ch.event_id.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out, "  ----\n  {:>4}  now", e.score.current)?;
    let tags: Vec<String> =
        e.tags.iter().map(|t| format!("{} ({})", t.tag, t.rule_id.as_deref().unwrap_or("set outside rules"))).collect();
    writeln!(out, "tags: {}", if tags.is_empty() { "none".into() } else { tags.join(", ") })?;
    match (e.suppression.email, e.suppression.sms) {
        (None, None) => writeln!(out, "suppression: none")?,
        (email, sms) => writeln!(
            out,
            "suppression: email {}, sms {}",
            email.map_or("allowed", |r| r.as_str()),
            sms.map_or("allowed", |r| r.as_str())
        )?,
    }
    for p in &e.pending_actions {
        writeln!(out, "pending: {} ({}) due {}", p.action_type, p.rule_id, p.due_at.to_rfc3339())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since`, with the accepted forms when it is neither.
pub(crate) fn since_flag(raw: &str) -> anyhow::Result<chrono::DateTime<Utc>> {
    crate::ops::parse_since(raw).map_err(|e| match e {
        crate::store::StoreError::Invalid { message, .. } => anyhow::anyhow!("--since: {message}"),
        other => anyhow::anyhow!("--since: {other}"),
    })
}

/// The SQLite file a backup command works on; PostgreSQL has its own tools.
fn sqlite_only(url: &str, what: &str) -> anyhow::Result<PathBuf> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "relance {what} copies the embedded SQLite database; for PostgreSQL use pg_dump / pg_restore \
             (docs/reliability.md, \"Backups\")"
        );
    }
    crate::store::sqlite::path_from_url(url)
}
