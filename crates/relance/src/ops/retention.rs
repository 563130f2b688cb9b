//! The retention pass: for each kind of old data with a limit, prune in small batches
//! until nothing older than its cut-off is left. Run by `serve` every `every_minutes`
//! and by `relance db prune`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::retention::RetentionSettings;
use crate::store::StoreError;
use crate::store::retention::{Maintenance, PruneKind};

/// What one pass pruned, per kind.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    pub pruned: BTreeMap<&'static str, u64>,
    pub batches: u64,
}

impl PruneReport {
    pub fn total(&self) -> u64 {
        self.pruned.values().sum()
    }
}

/// Each kind's cut-off at `now`; `None` where that kind is kept forever.
pub fn cutoffs(policy: &RetentionSettings, now: DateTime<Utc>) -> Vec<(PruneKind, DateTime<Utc>)> {
    PruneKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let keep = match kind {
                PruneKind::RawPayloads => policy.raw_payloads,
                PruneKind::Events => policy.events,
                PruneKind::FinishedJobs => policy.finished_jobs,
                PruneKind::RejectedDeliveries => policy.rejected_deliveries,
                PruneKind::AuditLog => policy.audit_log,
            }?;
            Some((kind, now - keep))
        })
        .collect()
}

/// One pass. `stop` ends it early (shutdown): what was pruned stays pruned, the next pass
/// goes on from there. `on_batch` hears each batch as it commits (for the metrics).
pub async fn prune_pass<S: Maintenance + ?Sized>(
    store: &S,
    policy: &RetentionSettings,
    now: DateTime<Utc>,
    stop: impl Fn() -> bool,
    mut on_batch: impl FnMut(PruneKind, u64),
) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport::default();
    for (kind, before) in cutoffs(policy, now) {
        let total = report.pruned.entry(kind.as_str()).or_default();
        loop {
            if stop() {
                return Ok(report);
            }
            let n = store.prune(kind, before, policy.batch_size).await?;
            *total += n;
            report.batches += 1;
            on_batch(kind, n);
            if n < policy.batch_size as u64 {
                break;
            }
            tokio::time::sleep(policy.pause).await;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::retention::RetentionConfig;

    #[test]
    fn kinds_kept_forever_have_no_cutoff() {
        let policy = RetentionSettings::from_config(&RetentionConfig::default(), 0).expect("valid");
        let now = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").expect("time").with_timezone(&Utc);
        let c = cutoffs(&policy, now);
        let kinds: Vec<_> = c.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [PruneKind::RawPayloads, PruneKind::FinishedJobs, PruneKind::RejectedDeliveries, PruneKind::AuditLog]
        );
        assert_eq!(c[0].1.to_rfc3339(), "2026-09-02T00:00:00+00:00");
    }
}
