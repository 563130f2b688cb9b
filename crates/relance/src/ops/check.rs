//! `relance check`: the configuration read exactly as `serve` reads it, then each thing
//! `serve` would need, reported with what to do. Nothing is written, except a probe file
//! that is removed at once.

use std::path::{Path, PathBuf};

use relance_core::{ActionType, RuleFormat, RuleSet};
use serde::Serialize;

use crate::config::{Config, Flags, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    /// Worth knowing; `serve` would still start.
    Warning,
    /// `serve` would fail, or run in a way nobody wants.
    Problem,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    pub subject: &'static str,
    pub message: String,
}

#[derive(Default)]
struct Report(Vec<Finding>);

impl Report {
    fn ok(&mut self, subject: &'static str, message: impl Into<String>) {
        self.0.push(Finding { level: Level::Ok, subject, message: message.into() });
    }
    fn warn(&mut self, subject: &'static str, message: impl Into<String>) {
        self.0.push(Finding { level: Level::Warning, subject, message: message.into() });
    }
    fn problem(&mut self, subject: &'static str, message: impl Into<String>) {
        self.0.push(Finding { level: Level::Problem, subject, message: message.into() });
    }
}

/// Every finding, in the order `serve` meets them.
pub async fn check(file: Option<&Path>, flags: &Flags) -> Vec<Finding> {
    let mut r = Report::default();
    let (config, unknown) = match Config::load(file, flags) {
        Ok(loaded) => loaded,
        Err(e) => {
            r.problem("configuration", format!("{e:#}"));
            return r.0;
        }
    };
    for name in unknown {
        r.problem("environment", format!("{name} names no setting; see the README's configuration table"));
    }
    let settings = match Settings::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            r.problem("configuration", format!("{e:#}"));
            return r.0;
        }
    };
    r.ok("configuration", file.map_or("defaults and environment".to_owned(), |f| format!("{} reads", f.display())));
    // `Settings::check` stops at its first problem; the dispatcher's own are checked apart
    // so that a missing token does not hide a malformed signing secret.
    match settings.check() {
        Ok(()) => r.ok("access", access_summary(&settings)),
        Err(e) if e.to_string().starts_with("refusing to listen") => r.problem("access", format!("{e:#}")),
        Err(e) => r.problem("configuration", format!("{e:#}")),
    }
    match settings.dispatch.check() {
        Ok(()) => r.ok("dispatch", "executors, retries and signing secret are consistent"),
        Err(e) => r.problem("dispatch", format!("{e:#}")),
    }
    match std::net::TcpListener::bind(settings.bind) {
        Ok(_) => r.ok("bind", format!("{} is free", settings.bind)),
        Err(e) => r.warn(
            "bind",
            format!(
                "cannot listen on {} now ({e}); fine if this is the running relance, otherwise change bind",
                settings.bind
            ),
        ),
    }
    let stored_rules = database(&mut r, &settings).await;
    let rules = match settings.rules.as_deref() {
        Some(path) => match crate::server::load_rules(Some(path)) {
            Ok(set) => {
                r.ok("rules", format!("{}: {} rule(s), valid", path.display(), set.rules().len()));
                Some(set)
            }
            Err(e) => {
                r.problem("rules", format!("{e:#}"));
                None
            }
        },
        None => match stored_rules {
            Some((version, body)) => match RuleSet::parse(&body, RuleFormat::Json) {
                Ok(set) => {
                    r.ok("rules", format!("version {version} stored in the database: {} rule(s)", set.rules().len()));
                    Some(set)
                }
                Err(errors) => {
                    r.problem("rules", format!("stored version {version} is invalid: {}", errors[0]));
                    None
                }
            },
            None => {
                r.ok("rules", "the six built-in defaults");
                Some(RuleSet::defaults())
            }
        },
    };
    if let Some(rules) = rules {
        templates(&mut r, &settings, &rules);
        brevo_sync(&mut r, &settings, &rules);
    }
    if let Some(b) = &settings.backup {
        writable_dir(&mut r, "backups", &b.dir);
    }
    r.0
}

fn access_summary(s: &Settings) -> String {
    let on = |t: &Option<crate::config::Secret>| if t.is_some() { "set" } else { "not set" };
    format!("bind {}: webhook token {}, admin token {}", s.bind, on(&s.webhook_token), on(&s.admin_token))
}

