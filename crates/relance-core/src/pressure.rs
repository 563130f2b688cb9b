//! Contact pressure: what may reach a contact, whatever the rules say. Quiet hours in the
//! contact's time zone, quiet days for SMS and calls, and frequency caps per channel over
//! a rolling window. Pure: the caller gives what was sent and the time.
//!
//! A message that may not go now is deferred (its due time moved, the reason kept) or,
//! over a cap with `on_cap = "skip"`, skipped. Transactional messages pass through.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::event::ActionType;

/// Channels caps and quiet hours apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Sms,
    /// `schedule_call` and `create_task`: a person reaching the contact.
    Call,
}

impl Channel {
    pub const NAMES: &'static [&'static str] = &["email", "sms", "call"];
    pub const ALL: [Channel; 3] = [Channel::Email, Channel::Sms, Channel::Call];

    pub fn of(action: ActionType) -> Option<Channel> {
        match action {
            ActionType::SendEmail => Some(Channel::Email),
            ActionType::SendSms => Some(Channel::Sms),
            ActionType::ScheduleCall | ActionType::CreateTask => Some(Channel::Call),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Call => "call",
        }
    }

    /// The action types of the channel (for the backends' counts).
    pub fn action_types(self) -> Vec<&'static str> {
        ActionType::ALL.iter().filter(|a| Channel::of(**a) == Some(self)).map(|a| a.as_str()).collect()
    }
}

/// What a job does over a cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OnCap {
    /// Waits until the oldest counted send leaves the window, then is checked again.
    #[default]
    Defer,
    /// Ends as `skipped`.
    Skip,
}

/// `[pressure]` as written in `relance.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PressureSpec {
    /// The estate's time zone; a contact's `attributes.timezone` wins.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursSpec>,
    /// Days without SMS or calls (emails allowed), e.g. `["sunday"]`.
    #[serde(default)]
    pub quiet_days: Vec<String>,
    #[serde(default)]
    pub cap: Vec<CapSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursSpec {
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSpec {
    pub channel: Channel,
    pub max: u32,
    pub per_days: u32,
}

/// The governor, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Pressure {
    timezone: Tz,
    quiet: Option<(NaiveTime, NaiveTime)>,
    quiet_days: Vec<Weekday>,
    caps: Vec<CapSpec>,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure::off()
    }
}

/// When a deferred message goes on a quiet day without quiet hours.
const MORNING: NaiveTime = match NaiveTime::from_hms_opt(9, 0, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// One cap as a contact has used it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapUsage {
    pub channel: Channel,
    pub max: u32,
    pub per_days: u32,
    /// Messages of the channel sent in the window.
    pub used: usize,
    /// When full: when the next slot frees.
    pub frees_at: Option<DateTime<Utc>>,
}

/// What the governor says of a message due now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Send,
    /// Not before `until` (then checked again).
    Defer {
        until: DateTime<Utc>,
        reason: String,
    },
    Skip {
        reason: String,
    },
}

/// One message about to go.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub action: ActionType,
    pub transactional: bool,
    pub on_cap: OnCap,
    /// The contact's `attributes.timezone`, if any.
    pub timezone: Option<&'a str>,
    /// When messages of the same channel were sent to the contact (or are being sent),
    /// any rule, over at least the longest cap window.
    pub sent: &'a [DateTime<Utc>],
    /// Messages of the same channel for the contact that go before this one if the
    /// last slot of a cap is contested: due now, of a higher-priority rule (ties: due
    /// earlier). They count as sent for this check only.
    pub ahead: usize,
    /// The rule's `max_per_day` and how many messages the rule sent since the start of
    /// the estate's day ([`Pressure::day_start`]).
    pub budget: Option<(u32, usize)>,
}

/// How long a message that yields the last slot of a cap waits before it is checked
/// again (by then the message ahead of it has been claimed, and counts as sent).
pub const YIELD: Duration = Duration::minutes(1);

