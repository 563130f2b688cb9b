//! `[brevo.sync]`: which contact fields are pushed to which Brevo attributes, and how
//! often. Declared here, checked once at start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use relance_core::sync_fields::{SyncField, SyncFields};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrevoSyncConfig {
    /// Brevo attribute (upper case) → Relance field: `LEAD_SCORE = "score"`,
    /// `ENGAGEMENT = "scores.engagement"`, `RELANCE_TAGS = "tags"`.
    pub attributes: BTreeMap<String, String>,
    /// A contact Brevo does not know is created (`POST /contacts`) instead of reported.
    pub create_missing_contacts: bool,
    /// A contact is pushed at most once in this many seconds (changes meanwhile coalesce).
    pub min_interval_seconds: u64,
    /// A change waits this long before its push, so that a burst goes out as one.
    pub delay_seconds: u64,
    /// Contacts per `POST /contacts/batch`.
    pub batch_size: usize,
    /// Requests per second to the contacts API, across every instance (Brevo: 10).
    pub requests_per_second: f64,
}

impl Default for BrevoSyncConfig {
    fn default() -> Self {
        BrevoSyncConfig {
            attributes: BTreeMap::new(),
            create_missing_contacts: false,
            min_interval_seconds: 60,
            delay_seconds: 5,
            batch_size: 100,
            requests_per_second: 10.0,
        }
    }
}

/// The checked settings; absent when no attribute is mapped.
#[derive(Debug, Clone)]
pub struct BrevoSyncSettings {
    pub fields: Arc<SyncFields>,
    pub create_missing_contacts: bool,
    pub min_interval: Duration,
    pub batch_size: usize,
    /// Between two requests to the contacts API, whichever instance sends them.
    pub spacing: Duration,
}

impl BrevoSyncSettings {
    pub fn from_config(c: &BrevoSyncConfig) -> anyhow::Result<Option<BrevoSyncSettings>> {
        if c.attributes.is_empty() {
            return Ok(None);
        }
        let mut attributes = Vec::with_capacity(c.attributes.len());
        for (name, path) in &c.attributes {
            let upper = name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !upper {
                bail!("[brevo.sync] attributes: {name:?} is not a Brevo attribute name (upper case A-Z, 0-9, _)");
            }
            let field = SyncField::parse(path).map_err(|e| anyhow::anyhow!("[brevo.sync] attributes.{name}: {e}"))?;
            attributes.push((name.clone(), field));
        }
        if !(1..=1000).contains(&c.batch_size) {
            bail!("[brevo.sync] batch_size must be between 1 and 1000");
        }
        if !(c.requests_per_second.is_finite() && c.requests_per_second > 0.0) {
            bail!("[brevo.sync] requests_per_second must be a number above 0");
        }
        let delay = chrono::Duration::seconds(i64::try_from(c.delay_seconds.min(86_400)).unwrap_or(0));
        Ok(Some(BrevoSyncSettings {
            fields: Arc::new(SyncFields { attributes, delay }),
            create_missing_contacts: c.create_missing_contacts,
            min_interval: Duration::from_secs(c.min_interval_seconds),
            batch_size: c.batch_size,
            spacing: Duration::from_secs_f64(1.0 / c.requests_per_second),
        }))
    }

    /// The named scores the mapping reads, to check against the rule set.
    pub fn named_scores(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.attributes.iter().filter_map(|(attr, f)| match f {
            SyncField::Named(n) => Some((attr.as_str(), n.as_str())),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_checked_by_name() {
        let mut c = BrevoSyncConfig::default();
        assert!(BrevoSyncSettings::from_config(&c).unwrap().is_none(), "nothing mapped: no sync");
        c.attributes.insert("LEAD_SCORE".into(), "score".into());
        c.attributes.insert("ENGAGEMENT".into(), "scores.engagement".into());
        let s = BrevoSyncSettings::from_config(&c).unwrap().unwrap();
        assert_eq!(s.fields.attributes.len(), 2);
        assert_eq!(s.spacing, Duration::from_millis(100));
        assert_eq!(s.named_scores().collect::<Vec<_>>(), [("ENGAGEMENT", "engagement")]);
        c.attributes.insert("lead".into(), "score".into());
        assert!(BrevoSyncSettings::from_config(&c).unwrap_err().to_string().contains("\"lead\""));
        c.attributes.remove("lead");
        c.attributes.insert("COLOUR".into(), "colour".into());
        assert!(BrevoSyncSettings::from_config(&c).unwrap_err().to_string().contains("attributes.COLOUR"));
    }
}
