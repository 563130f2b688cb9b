//! `relance users …` and `relance keys …`: people and programs, managed on the server's
//! machine (the database is opened directly, as by `relance migrate`). Every change is
//! in the audit log as `cli:<operating-system user>`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::Subcommand;
use relance_core::RuleSet;

use crate::access::Role;
use crate::server::open_store;
use crate::store::audit::{Audit, AuditKind};
use crate::store::{SharedStore, system_clock};

/// Which database: the one `serve` would use (`--config`, `RELANCE_CONFIG` or
/// ./relance.toml, then `RELANCE_DATABASE_URL`), or `--database`.
#[derive(clap::Args, Debug)]
pub struct Target {
    #[arg(long, env = "RELANCE_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[arg(long = "database")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a person who signs in to the dashboard. Asks for a password on a terminal
    /// (empty: one is generated); otherwise, or with --generate, one is generated. A
    /// generated password is shown once.
    Add {
        name: String,
        #[arg(long, value_parser = parse_user_role)]
        role: Role,
        /// Generate the password instead of asking for one.
        #[arg(long)]
        generate: bool,
        /// Read the password from the first line of standard input.
        #[arg(long, conflicts_with = "generate")]
        password_stdin: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Users, their role and state.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Disable a user: their sessions end at once on every instance.
    Disable {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Enable a disabled user again (and lift a sign-in lock).
    Enable {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set a new password (asked, read from stdin, or generated); ends the user's sessions.
    Passwd {
        name: String,
        #[arg(long)]
        generate: bool,
        #[arg(long, conflicts_with = "generate")]
        password_stdin: bool,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a program (shown once): viewer, editor, admin, or ingest
    /// (`/webhook/*` only).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: Role,
        #[command(flatten)]
        target: Target,
    },
    /// Keys: name, role, prefix, created, last used, revoked.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a key: refused at once on every instance.
    Revoke {
        name: String,
        #[command(flatten)]
        target: Target,
    },
}

fn parse_user_role(raw: &str) -> Result<Role, String> {
    match raw.parse::<Role>()? {
        Role::Ingest => Err("a person is a viewer, an editor or an admin (ingest is for API keys)".into()),
        role => Ok(role),
    }
}

async fn open(target: Target) -> anyhow::Result<SharedStore> {
    let default_file = std::path::Path::new("relance.toml");
    let file = target.config.as_deref().or(default_file.exists().then_some(default_file));
    let flags = crate::config::Flags { database_url: target.database_url, ..crate::config::Flags::default() };
    let settings = crate::config::Settings::load(file, &flags)?;
    open_store(&settings, crate::live_rules::LiveRules::new(RuleSet::defaults()), system_clock()).await
}

/// Runs `f` on the store, then closes it whatever happened.
async fn with_store<T>(
    target: Target,
    f: impl AsyncFnOnce(&SharedStore) -> Result<T, crate::store::StoreError>,
) -> anyhow::Result<T> {
    let store = open(target).await?;
    let done = f(&store).await;
    store.shutdown().await;
    done.map_err(|e| anyhow::anyhow!("{e}"))
}

/// The password to set: read from stdin, asked on a terminal, or `None` (generate).
fn password_input(generate: bool, from_stdin: bool) -> anyhow::Result<Option<String>> {
    if generate {
        return Ok(None);
    }
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        return Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let first = rpassword::prompt_password("Password (empty: generate one): ")?;
    if first.is_empty() {
        return Ok(None);
    }
    crate::access::password::check_strength(&first).map_err(|m| anyhow::anyhow!(m))?;
    let again = rpassword::prompt_password("Again: ")?;
    anyhow::ensure!(first == again, "the two passwords differ; nothing changed");
    Ok(Some(first))
}

fn when(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(|| "-".into(), |t| t.format("%Y-%m-%d %H:%M").to_string())
}

pub async fn users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        UsersCommand::Add { name, role, generate, password_stdin, target } => {
            let chosen = password_input(generate, password_stdin)?;
            let audit = Audit::cli("users add", AuditKind::Users, "create");
            let generated =
                with_store(target, async |s| crate::ops::access::add_user(&**s, &name, role, chosen, audit).await)
                    .await?;
            writeln!(out, "user {name} added as {role}")?;
            if let Some(p) = generated {
                writeln!(out, "password (shown once): {p}")?;
            }
        }
        UsersCommand::List { target } => {
            let users = with_store(target, async |s| s.users().await).await?;
            writeln!(out, "{:<24} {:<7} {:<9} {:<17} CREATED", "NAME", "ROLE", "STATE", "LOCKED UNTIL")?;
            for u in users {
                let state = if u.disabled_at.is_some() { "disabled" } else { "active" };
                writeln!(
                    out,
                    "{:<24} {:<7} {:<9} {:<17} {}",
                    u.name,
                    u.role,
                    state,
                    when(u.locked_until),
                    when(Some(u.created_at))
                )?;
            }
        }
        UsersCommand::Disable { name, target } => {
            let audit = Audit::cli("users disable", AuditKind::Users, "disable");
            let ended =
                with_store(target, async |s| crate::ops::access::set_disabled(&**s, &name, true, audit).await).await?;
            writeln!(out, "user {name} disabled; {ended} session(s) ended")?;
        }
        UsersCommand::Enable { name, target } => {
            let audit = Audit::cli("users enable", AuditKind::Users, "enable");
            with_store(target, async |s| crate::ops::access::set_disabled(&**s, &name, false, audit).await).await?;
            writeln!(out, "user {name} enabled")?;
        }
        UsersCommand::Passwd { name, generate, password_stdin, target } => {
            let chosen = password_input(generate, password_stdin)?;
            let audit = Audit::cli("users passwd", AuditKind::Users, "password");
            let generated =
                with_store(target, async |s| crate::ops::access::set_password(&**s, &name, chosen, audit).await)
                    .await?;
            writeln!(out, "password of {name} changed; their sessions ended")?;
            if let Some(p) = generated {
                writeln!(out, "password (shown once): {p}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn keys(command: KeysCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create { name, role, target } => {
            let audit = Audit::cli("keys create", AuditKind::Keys, "create");
            let by = audit.actor.clone();
            let created =
                with_store(target, async |s| crate::ops::access::create_key(&**s, &name, role, &by, audit).await)
                    .await?;
            writeln!(out, "key {} created with role {} (prefix {})", created.name, created.role, created.prefix)?;
            writeln!(out, "key (shown once): {}", created.key)?;
        }
        KeysCommand::List { target } => {
            let keys = with_store(target, async |s| s.keys().await).await?;
            writeln!(
                out,
                "{:<24} {:<7} {:<13} {:<17} {:<17} REVOKED",
                "NAME", "ROLE", "PREFIX", "CREATED", "LAST USED"
            )?;
            for k in keys {
                writeln!(
                    out,
                    "{:<24} {:<7} {:<13} {:<17} {:<17} {}",
                    k.name,
                    k.role,
                    k.prefix,
                    when(Some(k.created_at)),
                    when(k.last_used_at),
                    when(k.revoked_at)
                )?;
            }
        }
        KeysCommand::Revoke { name, target } => {
            let audit = Audit::cli("keys revoke", AuditKind::Keys, "revoke");
            with_store(target, async |s| crate::ops::access::revoke_key(&**s, &name, audit).await).await?;
            writeln!(out, "key {name} revoked")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
