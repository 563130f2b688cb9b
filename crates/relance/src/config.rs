//! Settings: built-in defaults < `relance.toml` (`--config`) < environment < flags.
//! Secrets come from the environment or the file only (flags would show in `ps`).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use relance_core::ActionType;
use serde::{Deserialize, Serialize};

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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The optional `relance.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `host:port`; host names resolve (`localhost:8092`).
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub rules: Option<PathBuf>,
    pub webhook_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub default_segment: Option<String>,
    pub public_url: Option<String>,
    pub proxy_opens_are_opens: Option<bool>,
    pub request_timeout_secs: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_connections: Option<usize>,
    pub ingest_queue_capacity: Option<usize>,
    pub ingest_max_batch: Option<usize>,
    #[serde(default)]
    pub dispatch: DispatchFile,
    #[serde(default)]
    pub postgres: PostgresFile,
    #[serde(default)]
    pub import: ImportFile,
    #[serde(default)]
    pub brevo: BrevoFile,
    pub power_automate_url: Option<Secret>,
    pub webhook_signing_secret: Option<Secret>,
    /// Executor per action type, e.g. `send_email = "outbox"`.
    #[serde(default)]
    pub executors: HashMap<String, String>,
}

/// `[dispatch]` in relance.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchFile {
    pub enabled: Option<bool>,
    pub concurrency: Option<usize>,
    pub lease_seconds: Option<u64>,
    pub poll_interval_ms: Option<u64>,
    pub retry_schedule_seconds: Option<Vec<u64>>,
    pub jitter: Option<f64>,
    pub http_timeout_seconds: Option<u64>,
    pub allow_private_targets: Option<bool>,
}

/// `[postgres]` in relance.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresFile {
    pub pool_size: Option<usize>,
    pub statement_timeout_ms: Option<u64>,
}

/// `[import]` in relance.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    /// ISO country of national phone numbers in imported files (`FR`).
    pub default_country: Option<String>,
}

/// `[brevo]` in relance.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrevoFile {
    pub api_key: Option<Secret>,
    pub base_url: Option<String>,
    pub sender_email: Option<String>,
    pub sender_name: Option<String>,
    pub sms_sender: Option<String>,
    /// Template name → Brevo template id.
    #[serde(default)]
    pub templates: HashMap<String, i64>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid relance.toml", path.display()))
    }
}

/// Everything `relance serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: String,
    pub rules: Option<PathBuf>,
    pub webhook_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub default_segment: String,
    /// Where Power Automate reaches this server (`https://relance.example.fr`): the host,
    /// base path and scheme of `/connector/swagger.json`. Default: the request's host.
    pub public_url: Option<url::Url>,
    pub proxy_opens_are_opens: bool,
    pub request_timeout: Duration,
    /// Request headers must arrive within this (slowloris clients are cut off).
    pub header_read_timeout: Duration,
    /// Open connections at most; beyond, new ones are closed at once.
    pub max_connections: usize,
    pub ingest_queue_capacity: usize,
    pub ingest_max_batch: usize,
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
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            enabled: true,
            concurrency: 32,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            retry_schedule: [10, 60, 300, 1800, 7200, 21_600, 86_400].into_iter().map(Duration::from_secs).collect(),
            jitter: 0.2,
            http_timeout: Duration::from_secs(15),
            allow_private_targets: false,
            brevo: None,
            power_automate_url: None,
            webhook_signing_secret: None,
            routes: HashMap::new(),
        }
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

    fn check(&self) -> anyhow::Result<()> {
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

    fn resolve(file: &mut FileConfig, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<DispatchSettings> {
        let d = DispatchSettings::default();
        let f = std::mem::take(&mut file.dispatch);
        let b = std::mem::take(&mut file.brevo);
        let var = |name: &str| env(name).filter(|s| !s.is_empty());
        let api_key = var("RELANCE_BREVO_API_KEY").map(Secret).or(b.api_key);
        let brevo = api_key.map(|api_key| BrevoSettings {
            api_key,
            base_url: var("RELANCE_BREVO_BASE_URL").or(b.base_url).unwrap_or_else(|| DEFAULT_BREVO_BASE_URL.into()),
            sender_email: var("RELANCE_BREVO_SENDER_EMAIL").or(b.sender_email),
            sender_name: var("RELANCE_BREVO_SENDER_NAME").or(b.sender_name),
            sms_sender: var("RELANCE_BREVO_SMS_SENDER").or(b.sms_sender).unwrap_or_else(|| "Relance".into()),
            templates: b.templates,
        });
        let mut routes = HashMap::new();
        for (action, executor) in std::mem::take(&mut file.executors) {
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
            enabled: f.enabled.unwrap_or(d.enabled),
            concurrency: f.concurrency.unwrap_or(d.concurrency),
            lease: f.lease_seconds.map(Duration::from_secs).unwrap_or(d.lease),
            poll_interval: f.poll_interval_ms.map(Duration::from_millis).unwrap_or(d.poll_interval),
            retry_schedule: f
                .retry_schedule_seconds
                .map(|v| v.into_iter().map(Duration::from_secs).collect())
                .unwrap_or(d.retry_schedule),
            jitter: f.jitter.unwrap_or(d.jitter),
            http_timeout: f.http_timeout_seconds.map(Duration::from_secs).unwrap_or(d.http_timeout),
            allow_private_targets: f.allow_private_targets.unwrap_or(d.allow_private_targets),
            brevo,
            power_automate_url: var("RELANCE_POWER_AUTOMATE_URL").map(Secret).or(file.power_automate_url.take()),
            webhook_signing_secret: var("RELANCE_WEBHOOK_SIGNING_SECRET")
                .map(Secret)
                .or(file.webhook_signing_secret.take()),
            routes,
        })
    }
}

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://relance.db";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: DEFAULT_BIND.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: DEFAULT_DATABASE_URL.into(),
            rules: None,
            webhook_token: None,
            admin_token: None,
            default_segment: relance_core::contact::DEFAULT_SEGMENT.into(),
            public_url: None,
            proxy_opens_are_opens: false,
            request_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            ingest_queue_capacity: 4096,
            ingest_max_batch: 256,
            dispatch: DispatchSettings::default(),
            pg_pool_size: 16,
            pg_statement_timeout: Duration::from_secs(5),
            import_default_country: None,
        }
    }
}

