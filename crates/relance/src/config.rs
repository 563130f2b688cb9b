//! Settings: built-in defaults < `relance.toml` (`--config`) < environment < flags.
//! Secrets come from the environment or the file only (flags would show in `ps`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

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
        let a = self.0.as_bytes();
        if a.len() != candidate.len() {
            return false;
        }
        a.iter().zip(candidate).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
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
    pub bind: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub rules: Option<PathBuf>,
    pub webhook_token: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub default_segment: Option<String>,
    pub proxy_opens_are_opens: Option<bool>,
    pub request_timeout_secs: Option<u64>,
    pub ingest_queue_capacity: Option<usize>,
    pub ingest_max_batch: Option<usize>,
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
    pub proxy_opens_are_opens: bool,
    pub request_timeout: Duration,
    pub ingest_queue_capacity: usize,
    pub ingest_max_batch: usize,
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
            proxy_opens_are_opens: false,
            request_timeout: Duration::from_secs(15),
            ingest_queue_capacity: 4096,
            ingest_max_batch: 256,
        }
    }
}

/// Values from flags and environment (clap reads both); `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub rules: Option<PathBuf>,
    pub default_segment: Option<String>,
    pub proxy_opens_are_opens: Option<bool>,
}

impl Settings {
    /// Layers the file, then the environment secrets, then flags/env values over defaults.
    pub fn resolve(file: FileConfig, over: Overrides, env: impl Fn(&str) -> Option<String>) -> Settings {
        let d = Settings::default();
        let secret = |name: &str| env(name).filter(|s| !s.is_empty()).map(Secret);
        Settings {
            bind: over.bind.or(file.bind).unwrap_or(d.bind),
            database_url: over.database_url.or(file.database_url).unwrap_or(d.database_url),
            rules: over.rules.or(file.rules),
            webhook_token: secret("RELANCE_WEBHOOK_TOKEN").or(file.webhook_token),
            admin_token: secret("RELANCE_ADMIN_TOKEN").or(file.admin_token),
            default_segment: over.default_segment.or(file.default_segment).unwrap_or(d.default_segment),
            proxy_opens_are_opens: over.proxy_opens_are_opens.or(file.proxy_opens_are_opens).unwrap_or(false),
            request_timeout: file.request_timeout_secs.map(Duration::from_secs).unwrap_or(d.request_timeout),
            ingest_queue_capacity: file.ingest_queue_capacity.unwrap_or(d.ingest_queue_capacity),
            ingest_max_batch: file.ingest_max_batch.unwrap_or(d.ingest_max_batch),
        }
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
        if self.default_segment.trim().is_empty() {
            bail!("the default segment must not be empty");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Settings::resolve(file, over, |k| (k == "RELANCE_ADMIN_TOKEN").then(|| "env".to_owned()));
        assert_eq!(s.database_url, "sqlite://f.db");
        assert_eq!(s.default_segment, "VIP");
        assert_eq!(s.admin_token.as_ref().map(Secret::expose), Some("env"));
        assert_eq!(format!("{:?}", s.admin_token), "Some(Secret(***))");
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }

    #[test]
    fn secret_comparison() {
        let s = Secret::new("token");
        assert!(s.matches(b"token"));
        assert!(!s.matches(b"tokem"));
        assert!(!s.matches(b"tok"));
    }
}
