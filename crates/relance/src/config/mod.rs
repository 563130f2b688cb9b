//! Settings: declared once in [`layers::Config`] (defaults < `relance.toml` <
//! environment < flags), then checked and typed here into [`Settings`]. Secrets come from
//! the environment or the file only (flags would show in `ps`).

pub mod brevo_sync;
pub mod layers;
pub mod retention;
pub mod ui;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use relance_core::ActionType;
use serde::Serialize;

pub use layers::{Config, Flags};

/// A secret: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, so that response time does not reveal a prefix.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate)
    }
}

/// Compares without stopping at the first difference (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything `relance serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Scheduled backups of the embedded database (`[backup]`), when on.
    pub backup: Option<BackupSchedule>,
    /// How long old data is kept (`[retention]`).
    pub retention: retention::RetentionSettings,
    /// The dashboard's language, time zone and currency (`[ui]`).
    pub ui: ui::UiSettings,
    pub bind: SocketAddr,
    pub database_url: String,
    pub rules: Option<PathBuf>,
    pub webhook_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub default_segment: String,
    /// Where Power Automate reaches this server (`https://relance.example.fr`): the host,
    /// base path and scheme of `/connector/swagger.json`. Default: the request's host.
    pub public_url: Option<url::Url>,
    /// Peers whose forwarded client address and scheme are believed.
    pub trusted_proxies: std::sync::Arc<Vec<ipnet::IpNet>>,
    pub proxy_opens_are_opens: bool,
    pub request_timeout: Duration,
    /// Request headers must arrive within this (slowloris clients are cut off).
    pub header_read_timeout: Duration,
    /// Open connections at most; beyond, new ones are closed at once.
    pub max_connections: usize,
    pub ingest_queue_capacity: usize,
    pub ingest_max_batch: usize,
    /// Contacts the SQLite writer keeps in memory after writing them.
    pub sqlite_contact_cache: usize,
    pub dispatch: DispatchSettings,
    /// PostgreSQL connections per instance.
    pub pg_pool_size: usize,
    /// A PostgreSQL statement running longer is cancelled (and the request answered 429).
    pub pg_statement_timeout: Duration,
    /// ISO country of national phone numbers in CSV imports (`FR`: `06…` → `+336…`).
    pub import_default_country: Option<String>,
}

/// Where an action type is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    Brevo,
    Webhook,
    PowerAutomate,
    Internal,
    Outbox,
    External,
}

impl ExecutorKind {
    pub const NAMES: &'static [&'static str] =
        &["brevo", "webhook", "power_automate", "internal", "outbox", "external"];

    pub fn parse(s: &str) -> Option<ExecutorKind> {
        Some(match s {
            "brevo" => ExecutorKind::Brevo,
            "webhook" => ExecutorKind::Webhook,
            "power_automate" => ExecutorKind::PowerAutomate,
            "internal" => ExecutorKind::Internal,
            "outbox" => ExecutorKind::Outbox,
            "external" => ExecutorKind::External,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        ExecutorKind::NAMES[self as usize]
    }
}

#[derive(Debug, Clone)]
pub struct BrevoSettings {
    pub api_key: Secret,
    pub base_url: String,
    pub sender_email: Option<String>,
    pub sender_name: Option<String>,
    pub sms_sender: String,
    pub templates: HashMap<String, i64>,
    /// Contact attributes pushed to Brevo (`[brevo.sync]`); `None`: nothing mapped.
    pub sync: Option<brevo_sync::BrevoSyncSettings>,
}

pub const DEFAULT_BREVO_BASE_URL: &str = "https://api.brevo.com/v3";

/// The dispatcher: when and how scheduled actions run.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    pub enabled: bool,
    /// Jobs running at once in this instance.
    pub concurrency: usize,
    /// How long a claimed job is ours; past it, another worker may take it.
    pub lease: Duration,
    /// Longest idle sleep between looks for due jobs (new jobs wake the dispatcher sooner).
    pub poll_interval: Duration,
    /// Delay before each retry; the job is dead after the last.
    pub retry_schedule: Vec<Duration>,
    /// ± fraction of random spread on each delay, so that retries do not stampede.
    pub jitter: f64,
    pub http_timeout: Duration,
    /// Let webhooks reach private and loopback addresses (tests, internal receivers).
    pub allow_private_targets: bool,
    pub brevo: Option<BrevoSettings>,
    pub power_automate_url: Option<Secret>,
    pub webhook_signing_secret: Option<Secret>,
    /// Explicit executor per action type; the rest follow [`DispatchSettings::route`].
    pub routes: HashMap<ActionType, ExecutorKind>,
    /// The governor every outgoing message passes (`[pressure]`).
    pub pressure: std::sync::Arc<relance_core::pressure::Pressure>,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Settings::default().dispatch
    }
}

