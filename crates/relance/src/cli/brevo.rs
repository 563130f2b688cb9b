//! `relance brevo …`: the contact attributes Relance pushes to Brevo (`[brevo.sync]`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Subcommand;
use relance_core::RuleSet;

use crate::config::{Flags, Settings};
use crate::dispatch::brevo_sync::{AttributeCreated, ContactSync, create_attribute};
use crate::server::open_store;
use crate::store::system_clock;

#[derive(Subcommand)]
pub enum BrevoCommand {
    /// Push queued contacts to Brevo now (`--all`: every contact with an email). An
    /// interrupted run resumes with `relance brevo sync`: what was queued stays queued.
    Sync {
        #[arg(long)]
        all: bool,
        /// A relance.toml (default: ./relance.toml when present); the environment
        /// overrides it.
        #[arg(long, env = "RELANCE_CONFIG")]
        config: Option<std::path::PathBuf>,
        #[arg(long = "database")]
        database_url: Option<String>,
    },
    /// The Brevo attributes the mapping needs (name, type); `--create` creates them.
    Attributes {
        #[arg(long)]
        create: bool,
        #[arg(long, env = "RELANCE_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

fn load(config: Option<&std::path::Path>, database_url: Option<String>) -> anyhow::Result<Settings> {
    let default_file = std::path::Path::new("relance.toml");
    let file = config.or(default_file.exists().then_some(default_file));
    Settings::load(file, &Flags { database_url, ..Flags::default() })
}

pub async fn run(command: BrevoCommand) -> anyhow::Result<ExitCode> {
    match command {
        BrevoCommand::Attributes { create, config } => attributes(&load(config.as_deref(), None)?, create).await,
        BrevoCommand::Sync { all, config, database_url } => sync(&load(config.as_deref(), database_url)?, all).await,
    }
}

async fn attributes(settings: &Settings, create: bool) -> anyhow::Result<ExitCode> {
    let brevo = settings.dispatch.brevo.as_ref();
    let Some(sync) = brevo.and_then(|b| b.sync.as_ref()) else {
        anyhow::bail!("[brevo.sync] maps no attribute (and RELANCE_BREVO_API_KEY must be set): nothing to create");
    };
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<24} {:<8} FIELD", "ATTRIBUTE", "TYPE")?;
    for (name, field) in &sync.fields.attributes {
        let ty = field.brevo_type();
        write!(out, "{name:<24} {ty:<8} {}", field.path())?;
        if create && let Some(brevo) = brevo {
            match create_attribute(brevo, settings.dispatch.http_timeout, name, ty).await {
                AttributeCreated::Created => write!(out, "  created")?,
                AttributeCreated::Exists(_) => write!(out, "  already in Brevo")?,
                AttributeCreated::Failed(e) => {
                    failed = true;
                    write!(out, "  FAILED: {e}")?
                }
            }
        }
        writeln!(out)?;
    }
    if !create {
        writeln!(out, "\nCreate them in Brevo (Contacts → Settings → Contact attributes), or run with --create.")?;
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn sync(settings: &Settings, all: bool) -> anyhow::Result<ExitCode> {
    super::db::ensure_exists(&settings.database_url)?;
    let store = open_store(settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await?;
    let dispatch = Arc::new(settings.dispatch.clone());
    let Some(worker) = ContactSync::new(store.clone(), dispatch, system_clock())? else {
        anyhow::bail!("[brevo.sync] maps no attribute (and RELANCE_BREVO_API_KEY must be set): nothing to push");
    };
    if all {
        let (mut after, mut queued) = (0, 0);
        while let Some((last, n)) = store.queue_all_brevo_sync(after, 1000).await? {
            (after, queued) = (last, queued + n);
        }
        eprintln!("{queued} contacts queued for Brevo");
    }
    let total = store.brevo_sync_status().await?.pending;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} contacts pushed, {eta} left")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Contacts pushed by the server within the last min_interval, or waiting for a retry,
    // are not claimable yet: wait a little past the interval, then leave them to it.
    let patience = settings
        .dispatch
        .brevo
        .as_ref()
        .and_then(|b| b.sync.as_ref())
        .map_or(Duration::from_secs(60), |s| s.min_interval)
        + Duration::from_secs(15);
    let mut idle_since = Instant::now();
    loop {
        let n = worker.pass().await?;
        let pending = store.brevo_sync_status().await?.pending;
        bar.set_position(total.saturating_sub(pending));
        if pending == 0 {
            break;
        }
        if n > 0 {
            idle_since = Instant::now();
        } else if idle_since.elapsed() > patience {
            break;
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    bar.finish_and_clear();
    let status = store.brevo_sync_status().await?;
    println!(
        "pushed: {} done, {} not in Brevo, {} without email, {} failed, {} still pending",
        status.done, status.not_in_brevo, status.no_email, status.failed, status.pending
    );
    for p in store.brevo_sync_problems(20).await? {
        println!("  {} {}: {}", p.status, p.email.as_deref().unwrap_or("(no email)"), p.error.as_deref().unwrap_or(""));
    }
    store.shutdown().await;
    Ok(if status.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
