//! When an inbound event happened. Senders disagree on units (Brevo's own examples give
//! `ts_epoch` in seconds, live deliveries in milliseconds), so an epoch number is read by
//! its magnitude, and a time before 2000 or more than a day after receipt is a misread
//! field, never a real event time: the received time is used and the reason recorded.

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Europe::Paris;
use serde_json::{Map, Value};

use super::int_of;

/// Epoch numbers at or above this are milliseconds (as seconds it would be year 5138).
const MILLIS_FROM: i64 = 100_000_000_000;
/// … and at or above this microseconds (as milliseconds, year 5138 again).
const MICROS_FROM: i64 = 100_000_000_000_000;

/// The earliest plausible event time.
fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether `t` can be a real event time for something received at `received_at`.
pub fn plausible(t: DateTime<Utc>, received_at: DateTime<Utc>) -> bool {
    t >= earliest() && t <= received_at + Duration::days(1)
}

/// An epoch number in seconds, milliseconds or microseconds, by magnitude; with whether
/// it was finer than seconds.
pub fn epoch_of(n: i64) -> Option<(DateTime<Utc>, bool)> {
    let abs = n.unsigned_abs();
    if abs >= MICROS_FROM as u64 {
        Utc.timestamp_micros(n).single().map(|t| (t, true))
    } else if abs >= MILLIS_FROM as u64 {
        Utc.timestamp_millis_opt(n).single().map(|t| (t, true))
    } else {
        Utc.timestamp_opt(n, 0).single().map(|t| (t, false))
    }
}

/// An epoch number in whole seconds, whatever unit it was given in.
pub fn epoch_seconds(n: i64) -> Option<i64> {
    epoch_of(n).map(|(t, _)| t.timestamp())
}

/// Uses `t` when plausible, else the received time with why: `(time, time_source)`.
pub fn checked(t: Option<DateTime<Utc>>, field: &str, received_at: DateTime<Utc>) -> (DateTime<Utc>, String) {
    match t {
        Some(t) if plausible(t, received_at) => (t, field.to_owned()),
        Some(t) => (received_at, format!("received: {field} out of range ({})", t.to_rfc3339())),
        None => (received_at, "received: no timestamp".to_owned()),
    }
}

/// A Brevo event's time and the field it came from (`time_source`): the most precise
/// plausible one of `ts_epoch` (milliseconds in live deliveries), `ts_event`, `ts`
/// (seconds, UTC) and `date` (`YYYY-MM-DD HH:MM:SS`, CET/CEST per Brevo's docs).
pub fn event_time(obj: &Map<String, Value>, received_at: DateTime<Utc>) -> (DateTime<Utc>, String) {
    let mut candidates: Vec<(&str, DateTime<Utc>, bool)> = Vec::new();
    for field in ["ts_epoch", "ts_event", "ts"] {
        if let Some((t, fine)) = int_of(obj.get(field)).and_then(epoch_of) {
            candidates.push((field, t, fine));
        }
    }
    if let Some(t) = obj.get("date").and_then(Value::as_str).and_then(paris_date) {
        candidates.push(("date", t, false));
    }
    // Finer first, then the order above; a stable sort keeps it.
    candidates.sort_by_key(|(_, _, fine)| !fine);
    if let Some((field, t, _)) = candidates.iter().find(|(_, t, _)| plausible(*t, received_at)) {
        return (*t, (*field).to_owned());
    }
    match candidates.first() {
        Some((field, t, _)) => checked(Some(*t), field, received_at),
        None => checked(None, "", received_at),
    }
}

fn paris_date(s: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    Paris.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn received() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn time_of(v: Value) -> (DateTime<Utc>, String) {
        event_time(v.as_object().unwrap(), received())
    }

    #[test]
    fn epoch_numbers_are_read_by_magnitude() {
        assert_eq!(epoch_of(1604933623).unwrap().0.timestamp(), 1604933623);
        assert_eq!(epoch_of(1685538788179).unwrap().0.timestamp_millis(), 1685538788179);
        assert_eq!(epoch_of(1685538788179123).unwrap().0.timestamp_micros(), 1685538788179123);
        assert_eq!(epoch_seconds(1685538788179), Some(1685538788));
    }

    #[test]
    fn the_most_precise_plausible_field_wins() {
        let (t, src) = time_of(json!({"ts_epoch": 1685538788179i64, "ts_event": 1685538788, "ts": 1685538788}));
        assert_eq!((t.timestamp_millis(), src.as_str()), (1685538788179, "ts_epoch"));
        // Brevo's documentation examples: ts_epoch in seconds.
        let (t, src) = time_of(json!({"ts_epoch": 1604933623, "ts_event": 1604933737}));
        assert_eq!((t.timestamp(), src.as_str()), (1604933623, "ts_epoch"));
        let (t, src) = time_of(json!({"ts_event": 1604933737, "ts": 1604937337}));
        assert_eq!((t.timestamp(), src.as_str()), (1604933737, "ts_event"));
        // A broken ts_epoch does not hide a good ts_event.
        let (t, src) = time_of(json!({"ts_epoch": 17, "ts_event": 1604933737}));
        assert_eq!((t.timestamp(), src.as_str()), (1604933737, "ts_event"));
        // `date` is Paris time: 15:13:08 CEST is 13:13:08 UTC.
        let (t, src) = time_of(json!({"date": "2023-05-31 15:13:08"}));
        assert_eq!((t, src.as_str()), (Utc.with_ymd_and_hms(2023, 5, 31, 13, 13, 8).unwrap(), "date"));
    }

    #[test]
    fn implausible_times_fall_back_to_reception_with_the_reason() {
        let (t, src) = time_of(json!({"ts_epoch": 1}));
        assert_eq!(t, received());
        assert!(src.starts_with("received: ts_epoch out of range (1970-01-01"), "{src}");
        let future = received() + Duration::days(2);
        let (t, src) = time_of(json!({"ts_event": future.timestamp()}));
        assert_eq!(t, received());
        assert!(src.starts_with("received: ts_event out of range"), "{src}");
        let (t, src) = time_of(json!({"s_epoch": 1685538788179i64}));
        assert_eq!((t, src.as_str()), (received(), "received: no timestamp"));
        // Within a day ahead is clock skew, kept.
        let soon = received() + Duration::hours(2);
        assert_eq!(time_of(json!({"ts_event": soon.timestamp()})).0, soon);
    }
}