impl DispatchSettings {
    /// The executor of an action type: an explicit route, else Brevo for email and SMS
    /// when its key is set, Power Automate for tasks and calls when its flow URL is set,
    /// the outbox for all of those otherwise, signed webhooks for `trigger_webhook`, and
    /// the engine itself for internal actions.
    pub fn route(&self, action: ActionType) -> ExecutorKind {
        if let Some(kind) = self.routes.get(&action) {
            return *kind;
        }
        match action {
            ActionType::SendEmail | ActionType::SendSms if self.brevo.is_some() => ExecutorKind::Brevo,
            ActionType::CreateTask | ActionType::ScheduleCall if self.power_automate_url.is_some() => {
                ExecutorKind::PowerAutomate
            }
            ActionType::TriggerWebhook => ExecutorKind::Webhook,
            a if a.is_internal() => ExecutorKind::Internal,
            _ => ExecutorKind::Outbox,
        }
    }

    /// Action types this instance's dispatcher runs itself (all but `external`).
    pub fn dispatched_types(&self) -> Vec<ActionType> {
        ActionType::ALL.iter().copied().filter(|a| self.route(*a) != ExecutorKind::External).collect()
    }

    pub fn external_types(&self) -> Vec<ActionType> {
        ActionType::ALL.iter().copied().filter(|a| self.route(*a) == ExecutorKind::External).collect()
    }

    pub(crate) fn check(&self) -> anyhow::Result<()> {
        for (action, kind) in &self.routes {
            let fits = match kind {
                ExecutorKind::Brevo => matches!(action, ActionType::SendEmail | ActionType::SendSms),
                ExecutorKind::Webhook => *action == ActionType::TriggerWebhook,
                ExecutorKind::Internal => action.is_internal(),
                ExecutorKind::PowerAutomate | ExecutorKind::Outbox | ExecutorKind::External => true,
            };
            if !fits {
                bail!("[executors] {action} = \"{}\": that executor cannot run {action}", kind.as_str());
            }
            if *kind == ExecutorKind::Brevo && self.brevo.is_none() {
                bail!("[executors] {action} = \"brevo\" needs RELANCE_BREVO_API_KEY");
            }
            if *kind == ExecutorKind::PowerAutomate && self.power_automate_url.is_none() {
                bail!("[executors] {action} = \"power_automate\" needs RELANCE_POWER_AUTOMATE_URL");
            }
        }
        if let Some(secret) = &self.webhook_signing_secret
            && crate::dispatch::signing::SigningKey::parse(secret.expose()).is_err()
        {
            bail!("RELANCE_WEBHOOK_SIGNING_SECRET must be whsec_ followed by base64 of 24 to 64 random bytes");
        }
        if self.retry_schedule.is_empty() || self.concurrency == 0 {
            bail!("[dispatch] needs a non-empty retry_schedule_seconds and a concurrency of at least 1");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            bail!("[dispatch] jitter must be in 0..1");
        }
        Ok(())
    }

