//! Every setting, declared once with its default: built-in defaults < `relance.toml`
//! < environment < flags, layered by `figment`.
//!
//! Environment names: `RELANCE_` and the key, sections joined by a double underscore
//! (`RELANCE_DISPATCH__ALLOW_PRIVATE_TARGETS`, `RELANCE_BREVO__TEMPLATES__THANK_YOU`,
//! `RELANCE_EXECUTORS__SEND_SMS`). A section's field also answers to a single
//! underscore (`RELANCE_BREVO_API_KEY`, `RELANCE_IMPORT_DEFAULT_COUNTRY`). Unknown keys
//! in the file are an error naming the key; a `RELANCE_…__…` variable that names no
//! setting is reported at start.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::Uncased;
use serde::{Deserialize, Deserializer, Serialize};

use super::Secret;

/// `relance.toml`, the environment and the flags, before they are checked and typed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `host:port`; host names resolve (`localhost:8092`).
    pub bind: String,
    pub database_url: String,
    pub rules: Option<PathBuf>,
    pub webhook_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub default_segment: String,
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` / `-Proto` are believed: addresses or
    /// networks, as a list or a comma-separated string (`RELANCE_TRUSTED_PROXIES`).
    pub trusted_proxies: AddressList,
    pub proxy_opens_are_opens: bool,
    pub request_timeout_secs: u64,
    pub header_read_timeout_secs: u64,
    pub max_connections: usize,
    pub ingest_queue_capacity: usize,
    pub ingest_max_batch: usize,
    pub sqlite_contact_cache: usize,
    pub power_automate_url: Option<Secret>,
    pub webhook_signing_secret: Option<Secret>,
    pub dispatch: DispatchConfig,
    pub postgres: PostgresConfig,
    pub import: ImportConfig,
    pub brevo: BrevoConfig,
    /// Contact pressure: quiet hours, quiet days, caps (see docs/rules.md, "Contact pressure").
    pub pressure: relance_core::pressure::PressureSpec,
    /// Executor per action type, e.g. `send_email = "outbox"`.
    pub executors: HashMap<String, String>,
    /// Backups of the embedded database taken by `serve` (see docs/reliability.md).
    pub backup: BackupConfig,
    /// How long old data is kept (see docs/deploying.md, "Retention").
    pub retention: super::retention::RetentionConfig,
    /// The dashboard's language, time zone and currency.
    pub ui: super::ui::UiConfig,
}

/// A list given as a TOML array or as one comma-separated string (the environment's form).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct AddressList(pub Vec<String>);

impl<'de> Deserialize<'de> for AddressList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
        }
        Ok(AddressList(match Form::deserialize(d)? {
            Form::List(list) => list,
            Form::Text(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        }))
    }
}

/// `[backup]`: `every_hours` turns scheduled backups on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    pub every_hours: Option<f64>,
    /// How many scheduled backups to keep (the oldest go).
    pub keep: usize,
    /// Where they go; default `backups/` beside the database.
    pub dir: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { every_hours: None, keep: 7, dir: None }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: super::DEFAULT_BIND.into(),
            database_url: super::DEFAULT_DATABASE_URL.into(),
            rules: None,
            webhook_token: None,
            admin_token: None,
            default_segment: relance_core::contact::DEFAULT_SEGMENT.into(),
            public_url: None,
            trusted_proxies: AddressList::default(),
            proxy_opens_are_opens: false,
            request_timeout_secs: 15,
            header_read_timeout_secs: 10,
            max_connections: 10_000,
            ingest_queue_capacity: 4096,
            ingest_max_batch: 256,
            sqlite_contact_cache: crate::store::sqlite::DEFAULT_CONTACT_CACHE,
            power_automate_url: None,
            webhook_signing_secret: None,
            dispatch: DispatchConfig::default(),
            postgres: PostgresConfig::default(),
            import: ImportConfig::default(),
            brevo: BrevoConfig::default(),
            pressure: relance_core::pressure::PressureSpec::default(),
            executors: HashMap::new(),
            backup: BackupConfig::default(),
            retention: super::retention::RetentionConfig::default(),
            ui: super::ui::UiConfig::default(),
        }
    }
}

/// `[dispatch]`: when and how scheduled actions run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    pub enabled: bool,
    pub concurrency: usize,
    pub lease_seconds: u64,
    pub poll_interval_ms: u64,
    pub retry_schedule_seconds: Vec<u64>,
    pub jitter: f64,
    pub http_timeout_seconds: u64,
    pub allow_private_targets: bool,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            enabled: true,
            concurrency: 32,
            lease_seconds: 60,
            poll_interval_ms: 5000,
            retry_schedule_seconds: vec![10, 60, 300, 1800, 7200, 21_600, 86_400],
            jitter: 0.2,
            http_timeout_seconds: 15,
            allow_private_targets: false,
        }
    }
}

/// `[postgres]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    pub pool_size: usize,
    pub statement_timeout_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig { pool_size: 16, statement_timeout_ms: 5000 }
    }
}

/// `[import]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportConfig {
    /// ISO country of national phone numbers in imported files (`FR`).
    pub default_country: Option<String>,
}

