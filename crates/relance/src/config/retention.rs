//! `[retention]`: how long old data is kept, declared (file and environment) and checked.

use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// A number of days, or `"keep"` (never pruned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Keep {
    Days(u32),
    Forever(KeepWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum KeepWord {
    #[serde(rename = "keep")]
    Keep,
}

impl Keep {
    const FOREVER: Keep = Keep::Forever(KeepWord::Keep);

    fn days(self) -> Option<u32> {
        match self {
            Keep::Days(d) => Some(d),
            Keep::Forever(_) => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw payloads of events older than this are dropped; the parsed event stays.
    pub raw_payload_days: Keep,
    /// Whole events older than this are deleted (history and contacts stay).
    pub events_days: Keep,
    /// Jobs that ended longer ago than this go, with their attempts.
    pub finished_jobs_days: Keep,
    /// Rejected delivery items not seen again for this long go.
    pub rejected_deliveries_days: Keep,
    /// Audit log entries older than this go (who changed what).
    pub audit_log_days: Keep,
    /// How often a pruning pass runs.
    pub every_minutes: f64,
    /// Rows per pruning statement: small, so that ingest never waits long behind one.
    pub batch_size: usize,
    /// Pause between two batches, for the same reason.
    pub pause_ms: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_payload_days: Keep::Days(90),
            events_days: Keep::FOREVER,
            finished_jobs_days: Keep::Days(180),
            rejected_deliveries_days: Keep::Days(90),
            audit_log_days: Keep::Days(400),
            every_minutes: 60.0,
            batch_size: 500,
            pause_ms: 20,
        }
    }
}

/// `[retention]` checked: `None` keeps that kind forever.
#[derive(Debug, Clone, PartialEq)]
pub struct RetentionSettings {
    pub raw_payloads: Option<chrono::Duration>,
    pub events: Option<chrono::Duration>,
    pub finished_jobs: Option<chrono::Duration>,
    pub rejected_deliveries: Option<chrono::Duration>,
    pub audit_log: Option<chrono::Duration>,
    pub every: Duration,
    pub batch_size: usize,
    pub pause: Duration,
}

impl RetentionSettings {
    /// `longest_cap_days`: the longest contact-pressure window; finished jobs are what the
    /// caps count, so they must outlive it.
    pub fn from_config(r: &RetentionConfig, longest_cap_days: u32) -> anyhow::Result<RetentionSettings> {
        let days = |name: &str, keep: Keep| -> anyhow::Result<Option<chrono::Duration>> {
            match keep.days() {
                Some(0) => bail!("[retention] {name} = 0: expected a number of days of at least 1, or \"keep\""),
                Some(d) => Ok(Some(chrono::Duration::days(i64::from(d)))),
                None => Ok(None),
            }
        };
        if let Some(d) = r.finished_jobs_days.days()
            && d <= longest_cap_days.max(1)
        {
            bail!(
                "[retention] finished_jobs_days = {d}: must be more than the longest [pressure] cap window \
                 ({longest_cap_days} days) and than a rule's one-day budget, which count the messages sent"
            );
        }
        if !(r.every_minutes.is_finite() && r.every_minutes > 0.0 && r.every_minutes <= 7.0 * 24.0 * 60.0) {
            bail!(
                "[retention] every_minutes = {}: expected minutes above 0, at most a week (e.g. 60)",
                r.every_minutes
            );
        }
        if !(1..=100_000).contains(&r.batch_size) {
            bail!("[retention] batch_size = {}: expected 1 to 100000 rows", r.batch_size);
        }
        Ok(RetentionSettings {
            raw_payloads: days("raw_payload_days", r.raw_payload_days)?,
            events: days("events_days", r.events_days)?,
            finished_jobs: days("finished_jobs_days", r.finished_jobs_days)?,
            rejected_deliveries: days("rejected_deliveries_days", r.rejected_deliveries_days)?,
            audit_log: days("audit_log_days", r.audit_log_days)?,
            every: Duration::from_secs_f64(r.every_minutes * 60.0),
            batch_size: r.batch_size,
            pause: Duration::from_millis(r.pause_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_events_and_prune_payloads_after_90_days() {
        let s = RetentionSettings::from_config(&RetentionConfig::default(), 7).expect("valid");
        assert_eq!(s.raw_payloads, Some(chrono::Duration::days(90)));
        assert_eq!(s.events, None);
        assert_eq!(s.finished_jobs, Some(chrono::Duration::days(180)));
    }

    #[test]
    fn keep_is_a_word_and_zero_is_refused() {
        let r: RetentionConfig = toml::from_str("raw_payload_days = \"keep\"\nevents_days = 365").expect("parses");
        let s = RetentionSettings::from_config(&r, 0).expect("valid");
        assert_eq!((s.raw_payloads, s.events), (None, Some(chrono::Duration::days(365))));
        let r: RetentionConfig = toml::from_str("events_days = 0").expect("parses");
        let err = RetentionSettings::from_config(&r, 0).expect_err("zero").to_string();
        assert!(err.contains("events_days = 0"), "{err}");
        assert!(toml::from_str::<RetentionConfig>("events_days = \"forever\"").is_err());
    }

    #[test]
    fn finished_jobs_must_outlive_the_caps_they_feed() {
        let r: RetentionConfig = toml::from_str("finished_jobs_days = 7").expect("parses");
        let err = RetentionSettings::from_config(&r, 7).expect_err("too short").to_string();
        assert!(err.contains("longest [pressure] cap window (7 days)"), "{err}");
        assert!(RetentionSettings::from_config(&r, 6).is_ok());
    }
}