    fn from_config(c: &mut Config) -> anyhow::Result<DispatchSettings> {
        let d = &c.dispatch;
        let b = std::mem::take(&mut c.brevo);
        let sync = brevo_sync::BrevoSyncSettings::from_config(&b.sync)?;
        let api_key = b.api_key.filter(|k| !k.expose().is_empty());
        if sync.is_some() && api_key.is_none() {
            bail!("[brevo.sync] maps contact attributes, which needs RELANCE_BREVO_API_KEY");
        }
        let brevo = api_key.map(|api_key| BrevoSettings {
            api_key,
            base_url: b.base_url,
            sender_email: b.sender_email,
            sender_name: b.sender_name,
            sms_sender: b.sms_sender,
            templates: b.templates,
            sync,
        });
        let mut routes = HashMap::new();
        for (action, executor) in std::mem::take(&mut c.executors) {
            let a = action.parse::<ActionType>().map_err(|_| {
                anyhow::anyhow!(
                    "[executors] unknown action type {action:?}; accepted: {}",
                    ActionType::NAMES.join(", ")
                )
            })?;
            let k = ExecutorKind::parse(&executor).with_context(|| {
                format!("[executors] {action} = {executor:?}: accepted executors: {}", ExecutorKind::NAMES.join(", "))
            })?;
            routes.insert(a, k);
        }
        Ok(DispatchSettings {
            enabled: d.enabled,
            concurrency: d.concurrency,
            lease: Duration::from_secs(d.lease_seconds),
            poll_interval: Duration::from_millis(d.poll_interval_ms),
            retry_schedule: d.retry_schedule_seconds.iter().copied().map(Duration::from_secs).collect(),
            jitter: d.jitter,
            http_timeout: Duration::from_secs(d.http_timeout_seconds),
            allow_private_targets: d.allow_private_targets,
            brevo,
            power_automate_url: c.power_automate_url.take().filter(|u| !u.expose().is_empty()),
            webhook_signing_secret: c.webhook_signing_secret.take().filter(|u| !u.expose().is_empty()),
            routes,
            pressure: std::sync::Arc::new(
                relance_core::pressure::Pressure::parse(&c.pressure).map_err(|e| anyhow::anyhow!("[pressure] {e}"))?,
            ),
        })
    }
}

/// `[backup]` checked: how often, how many, where.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupSchedule {
    pub every: Duration,
    pub keep: usize,
    pub dir: PathBuf,
}

impl BackupSchedule {
    fn from_config(b: &layers::BackupConfig, database_url: &str) -> anyhow::Result<Option<BackupSchedule>> {
        let Some(hours) = b.every_hours else { return Ok(None) };
        if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 366.0) {
            bail!("[backup] every_hours = {hours}: expected a number of hours above 0 (e.g. 24)");
        }
        if b.keep == 0 {
            bail!("[backup] keep = 0: keep at least 1 backup (leave every_hours out for none)");
        }
        if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
            bail!(
                "[backup] backs up the embedded SQLite database; for PostgreSQL schedule pg_dump (docs/reliability.md)"
            );
        }
        let database = crate::store::sqlite::path_from_url(database_url)?;
        let dir = match &b.dir {
            Some(d) => d.clone(),
            None => database.parent().unwrap_or(std::path::Path::new(".")).join("backups"),
        };
        Ok(Some(BackupSchedule { every: Duration::from_secs_f64(hours * 3600.0), keep: b.keep, dir }))
    }
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://relance.db";

impl Default for Settings {
    fn default() -> Self {
        match Settings::from_config(Config::default()) {
            Ok(s) => s,
            // A unit test proves the built-in defaults are valid.
            Err(e) => unreachable!("the built-in defaults are invalid: {e:#}"),
        }
    }
}