/// Values from flags and environment (clap reads both); `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub rules: Option<PathBuf>,
    pub default_segment: Option<String>,
    pub public_url: Option<String>,
    pub proxy_opens_are_opens: Option<bool>,
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
    /// Layers the file, then the environment secrets, then flags/env values over defaults.
    pub fn resolve(
        mut file: FileConfig,
        over: Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Settings> {
        let d = Settings::default();
        let dispatch = DispatchSettings::resolve(&mut file, &env)?;
        let secret = |name: &str| env(name).filter(|s| !s.is_empty()).map(Secret);
        let public_url = match over.public_url.or(file.public_url).filter(|u| !u.trim().is_empty()) {
            Some(raw) => {
                let url = url::Url::parse(&raw).with_context(|| format!("public_url {raw:?} is not a URL"))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    bail!("public_url {raw:?}: expected http(s)://host[:port][/path]");
                }
                Some(url)
            }
            None => None,
        };
        Ok(Settings {
            public_url,
            bind: match over.bind.or(file.bind) {
                Some(raw) => resolve_bind(&raw)?,
                None => d.bind,
            },
            database_url: over.database_url.or(file.database_url).unwrap_or(d.database_url),
            rules: over.rules.or(file.rules),
            webhook_token: secret("RELANCE_WEBHOOK_TOKEN").or(file.webhook_token),
            admin_token: secret("RELANCE_ADMIN_TOKEN").or(file.admin_token),
            default_segment: over.default_segment.or(file.default_segment).unwrap_or(d.default_segment),
            proxy_opens_are_opens: over.proxy_opens_are_opens.or(file.proxy_opens_are_opens).unwrap_or(false),
            request_timeout: file.request_timeout_secs.map(Duration::from_secs).unwrap_or(d.request_timeout),
            header_read_timeout: file
                .header_read_timeout_secs
                .map(Duration::from_secs)
                .unwrap_or(d.header_read_timeout),
            max_connections: file.max_connections.unwrap_or(d.max_connections),
            ingest_queue_capacity: file.ingest_queue_capacity.unwrap_or(d.ingest_queue_capacity),
            ingest_max_batch: file.ingest_max_batch.unwrap_or(d.ingest_max_batch),
            dispatch,
            pg_pool_size: file.postgres.pool_size.unwrap_or(d.pg_pool_size),
            pg_statement_timeout: file
                .postgres
                .statement_timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(d.pg_statement_timeout),
            import_default_country: match env("RELANCE_IMPORT_DEFAULT_COUNTRY").or(file.import.default_country) {
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
    fn layering_and_secrets() {
        let file: FileConfig =
            toml::from_str("database_url = 'sqlite://f.db'\nadmin_token = 'file'\ndefault_segment = 'Prospect'")
                .unwrap();
        let over = Overrides { default_segment: Some("VIP".into()), ..Overrides::default() };
        let s = Settings::resolve(file, over, |k| (k == "RELANCE_ADMIN_TOKEN").then(|| "env".to_owned())).unwrap();
        assert_eq!(s.database_url, "sqlite://f.db");
        assert_eq!(s.default_segment, "VIP");
        assert_eq!(s.admin_token.as_ref().map(Secret::expose), Some("env"));
        assert_eq!(format!("{:?}", s.admin_token), "Some(Secret(***))");
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }

    #[test]
    fn routing_follows_credentials() {
        let none = Settings::resolve(FileConfig::default(), Overrides::default(), |_| None).unwrap().dispatch;
        assert_eq!(none.route(ActionType::SendEmail), ExecutorKind::Outbox);
        assert_eq!(none.route(ActionType::CreateTask), ExecutorKind::Outbox);
        assert_eq!(none.route(ActionType::TriggerWebhook), ExecutorKind::Webhook);
        assert_eq!(none.route(ActionType::UpdateScore), ExecutorKind::Internal);
        let env = |k: &str| match k {
            "RELANCE_BREVO_API_KEY" => Some("xkeysib-1".to_owned()),
            "RELANCE_POWER_AUTOMATE_URL" => Some("https://flow.example/x".to_owned()),
            _ => None,
        };
        let file: FileConfig =
            toml::from_str("[executors]\nsend_sms = 'external'\n[brevo.templates]\nthank_you = 12").unwrap();
        let s = Settings::resolve(file, Overrides::default(), env).unwrap();
        let d = &s.dispatch;
        assert_eq!(d.route(ActionType::SendEmail), ExecutorKind::Brevo);
        assert_eq!(d.route(ActionType::SendSms), ExecutorKind::External);
        assert_eq!(d.route(ActionType::ScheduleCall), ExecutorKind::PowerAutomate);
        assert_eq!(d.brevo.as_ref().unwrap().templates["thank_you"], 12);
        assert_eq!(d.external_types(), vec![ActionType::SendSms]);
        assert!(s.check().is_ok());
        let bad: FileConfig = toml::from_str("[executors]\nsend_email = 'brevo'").unwrap();
        let err = Settings::resolve(bad, Overrides::default(), |_| None).unwrap().check().unwrap_err();
        assert!(err.to_string().contains("RELANCE_BREVO_API_KEY"), "{err}");
        let bad: FileConfig = toml::from_str("[executors]\nsend_email = 'carrier_pigeon'").unwrap();
        assert!(Settings::resolve(bad, Overrides::default(), |_| None).is_err());
    }

    #[test]
    fn secret_comparison() {
        let s = Secret::new("token");
        assert!(s.matches(b"token"));
        assert!(!s.matches(b"tokem"));
        assert!(!s.matches(b"tok"));
    }
}