/// `[brevo]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrevoConfig {
    pub api_key: Option<Secret>,
    pub base_url: String,
    pub sender_email: Option<String>,
    pub sender_name: Option<String>,
    /// Digits are a valid sender: taken as text even when the environment gives a number.
    #[serde(deserialize_with = "text")]
    pub sms_sender: String,
    /// Template name → Brevo template id.
    pub templates: HashMap<String, i64>,
    /// Contact attributes pushed to Brevo (`[brevo.sync]`).
    pub sync: super::brevo_sync::BrevoSyncConfig,
}

impl Default for BrevoConfig {
    fn default() -> Self {
        BrevoConfig {
            api_key: None,
            base_url: super::DEFAULT_BREVO_BASE_URL.into(),
            sender_email: None,
            sender_name: None,
            sms_sender: "Relance".into(),
            templates: HashMap::new(),
            sync: Default::default(),
        }
    }
}

/// A string, or a number or boolean the environment parsed as one.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Scalar::deserialize(d)? {
        Scalar::Text(s) => s,
        Scalar::Int(n) => n.to_string(),
        Scalar::Float(n) => n.to_string(),
        Scalar::Bool(b) => b.to_string(),
    })
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Secret)
    }
}

/// Shown as `***` wherever settings are serialised.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Sections of the file, and tables whose keys are free (a template name, an action type).
const SECTIONS: &[&str] =
    &["dispatch", "postgres", "import", "brevo", "pressure", "executors", "backup", "retention", "ui"];
const FREE_TABLES: &[&str] = &["executors", "brevo.templates", "brevo.sync.attributes"];

/// Every key a setting has (`dispatch.concurrency`), from the declaration above.
fn known_keys() -> BTreeSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        if let serde_json::Value::Object(map) = v {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(&key, v, out);
                out.insert(key);
            }
        }
    }
    let mut keys = BTreeSet::new();
    if let Ok(v) = serde_json::to_value(Config::default()) {
        walk("", &v, &mut keys);
    }
    keys
}

/// `RELANCE_DISPATCH__CONCURRENCY` → `dispatch.concurrency`; `None` for a name that is
/// no setting (`RELANCE_CONFIG`, `RELANCE_LOG`, a test's variable).
pub fn env_key(name: &str, known: &BTreeSet<String>) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let key = if name.contains("__") {
        name.replace("__", ".")
    } else {
        match SECTIONS.iter().find(|s| name.starts_with(&format!("{s}_"))) {
            Some(s) => format!("{s}.{}", &name[s.len() + 1..]),
            None => name,
        }
    };
    let free = FREE_TABLES.iter().any(|t| key.strip_prefix(t).is_some_and(|rest| rest.starts_with('.')));
    (known.contains(&key) || free).then_some(key)
}

/// What the flags give; `None` leaves the layers below in force.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_segment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_opens_are_opens: Option<bool>,
}

impl Config {
    /// Layers defaults, the file (if any), the `RELANCE_*` environment and the flags.
    /// Also returns the `RELANCE_…__…` variables that name no setting.
    pub fn load(file: Option<&Path>, flags: &Flags) -> anyhow::Result<(Config, Vec<String>)> {
        let known = known_keys();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                anyhow::bail!("{}: no such file (--config / RELANCE_CONFIG)", path.display());
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let for_env = known.clone();
        let env = Env::prefixed("RELANCE_").filter_map(move |k| env_key(k.as_str(), &for_env).map(Uncased::from_owned));
        figment = figment.merge(env).merge(Serialized::defaults(flags));
        let unknown: Vec<String> = std::env::vars()
            .filter_map(|(k, _)| k.strip_prefix("RELANCE_").map(str::to_owned))
            .filter(|k| k.contains("__") && env_key(k, &known).is_none())
            .map(|k| format!("RELANCE_{k}"))
            .collect();
        let config = figment.extract::<Config>().map_err(|e| {
            let errors: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("settings: {}", errors.join("; "))
        })?;
        Ok((config, unknown))
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type; a test's failure path.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn every_setting_has_an_environment_name() {
        let known = known_keys();
        assert_eq!(
            env_key("DISPATCH__ALLOW_PRIVATE_TARGETS", &known).as_deref(),
            Some("dispatch.allow_private_targets")
        );
        assert_eq!(env_key("BREVO_API_KEY", &known).as_deref(), Some("brevo.api_key"));
        assert_eq!(
            env_key("BREVO__SYNC__MIN_INTERVAL_SECONDS", &known).as_deref(),
            Some("brevo.sync.min_interval_seconds")
        );
        assert_eq!(env_key("IMPORT_DEFAULT_COUNTRY", &known).as_deref(), Some("import.default_country"));
        assert_eq!(env_key("EXECUTORS__SEND_SMS", &known).as_deref(), Some("executors.send_sms"));
        assert_eq!(env_key("BREVO__TEMPLATES__THANK_YOU", &known).as_deref(), Some("brevo.templates.thank_you"));
        assert_eq!(env_key("DATABASE_URL", &known).as_deref(), Some("database_url"));
        for not_a_setting in ["CONFIG", "LOG", "LOG_FORMAT", "TEST_DATABASE_URL", "DISPATCH__CONCURENCY"] {
            assert_eq!(env_key(not_a_setting, &known), None, "{not_a_setting}");
        }
        // Each leaf of the declaration answers to its double-underscore name.
        for key in known.iter().filter(|k| !FREE_TABLES.contains(&k.as_str())) {
            let name = key.replace('.', "__").to_ascii_uppercase();
            assert_eq!(env_key(&name, &known).as_ref(), Some(key), "RELANCE_{name}");
        }
    }

