//! What the dashboard aggregates. Counting a week of events at read time would scan up to
//! millions of rows per page view, so each committed batch adds to hourly counters
//! instead: events per (hour, trigger) and rule firings per (hour, rule). The counters
//! are folded per batch (a few rows per commit, not one per event).

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::IngestResult;

/// Milliseconds in an hour: counters are keyed by the start of their hour.
pub const HOUR_MS: i64 = 3_600_000;

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    /// Events stored, by trigger (`none` for events that trigger nothing).
    Trigger,
    /// Events on which a rule fired (counted once per event, whatever its actions).
    Rule,
    /// Events stored under a name Relance does not recognise, by name.
    Unrecognised,
    /// Messages contact pressure deferred, by reason (`quiet hours`, `cap: email 2/7d`).
    Deferred,
    /// Messages contact pressure skipped, by reason.
    Skipped,
}

impl CounterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterKind::Trigger => "trigger",
            CounterKind::Rule => "rule",
            CounterKind::Unrecognised => "unrecognised",
            CounterKind::Deferred => "deferred",
            CounterKind::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<CounterKind> {
        match s {
            "trigger" => Some(CounterKind::Trigger),
            "rule" => Some(CounterKind::Rule),
            "unrecognised" => Some(CounterKind::Unrecognised),
            "deferred" => Some(CounterKind::Deferred),
            "skipped" => Some(CounterKind::Skipped),
            _ => None,
        }
    }
}

/// One hourly counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourlyCount {
    /// Start of the hour, epoch milliseconds.
    pub hour: i64,
    pub kind: CounterKind,
    pub name: String,
    pub count: i64,
}

/// The counter of a message contact pressure held back: deferred (its job back to
/// `pending`) or skipped, by its reason without details ("deferred: cap: email 2/7d, the
/// last slot goes to …" counts as `cap: email 2/7d`; an invalid time zone's note is cut).
pub fn held_counter(skipped: bool, reason: &str) -> (CounterKind, String) {
    let kind = if skipped { CounterKind::Skipped } else { CounterKind::Deferred };
    let r = relance_core::pressure::short_reason(reason);
    (kind, r.strip_prefix("deferred: ").unwrap_or(r).to_owned())
}

