//! Schedules of `time_based` rules: `daily HH:MM` or a five-field cron expression, in a
//! time zone (default Europe/Paris, the estate's).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

pub const DEFAULT_TIMEZONE: &str = "Europe/Paris";

#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: Cron,
    tz: Tz,
}

impl Schedule {
    /// `daily 09:00`, or cron `minute hour day-of-month month day-of-week` (`0 9 * * 1`).
    pub fn parse(spec: &str, timezone: Option<&str>) -> Result<Schedule, String> {
        let tz_name = timezone.unwrap_or(DEFAULT_TIMEZONE);
        let tz =
            Tz::from_str(tz_name).map_err(|_| format!("unknown time zone {tz_name:?} (e.g. Europe/Paris, UTC)"))?;
        let spec = spec.trim();
        let expr = match spec.strip_prefix("daily ") {
            Some(hm) => {
                let (h, m) = hm.trim().split_once(':').ok_or_else(|| format!("{spec:?}: expected daily HH:MM"))?;
                let (h, m): (u32, u32) = match (h.parse(), m.parse()) {
                    (Ok(h), Ok(m)) if h < 24 && m < 60 => (h, m),
                    _ => return Err(format!("{spec:?}: expected daily HH:MM with a valid time")),
                };
                format!("{m} {h} * * *")
            }
            None => {
                if spec.split_whitespace().count() != 5 {
                    return Err(format!("{spec:?}: expected \"daily HH:MM\" or a five-field cron expression"));
                }
                spec.to_owned()
            }
        };
        let cron = Cron::from_str(&expr).map_err(|e| format!("{spec:?}: {e}"))?;
        Ok(Schedule { source: spec.to_owned(), cron, tz })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The most recent occurrence at or before `t`.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&t.with_timezone(&self.tz), true).ok().map(|d| d.with_timezone(&Utc))
    }

    /// The first occurrence strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t.with_timezone(&self.tz), false).ok().map(|d| d.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn daily_in_paris_time() {
        let s = Schedule::parse("daily 09:00", None).unwrap();
        // 2026-01-10 10:00 UTC = 11:00 in Paris (winter, UTC+1): today's 09:00 Paris was 08:00 UTC.
        let t = Utc.with_ymd_and_hms(2026, 1, 10, 10, 0, 0).unwrap();
        assert_eq!(s.latest_at_or_before(t), Some(Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap()));
        assert_eq!(s.next_after(t), Some(Utc.with_ymd_and_hms(2026, 1, 11, 8, 0, 0).unwrap()));
        // Summer time: 09:00 Paris is 07:00 UTC.
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(s.latest_at_or_before(summer), Some(Utc.with_ymd_and_hms(2026, 7, 1, 7, 0, 0).unwrap()));
    }

    #[test]
    fn cron_and_errors() {
        let mondays = Schedule::parse("0 9 * * 1", Some("UTC")).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap(); // a Saturday
        assert_eq!(mondays.next_after(t), Some(Utc.with_ymd_and_hms(2026, 1, 12, 9, 0, 0).unwrap()));
        assert!(Schedule::parse("daily 25:00", None).is_err());
        assert!(Schedule::parse("every day", None).is_err());
        assert!(Schedule::parse("0 9 * *", None).is_err());
        assert!(Schedule::parse("daily 09:00", Some("Mars/Olympus")).is_err());
    }
}