/// Reachable, writable, not newer than this build; answers the stored active rule set.
async fn database(r: &mut Report, s: &Settings) -> Option<(i64, String)> {
    if let Err(e) = crate::server::check_database_url(&s.database_url) {
        r.problem("database", format!("{e:#}"));
        return None;
    }
    let shown = crate::config::shown_url(&s.database_url);
    if !s.database_url.starts_with("postgres") {
        let path = match crate::store::sqlite::path_from_url(&s.database_url) {
            Ok(p) => p,
            Err(e) => {
                r.problem("database", format!("{e:#}"));
                return None;
            }
        };
        let dir =
            path.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if !writable_dir(r, "database folder", &dir) {
            return None;
        }
        if path.exists() {
            let probe = std::fs::OpenOptions::new().read(true).write(true).open(&path);
            if let Err(e) = probe {
                r.problem(
                    "database",
                    format!(
                        "{} cannot be opened for writing ({e}); give the service user write access",
                        path.display()
                    ),
                );
                return None;
            }
            match quick_check(&path) {
                Ok(()) => {}
                Err(e) => {
                    r.problem("database", format!("{}: {e:#}; restore a backup (relance restore)", path.display()));
                    return None;
                }
            }
        }
    }
    match crate::store::peek::schema(&s.database_url).await {
        Ok(status) if status.is_newer() => r.problem(
            "database",
            format!(
                "{shown} has schema {} but this build knows {}: it was migrated by a newer relance",
                status.current,
                status.known.len()
            ),
        ),
        Ok(status) if !status.exists => r.ok("database", format!("{shown} will be created at first start")),
        Ok(status) if status.pending().is_empty() => {
            r.ok("database", format!("{shown}: schema {}, up to date", status.current))
        }
        Ok(status) => r.ok(
            "database",
            format!(
                "{shown}: schema {}; serve will run {} migration(s) (relance migrate --dry-run lists them)",
                status.current,
                status.pending().len()
            ),
        ),
        Err(e) => {
            r.problem("database", format!("{e:#}"));
            return None;
        }
    }
    crate::store::peek::active_rules(&s.database_url).await.ok().flatten()
}

fn quick_check(path: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    anyhow::ensure!(verdict == "ok", "integrity check failed: {verdict}");
    Ok(())
}

/// A folder that takes a file, or whose nearest existing parent does (serve creates the
/// rest); nothing is created here.
fn writable_dir(r: &mut Report, subject: &'static str, dir: &Path) -> bool {
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(Path::new("."));
    if !existing.is_dir() {
        r.problem(subject, format!("{} cannot be created: {} is not a folder", dir.display(), existing.display()));
        return false;
    }
    let probe = existing.join(format!(".relance-check-{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            if existing == dir {
                r.ok(subject, format!("{} is writable", dir.display()));
            } else {
                r.ok(subject, format!("{} will be created (in {}, writable)", dir.display(), existing.display()));
            }
            true
        }
        Err(e) => {
            r.problem(subject, format!("{} is not writable ({e}); give the service user write access", dir.display()));
            false
        }
    }
}

/// `[brevo.sync]` may only read scores the rule set declares.
fn brevo_sync(r: &mut Report, s: &Settings, rules: &RuleSet) {
    let Some(sync) = s.dispatch.brevo.as_ref().and_then(|b| b.sync.as_ref()) else { return };
    let unknown: Vec<String> = sync
        .named_scores()
        .filter(|(_, name)| rules.score(name).is_none())
        .map(|(attr, name)| format!("{attr} = \"scores.{name}\""))
        .collect();
    if unknown.is_empty() {
        r.ok("brevo_sync", format!("{} attribute(s) pushed to Brevo", sync.fields.attributes.len()));
    } else {
        r.problem(
            "brevo_sync",
            format!(
                "[brevo.sync] reads scores the rules do not declare: {}; add a [[score]] or fix the name",
                unknown.join(", ")
            ),
        );
    }
}

/// Every `send_email` template must be a built-in one or mapped to a Brevo template.
fn templates(r: &mut Report, s: &Settings, rules: &RuleSet) {
    let mapped = s.dispatch.brevo.as_ref().map(|b| &b.templates);
    let mut missing = Vec::new();
    for rule in rules.rules() {
        for action in rule.actions.iter().filter(|a| a.action_type == ActionType::SendEmail) {
            let Some(name) = action.config.get("template").and_then(|t| t.as_str()) else { continue };
            let known =
                crate::dispatch::templates::BUILT_IN.contains(&name) || mapped.is_some_and(|m| m.contains_key(name));
            if !known {
                missing.push(format!("{name:?} ({})", rule.rule_id));
            }
        }
    }
    if missing.is_empty() {
        r.ok("templates", "every send_email template is built in or mapped");
    } else {
        r.problem(
            "templates",
            format!(
                "mapped to nothing: {}; map each under [brevo.templates] (name = Brevo template id) or use a built-in one ({})",
                missing.join(", "),
                crate::dispatch::templates::BUILT_IN.join(", ")
            ),
        );
    }
}
