//! Contact pressure in a backtest: the messages a rule set would send over the replay,
//! passed through the governor in due order, as the dispatcher would have — how many the
//! caps, quiet hours and rule budgets would defer or skip.
//!
//! Simplified where production depends on timing: a message never yields a cap's last
//! slot to a higher-priority one due at the same moment (the planner's order decides),
//! and a deferral does not move the steps after it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::ActionType;
use crate::pressure::{Channel, Message, OnCap, Pressure, Verdict, short_reason as short};

/// One message a rule set sends in the replay.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub contact_id: i64,
    pub action: ActionType,
    pub rule_id: String,
    pub due_at: DateTime<Utc>,
    pub transactional: bool,
    pub on_cap: OnCap,
    pub max_per_day: Option<u32>,
    /// A goal, an opt-out or a `skip_if` stopped it before it was due.
    pub stopped: bool,
}

/// What contact pressure would have done to a rule set's messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PressureStats {
    /// Messages deferred at least once (each counted once, under its first reason).
    pub deferred: u64,
    pub skipped: u64,
    /// `deferred: quiet hours`, `skipped: cap: email 2/7d`… → messages.
    pub by_reason: BTreeMap<String, u64>,
}

/// A message re-checked this many times is left deferred (a window that never opens).
const MAX_CHECKS: u8 = 32;

pub(super) fn simulate(
    pressure: &Pressure,
    messages: &[Sent],
    timezone: impl Fn(i64) -> Option<String>,
) -> PressureStats {
    let mut stats = PressureStats::default();
    let mut queue: BinaryHeap<Reverse<(DateTime<Utc>, usize, u8)>> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.stopped && Channel::of(m.action).is_some())
        .map(|(i, m)| Reverse((m.due_at, i, 0)))
        .collect();
    let mut sent: HashMap<(i64, Channel), Vec<DateTime<Utc>>> = HashMap::new();
    let mut rule_days: HashMap<(&str, DateTime<Utc>), usize> = HashMap::new();
    let mut deferred = vec![false; messages.len()];
    while let Some(Reverse((at, i, checks))) = queue.pop() {
        let m = &messages[i];
        let Some(channel) = Channel::of(m.action) else { continue };
        let zone = timezone(m.contact_id);
        let day = pressure.day_start(at);
        let history = sent.get(&(m.contact_id, channel)).map(Vec::as_slice).unwrap_or(&[]);
        let message = Message {
            action: m.action,
            transactional: m.transactional,
            on_cap: m.on_cap,
            timezone: zone.as_deref(),
            sent: history,
            ahead: 0,
            budget: m.max_per_day.map(|max| (max, rule_days.get(&(m.rule_id.as_str(), day)).copied().unwrap_or(0))),
        };
        match pressure.check(&message, at) {
            Verdict::Send => {
                sent.entry((m.contact_id, channel)).or_default().push(at);
                if m.max_per_day.is_some() {
                    *rule_days.entry((m.rule_id.as_str(), day)).or_default() += 1;
                }
            }
            Verdict::Defer { until, reason } => {
                if !deferred[i] {
                    deferred[i] = true;
                    stats.deferred += 1;
                    *stats.by_reason.entry(short(&reason).to_owned()).or_default() += 1;
                }
                if checks < MAX_CHECKS && until > at {
                    queue.push(Reverse((until, i, checks + 1)));
                }
            }
            Verdict::Skip { reason } => {
                stats.skipped += 1;
                *stats.by_reason.entry(format!("skipped: {}", short(&reason))).or_default() += 1;
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pressure::{CapSpec, PressureSpec, QuietHoursSpec};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn email(contact_id: i64, due: &str) -> Sent {
        Sent {
            contact_id,
            action: ActionType::SendEmail,
            rule_id: "r".into(),
            due_at: at(due),
            transactional: false,
            on_cap: OnCap::Defer,
            max_per_day: None,
            stopped: false,
        }
    }

    #[test]
    fn caps_and_quiet_hours_over_a_replay() {
        let p = Pressure::parse(&PressureSpec {
            quiet_hours: Some(QuietHoursSpec { start: "20:30".into(), end: "09:00".into() }),
            cap: vec![CapSpec { channel: Channel::Email, max: 2, per_days: 7 }],
            ..PressureSpec::default()
        })
        .unwrap();
        let messages = vec![
            email(1, "2026-01-14T10:00:00Z"),
            email(1, "2026-01-14T10:05:00Z"),
            email(1, "2026-01-14T10:10:00Z"), // over the cap: deferred
            Sent { on_cap: OnCap::Skip, ..email(1, "2026-01-14T10:15:00Z") },
            Sent { transactional: true, ..email(1, "2026-01-14T10:20:00Z") },
            email(2, "2026-01-14T21:00:00Z"), // 22:00 in Paris
            Sent { stopped: true, ..email(2, "2026-01-14T10:00:00Z") },
        ];
        let s = simulate(&p, &messages, |_| None);
        assert_eq!((s.deferred, s.skipped), (2, 1));
        assert_eq!(s.by_reason["deferred: cap: email 2/7d"], 1);
        assert_eq!(s.by_reason["deferred: quiet hours"], 1);
        assert_eq!(s.by_reason["skipped: cap: email 2/7d"], 1);
        // In Montreal 21:00 UTC is 16:00: it goes.
        let s = simulate(&p, &messages[5..6], |_| Some("America/Montreal".into()));
        assert_eq!(s, PressureStats::default());
    }
}