impl Pressure {
    pub fn parse(spec: &PressureSpec) -> Result<Pressure, String> {
        let tz_name = spec.timezone.as_deref().unwrap_or(crate::rules::DEFAULT_TIMEZONE);
        let timezone = Tz::from_str(tz_name)
            .map_err(|_| format!("timezone: unknown time zone {tz_name:?} (an IANA name, e.g. Europe/Paris)"))?;
        let time = |field: &str, s: &str| {
            NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map_err(|_| format!("quiet_hours.{field}: {s:?} is not a time of day HH:MM (e.g. 20:30)"))
        };
        let quiet = match &spec.quiet_hours {
            Some(q) => {
                let (start, end) = (time("start", &q.start)?, time("end", &q.end)?);
                if start == end {
                    return Err("quiet_hours: start and end are equal; leave quiet_hours out for none".into());
                }
                Some((start, end))
            }
            None => None,
        };
        let quiet_days = spec
            .quiet_days
            .iter()
            .map(|d| {
                Weekday::from_str(d.trim()).map_err(|_| format!("quiet_days: {d:?} is not a day (monday … sunday)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, c) in spec.cap.iter().enumerate() {
            if c.max == 0 || c.per_days == 0 {
                return Err(format!("cap[{i}]: max and per_days must be at least 1"));
            }
        }
        Ok(Pressure { timezone, quiet, quiet_days, caps: spec.cap.clone() })
    }

    /// No quiet hours, no quiet days, no caps: everything passes.
    pub fn off() -> Pressure {
        Pressure {
            timezone: crate::rules::DEFAULT_TIMEZONE.parse().unwrap_or(Tz::Europe__Paris),
            quiet: None,
            quiet_days: Vec::new(),
            caps: Vec::new(),
        }
    }

    /// No quiet hours, no quiet days, no caps: everything passes.
    pub fn is_off(&self) -> bool {
        self.quiet.is_none() && self.quiet_days.is_empty() && self.caps.is_empty()
    }

    /// The longest cap window of a channel, for what the caller counts.
    pub fn window(&self, channel: Channel) -> Option<Duration> {
        self.caps.iter().filter(|c| c.channel == channel).map(|c| Duration::days(i64::from(c.per_days))).max()
    }

    /// How full each cap is for a contact, given when its messages were sent: what the
    /// dashboard shows on the contact's page.
    pub fn usage(&self, sent: &[(Channel, DateTime<Utc>)], now: DateTime<Utc>) -> Vec<CapUsage> {
        self.caps
            .iter()
            .map(|cap| {
                let window = Duration::days(i64::from(cap.per_days));
                let mut inside: Vec<DateTime<Utc>> =
                    sent.iter().filter(|(c, t)| *c == cap.channel && *t > now - window).map(|(_, t)| *t).collect();
                inside.sort_unstable();
                let frees_at =
                    (inside.len() >= cap.max as usize).then(|| inside[inside.len() - cap.max as usize] + window);
                CapUsage { channel: cap.channel, max: cap.max, per_days: cap.per_days, used: inside.len(), frees_at }
            })
            .collect()
    }

    /// May this message go now?
    pub fn check(&self, m: &Message<'_>, now: DateTime<Utc>) -> Verdict {
        let Some(channel) = Channel::of(m.action) else { return Verdict::Send };
        // A rule's own budget binds even its transactional messages: its author set it.
        if let Some((max, sent_today)) = m.budget
            && sent_today >= max as usize
        {
            let until = self.next_morning(now);
            return Verdict::Defer { until, reason: format!("deferred: budget: {max}/day for the rule") };
        }
        if m.transactional {
            return Verdict::Send;
        }
        for cap in self.caps.iter().filter(|c| c.channel == channel) {
            let window = Duration::days(i64::from(cap.per_days));
            let mut counted: Vec<DateTime<Utc>> = m.sent.iter().copied().filter(|t| *t > now - window).collect();
            let label = format!("cap: {} {}/{}d", channel.as_str(), cap.max, cap.per_days);
            if counted.len() < cap.max as usize {
                if counted.len() + m.ahead >= cap.max as usize {
                    let reason = format!("deferred: {label}, the last slot goes to a higher-priority message");
                    return Verdict::Defer { until: now + YIELD, reason };
                }
                continue;
            }
            return match m.on_cap {
                OnCap::Skip => Verdict::Skip { reason: label },
                OnCap::Defer => {
                    // The slot frees when enough of the counted sends leave the window.
                    counted.sort_unstable();
                    let freeing = counted[counted.len() - cap.max as usize];
                    Verdict::Defer { until: freeing + window, reason: format!("deferred: {label}") }
                }
            };
        }
        let (tz, note) = self.zone_of(m.timezone);
        match self.next_allowed(channel, tz, now) {
            Some((until, why)) => Verdict::Defer { until, reason: format!("deferred: {why}{note}") },
            None => Verdict::Send,
        }
    }

    /// The start of the estate's day containing `now` (what `max_per_day` counts from).
    pub fn day_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        local_time(self.timezone, now.with_timezone(&self.timezone).date_naive(), NaiveTime::MIN)
    }

    /// The next day's `quiet_hours.end` (or 09:00) in the estate's time zone: when a rule
    /// over its daily budget sends again.
    fn next_morning(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.timezone).date_naive();
        let day = today.succ_opt().unwrap_or(today);
        local_time(self.timezone, day, self.quiet.map_or(MORNING, |(_, end)| end))
    }

    /// The contact's zone, or the estate's with a note when the contact's is not valid.
    fn zone_of(&self, name: Option<&str>) -> (Tz, String) {
        match name.map(|n| (n, Tz::from_str(n.trim()))) {
            None => (self.timezone, String::new()),
            Some((_, Ok(tz))) => (tz, String::new()),
            Some((n, Err(_))) => (self.timezone, format!(" (invalid timezone {n:?}; used {})", self.timezone.name())),
        }
    }

    /// When a message of `channel` due at `now` may go, if not now, and why.
    fn next_allowed(&self, channel: Channel, tz: Tz, now: DateTime<Utc>) -> Option<(DateTime<Utc>, &'static str)> {
        let mut at = now;
        let mut why = None;
        // Each pass moves forward to a quiet window's end or a day's start: a week of
        // quiet days and one quiet window are crossed well within 16.
        for _ in 0..16 {
            let local = at.with_timezone(&tz);
            if channel != Channel::Email && self.quiet_days.contains(&local.weekday()) {
                let next = local.date_naive().succ_opt()?;
                at = local_time(tz, next, self.quiet.map_or(MORNING, |(_, end)| end));
                why.get_or_insert("quiet day");
                continue;
            }
            if let Some((start, end)) = self.quiet {
                let t = local.time();
                let inside = if start < end { t >= start && t < end } else { t >= start || t < end };
                if inside {
                    let day =
                        if start > end && t >= start { local.date_naive().succ_opt()? } else { local.date_naive() };
                    at = local_time(tz, day, end);
                    why.get_or_insert("quiet hours");
                    continue;
                }
            }
            return why.map(|w| (at, w));
        }
        why.map(|w| (at, w))
    }
}

/// A verdict's reason without its details (the slot given up, an invalid time zone's
/// note), for counting by reason: `deferred: cap: email 2/7d, the last slot goes …` is
/// `deferred: cap: email 2/7d`.
pub fn short_reason(reason: &str) -> &str {
    let r = reason.split(" (").next().unwrap_or(reason);
    r.split(", ").next().unwrap_or(r)
}

/// `day` at `time` in `tz`; a time that a spring-forward change skips is taken an hour
/// later, one that autumn repeats at its first occurrence.
fn local_time(tz: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = day.and_time(time);
    tz.from_local_datetime(&naive)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(naive + Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

#[cfg(test)]
mod tests;