/// A database URL as it may be shown (logs, messages): its password replaced by `***`.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `127.0.0.1:8080`, `[::1]:8080` or `localhost:8092` (resolved; IPv4 first).
pub fn resolve_bind(raw: &str) -> anyhow::Result<SocketAddr> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let expected = "expected host:port, e.g. 127.0.0.1:8080, localhost:8080 or 0.0.0.0:8080 (--bind / RELANCE_BIND)";
    if !raw.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
        bail!("bind {raw:?}: {expected}");
    }
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(raw)
        .with_context(|| format!("bind {raw:?}: the host name does not resolve; {expected}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("bind {raw:?}: the host name has no address; {expected}"))
}

impl Settings {
    /// Layers defaults, `file`, the environment and `flags`, then checks and types them.
    /// Environment variables that look like settings but name none are logged.
    pub fn load(file: Option<&Path>, flags: &Flags) -> anyhow::Result<Settings> {
        let (config, unknown) = Config::load(file, flags)?;
        for name in unknown {
            tracing::warn!(variable = %name, "this environment variable names no setting; see the README's configuration table");
        }
        Settings::from_config(config)
    }

    /// Checks and types layered settings.
    pub fn from_config(mut c: Config) -> anyhow::Result<Settings> {
        let dispatch = DispatchSettings::from_config(&mut c)?;
        let public_url = match c.public_url.filter(|u| !u.trim().is_empty()) {
            Some(raw) => {
                let url = url::Url::parse(&raw).with_context(|| format!("public_url {raw:?} is not a URL"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    bail!("public_url {raw:?}: expected http(s)://host[:port][/path]");
                }
                Some(url)
            }
            None => None,
        };
        let backup = BackupSchedule::from_config(&c.backup, &c.database_url)?;
        let longest_cap = c.pressure.cap.iter().map(|cap| cap.per_days).max().unwrap_or(0);
        let retention = retention::RetentionSettings::from_config(&c.retention, longest_cap)?;
        let ui = ui::UiSettings::from_config(&c.ui, c.pressure.timezone.as_deref())?;
        Ok(Settings {
            ui,
            backup,
            retention,
            trusted_proxies: std::sync::Arc::new(
                crate::web::client::parse_trusted(&c.trusted_proxies.0).map_err(anyhow::Error::msg)?,
            ),
            public_url,
            bind: resolve_bind(&c.bind)?,
            database_url: c.database_url,
            rules: c.rules,
            webhook_token: c.webhook_token.filter(|t| !t.expose().is_empty()),
            admin_token: c.admin_token.filter(|t| !t.expose().is_empty()),
            default_segment: c.default_segment,
            proxy_opens_are_opens: c.proxy_opens_are_opens,
            request_timeout: Duration::from_secs(c.request_timeout_secs),
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs),
            max_connections: c.max_connections,
            ingest_queue_capacity: c.ingest_queue_capacity,
            ingest_max_batch: c.ingest_max_batch,
            sqlite_contact_cache: c.sqlite_contact_cache,
            dispatch,
            pg_pool_size: c.postgres.pool_size,
            pg_statement_timeout: Duration::from_millis(c.postgres.statement_timeout_ms),
            import_default_country: match c.import.default_country.filter(|c| !c.trim().is_empty()) {
                Some(c) if relance_core::phone::is_known_country(&c) => Some(c.to_ascii_uppercase()),
                Some(c) => bail!(
                    "[import] default_country {c:?} is not known; known: {}",
                    relance_core::phone::known_countries().join(", ")
                ),
                None => None,
            },
        })
    }

    /// Refuses configurations that would expose an open server.
    pub fn check(&self) -> anyhow::Result<()> {
        if !self.bind.ip().is_loopback() {
            let mut missing = Vec::new();
            if self.webhook_token.is_none() {
                missing.push("RELANCE_WEBHOOK_TOKEN");
            }
            if self.admin_token.is_none() {
                missing.push("RELANCE_ADMIN_TOKEN");
            }
            if !missing.is_empty() {
                bail!(
                    "refusing to listen on {} without authentication: set {} (or bind to 127.0.0.1)",
                    self.bind,
                    missing.join(" and ")
                );
            }
        }
        if self.max_connections == 0 || self.header_read_timeout.is_zero() || self.request_timeout.is_zero() {
            bail!("max_connections, header_read_timeout_secs and request_timeout_secs must be above 0");
        }
        if self.default_segment.trim().is_empty() {
            bail!("the default segment must not be empty");
        }
        self.dispatch.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_shown_without_their_password() {
        assert_eq!(shown_url("postgres://relance:s3cret@db/relance"), "postgres://relance:***@db/relance");
        assert_eq!(shown_url("sqlite://relance.db"), "sqlite://relance.db");
    }

    #[test]
    fn bind_accepts_host_names() {
        assert_eq!(resolve_bind("localhost:8092").unwrap().port(), 8092);
        assert!(resolve_bind("localhost:8092").unwrap().ip().is_loopback());
        assert_eq!(resolve_bind("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        let e = resolve_bind("8080").unwrap_err().to_string();
        assert!(e.contains("expected host:port") && e.contains("RELANCE_BIND"), "{e}");
    }

    #[test]
    fn public_bind_needs_both_tokens() {
        let mut s = Settings { bind: "0.0.0.0:8080".parse().unwrap(), ..Settings::default() };
        let err = s.check().unwrap_err().to_string();
        assert!(err.contains("RELANCE_WEBHOOK_TOKEN and RELANCE_ADMIN_TOKEN"), "{err}");
        s.webhook_token = Some(Secret::new("a"));
        s.admin_token = Some(Secret::new("b"));
        assert!(s.check().is_ok());
        assert!(Settings::default().check().is_ok());
    }

    #[test]
    fn the_built_in_defaults_are_valid() {
        assert!(Settings::from_config(Config::default()).is_ok());
        assert_eq!(Settings::default().bind.to_string(), DEFAULT_BIND);
    }

    fn from_toml(text: &str) -> anyhow::Result<Settings> {
        Settings::from_config(toml::from_str::<Config>(text)?)
    }

    #[test]
    fn empty_secrets_are_no_secrets() {
        let s = from_toml("admin_token = ''\n[brevo]\napi_key = ''").unwrap();
        assert!(s.admin_token.is_none() && s.dispatch.brevo.is_none());
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }

    #[test]
    fn routing_follows_credentials() {
        let none = Settings::default().dispatch;
        assert_eq!(none.route(ActionType::SendEmail), ExecutorKind::Outbox);
        assert_eq!(none.route(ActionType::CreateTask), ExecutorKind::Outbox);
        assert_eq!(none.route(ActionType::TriggerWebhook), ExecutorKind::Webhook);
        assert_eq!(none.route(ActionType::UpdateScore), ExecutorKind::Internal);
        let s = from_toml(
            "power_automate_url = 'https://flow.example/x'\n[executors]\nsend_sms = 'external'\n\
             [brevo]\napi_key = 'xkeysib-1'\n[brevo.templates]\nthank_you = 12",
        )
        .unwrap();
        let d = &s.dispatch;
        assert_eq!(d.route(ActionType::SendEmail), ExecutorKind::Brevo);
        assert_eq!(d.route(ActionType::SendSms), ExecutorKind::External);
        assert_eq!(d.route(ActionType::ScheduleCall), ExecutorKind::PowerAutomate);
        assert_eq!(d.brevo.as_ref().unwrap().templates["thank_you"], 12);
        assert_eq!(d.external_types(), vec![ActionType::SendSms]);
        assert!(s.check().is_ok());
        let err = from_toml("[executors]\nsend_email = 'brevo'").unwrap().check().unwrap_err();
        assert!(err.to_string().contains("RELANCE_BREVO_API_KEY"), "{err}");
        assert!(from_toml("[executors]\nsend_email = 'carrier_pigeon'").is_err());
    }

    #[test]
    fn secret_comparison() {
        let s = Secret::new("token");
        assert!(s.matches(b"token"));
        assert!(!s.matches(b"tokem"));
        assert!(!s.matches(b"tok"));
    }
}