    #[test]
    fn defaults_then_file_then_environment_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "relance.toml",
                "database_url = 'sqlite://file.db'\ndefault_segment = 'Prospect'\nadmin_token = 'from-file'\n\
                 [dispatch]\nconcurrency = 4\nallow_private_targets = false\n",
            )?;
            jail.set_env("RELANCE_DISPATCH__ALLOW_PRIVATE_TARGETS", "true");
            jail.set_env("RELANCE_ADMIN_TOKEN", "123456");
            jail.set_env("RELANCE_BREVO_SMS_SENDER", "33612345678");
            jail.set_env("RELANCE_DEFAULT_SEGMENT", "FromEnv");
            jail.set_env("RELANCE_DISPATCH__CONCURENCY", "8");
            let flags = Flags { default_segment: Some("VIP".into()), ..Flags::default() };
            let (c, unknown) = Config::load(Some(Path::new("relance.toml")), &flags).map_err(|e| e.to_string())?;
            assert_eq!(c.database_url, "sqlite://file.db", "the file over the default");
            assert_eq!(c.dispatch.concurrency, 4);
            assert!(c.dispatch.allow_private_targets, "the environment over the file");
            assert_eq!(c.admin_token.as_ref().map(Secret::expose), Some("123456"), "a numeric token stays text");
            assert_eq!(c.brevo.sms_sender, "33612345678");
            assert_eq!(c.default_segment, "VIP", "flags over everything");
            assert_eq!(c.ingest_max_batch, 256, "untouched: the default");
            assert_eq!(unknown, vec!["RELANCE_DISPATCH__CONCURENCY".to_owned()]);
            Ok(())
        });
    }

    #[test]
    fn scheduled_backups_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("RELANCE_BACKUP__EVERY_HOURS", "24");
            jail.set_env("RELANCE_BACKUP__KEEP", "3");
            jail.set_env("RELANCE_DATABASE_URL", "sqlite://data/relance.db");
            let (c, unknown) = Config::load(None, &Flags::default()).map_err(|e| e.to_string())?;
            assert!(unknown.is_empty(), "{unknown:?}");
            let s = super::super::Settings::from_config(c).map_err(|e| e.to_string())?;
            let b = s.backup.expect("on");
            assert_eq!((b.every.as_secs(), b.keep), (86_400, 3));
            assert_eq!(b.dir, Path::new("data/backups"));
            jail.set_env("RELANCE_BACKUP__KEEP", "0");
            let (c, _) = Config::load(None, &Flags::default()).map_err(|e| e.to_string())?;
            let err = super::super::Settings::from_config(c).unwrap_err().to_string();
            assert!(err.starts_with("[backup] keep = 0"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn contact_pressure_from_the_file_and_the_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "relance.toml",
                "[pressure]\nquiet_hours = { start = '20:30', end = '09:00' }\nquiet_days = ['sunday']\n\
                 [[pressure.cap]]\nchannel = 'email'\nmax = 2\nper_days = 7\n",
            )?;
            jail.set_env("RELANCE_PRESSURE__TIMEZONE", "America/Montreal");
            let (c, unknown) =
                Config::load(Some(Path::new("relance.toml")), &Flags::default()).map_err(|e| e.to_string())?;
            assert!(unknown.is_empty(), "{unknown:?}");
            assert_eq!(c.pressure.timezone.as_deref(), Some("America/Montreal"));
            assert_eq!(c.pressure.cap.len(), 1);
            let settings = super::super::Settings::from_config(c).map_err(|e| e.to_string())?;
            assert!(!settings.dispatch.pressure.is_off());
            jail.set_env("RELANCE_PRESSURE__TIMEZONE", "Paris");
            let (c, _) = Config::load(Some(Path::new("relance.toml")), &Flags::default()).map_err(|e| e.to_string())?;
            let err = super::super::Settings::from_config(c).unwrap_err().to_string();
            assert!(err.starts_with("[pressure] timezone: unknown time zone \"Paris\""), "{err}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        Jail::expect_with(|jail| {
            jail.create_file("relance.toml", "[dispatch]\nconcurency = 4\n")?;
            let err = Config::load(Some(Path::new("relance.toml")), &Flags::default()).unwrap_err().to_string();
            assert!(err.contains("concurency") && err.contains("concurrency"), "{err}");
            let err = Config::load(Some(Path::new("missing.toml")), &Flags::default()).unwrap_err().to_string();
            assert!(err.contains("missing.toml"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_never_serialised() {
        let c = Config { admin_token: Some(Secret::new("s3cret")), ..Config::default() };
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("s3cret") && text.contains("***"));
    }
}