/// Folds held-back messages into counters for `now`'s hour.
pub fn fold_held(held: &[(CounterKind, String)], now: DateTime<Utc>) -> Vec<HourlyCount> {
    let hour = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let mut counts: HashMap<(CounterKind, Cow<'_, str>), i64> = HashMap::new();
    for (kind, name) in held {
        *counts.entry((*kind, Cow::Borrowed(name.as_str()))).or_default() += 1;
    }
    sorted_counts(hour, counts)
}

/// Counters in key order (see [`fold_counts`]).
fn sorted_counts(hour: i64, counts: HashMap<(CounterKind, Cow<'_, str>), i64>) -> Vec<HourlyCount> {
    let mut out: Vec<HourlyCount> = counts
        .into_iter()
        .map(|((kind, name), count)| HourlyCount { hour, kind, name: name.into_owned(), count })
        .collect();
    out.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    out
}

/// The contact of the dashboard's test events: `.invalid` can never receive mail, and
/// the charts of contacts leave it out.
pub const TEST_EMAIL: &str = "test@relance.invalid";

/// The label of events without a trigger.
pub const NO_TRIGGER: &str = "none";

/// Folds the results of one committed batch into counters, sorted by key (so that
/// concurrent writers take row locks in the same order and cannot deadlock).
pub fn fold_counts<'a>(results: impl IntoIterator<Item = &'a IngestResult>, now: DateTime<Utc>) -> Vec<HourlyCount> {
    let hour = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let mut counts: HashMap<(CounterKind, Cow<'a, str>), i64> = HashMap::new();
    // Test events are shown in the feed but would skew every chart.
    for r in results.into_iter().filter(|r| !r.duplicate && !r.test) {
        let trigger = r.trigger.map(|t| t.as_str()).unwrap_or(NO_TRIGGER);
        *counts.entry((CounterKind::Trigger, Cow::Borrowed(trigger))).or_default() += 1;
        if let Some(name) = &r.unrecognised {
            *counts.entry((CounterKind::Unrecognised, Cow::Borrowed(name.as_str()))).or_default() += 1;
        }
        let mut rules: Vec<&str> = r.actions.iter().map(|a| &*a.fired.rule_id).collect();
        rules.sort_unstable();
        rules.dedup();
        for rule in rules {
            *counts.entry((CounterKind::Rule, Cow::Borrowed(rule))).or_default() += 1;
        }
        for a in &r.actions {
            if let Some(reason) = &a.pressure {
                let (kind, name) = held_counter(a.fired.status == relance_core::ActionStatus::Skipped, reason);
                *counts.entry((kind, Cow::Owned(name))).or_default() += 1;
            }
        }
    }
    sorted_counts(hour, counts)
}

/// How contacts are spread: score histogram and segments.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ContactDistribution {
    pub total: i64,
    /// Contacts per score bucket: `[0..10), [10..20), … [90..100]` (100 falls in the last).
    pub score_buckets: [i64; 10],
    /// Contacts per segment, largest first.
    pub segments: Vec<(String, i64)>,
}

impl ContactDistribution {
    /// Adds `count` contacts of score `score` to the histogram.
    pub fn add_score(&mut self, score: i64, count: i64) {
        let bucket = (score.clamp(0, 100) / 10).min(9) as usize;
        self.score_buckets[bucket] += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ActionRecord;
    use relance_core::{Contact, Trigger};

    fn result(trigger: Option<Trigger>, rules: &[&str], duplicate: bool) -> IngestResult {
        let actions = rules
            .iter()
            .map(|r| ActionRecord {
                fired: relance_core::FiredAction {
                    rule_id: (*r).into(),
                    trigger: Trigger::EmailOpened,
                    action_type: relance_core::ActionType::AddTag,
                    config: std::sync::Arc::new(serde_json::json!({"tag": "x"})),
                    delay_minutes: 0,
                    status: relance_core::ActionStatus::Applied,
                    due_at: None,
                    reason: None,
                    skip_if: None,
                    transactional: false,
                    on_cap: None,
                    priority: 50,
                    max_per_day: None,
                },
                job_id: None,
                run_id: None,
                pressure: None,
            })
            .collect();
        IngestResult {
            event_id: "e".into(),
            duplicate,
            trigger,
            unrecognised: None,
            test: false,
            contact: Contact::default(),
            actions,
            runs: Vec::new(),
            paused: Vec::new(),
        }
    }

    #[test]
    fn test_events_are_not_counted() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:42:00Z").unwrap().with_timezone(&Utc);
        let mut test = result(None, &[], false);
        test.test = true;
        assert!(fold_counts([&test], now).is_empty());
        assert_eq!(fold_counts([&result(None, &[], false)], now).len(), 1);
    }

    #[test]
    fn counts_events_by_trigger_and_rules_once_per_event() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T10:42:00Z").unwrap().with_timezone(&Utc);
        let results = [
            result(Some(Trigger::EmailOpened), &["a", "a", "b"], false),
            result(Some(Trigger::EmailOpened), &["a"], false),
            result(None, &[], false),
            result(Some(Trigger::EmailOpened), &["a"], true),
        ];
        let counts = fold_counts(&results, now);
        let hour = DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().timestamp_millis();
        let get =
            |kind, name: &str| counts.iter().find(|c| c.kind == kind && c.name == name).map(|c| (c.hour, c.count));
        assert_eq!(get(CounterKind::Trigger, "email_opened"), Some((hour, 2)));
        assert_eq!(get(CounterKind::Trigger, NO_TRIGGER), Some((hour, 1)));
        assert_eq!(get(CounterKind::Rule, "a"), Some((hour, 2)));
        assert_eq!(get(CounterKind::Rule, "b"), Some((hour, 1)));
        assert_eq!(counts.len(), 4);
    }

    #[test]
    fn histogram_puts_100_in_the_last_bucket() {
        let mut d = ContactDistribution::default();
        d.add_score(0, 1);
        d.add_score(9, 1);
        d.add_score(10, 2);
        d.add_score(100, 3);
        assert_eq!(d.score_buckets, [2, 2, 0, 0, 0, 0, 0, 0, 0, 3]);
    }
}
