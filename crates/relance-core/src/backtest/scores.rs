//! The backtest's view of scores: each score's distribution under both rule sets, and
//! how many contacts would show different values in Brevo.

use std::collections::HashMap;

use serde::Serialize;

use crate::contact::Contact;
use crate::engine::Engine;
use crate::named_score::LEAD;
use crate::sync_fields::SyncFields;

/// Buckets per histogram.
const BUCKETS: i64 = 10;

/// How a score is spread over the contacts, under each rule set.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreDistribution {
    /// `lead` (the seed's score) or a declared score's name.
    pub name: String,
    /// Each bucket's lowest value; a bucket runs to the next one's (the last to the top
    /// of the range, included).
    pub bucket_starts: Vec<i64>,
    /// Contacts per bucket, live rules.
    pub live: Vec<u64>,
    /// Contacts per bucket, candidate rules (a score the candidate does not declare: empty).
    pub candidate: Vec<u64>,
}

fn histogram(range: [i64; 2], values: impl Iterator<Item = i64>) -> (Vec<i64>, Vec<u64>) {
    let [lo, hi] = range;
    // Lead: 0, 10, …, 90, the last bucket holding 90..=100.
    let width = ((hi - lo) as f64 / BUCKETS as f64).ceil().max(1.0) as i64;
    let starts: Vec<i64> = (0..BUCKETS).map(|i| lo + i * width).take_while(|s| *s <= hi).collect();
    let mut counts = vec![0u64; starts.len()];
    let last = counts.len() - 1;
    for v in values {
        let i = ((v.clamp(lo, hi) - lo) / width) as usize;
        counts[i.min(last)] += 1;
    }
    (starts, counts)
}

/// The value of score `name` for a contact under `engine`'s declarations.
fn value(engine: &Engine, name: &str, c: &Contact) -> Option<i64> {
    if name == LEAD {
        return Some(i64::from(c.score.value()));
    }
    let spec = engine.rules().score(name)?;
    Some(c.scores.get(name).map_or(spec.initial, |v| v.value))
}

pub(super) fn distributions(
    live: &Engine,
    candidate: &Engine,
    a: &HashMap<i64, Contact>,
    b: &HashMap<i64, Contact>,
) -> Vec<ScoreDistribution> {
    let mut names = vec![(LEAD.to_owned(), [0, 100])];
    for spec in candidate.rules().scores().iter().chain(live.rules().scores()) {
        if !names.iter().any(|(n, _)| *n == spec.name) {
            names.push((spec.name.clone(), spec.range));
        }
    }
    names
        .into_iter()
        .map(|(name, range)| {
            let (bucket_starts, live_counts) = histogram(range, a.values().filter_map(|c| value(live, &name, c)));
            let declared = name == LEAD || candidate.rules().score(&name).is_some();
            let (_, cand_counts) = histogram(range, b.values().filter_map(|c| value(candidate, &name, c)));
            let live_declared = name == LEAD || live.rules().score(&name).is_some();
            ScoreDistribution {
                name,
                bucket_starts,
                live: if live_declared { live_counts } else { Vec::new() },
                candidate: if declared { cand_counts } else { Vec::new() },
            }
        })
        .collect()
}

/// Contacts whose Brevo attributes (the `[brevo.sync]` mapping) would differ if the
/// candidate replaced the live rules.
pub(super) fn brevo_changes(sync: &SyncFields, a: &HashMap<i64, Contact>, b: &HashMap<i64, Contact>) -> usize {
    a.iter().filter(|(id, x)| b.get(id).is_some_and(|y| sync.values(x) != sync.values(y))).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_cover_the_range_in_ten_buckets() {
        let (starts, counts) = histogram([0, 100], [0, 9, 10, 55, 99, 100, 150].into_iter());
        assert_eq!(starts, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
        assert_eq!(counts, [2, 1, 0, 0, 0, 1, 0, 0, 0, 3]);
        let (starts, counts) = histogram([0, 4], [0, 4].into_iter());
        assert_eq!(starts, [0, 1, 2, 3, 4]);
        assert_eq!(counts, [1, 0, 0, 0, 1]);
    }
}
