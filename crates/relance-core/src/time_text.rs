//! Times written into JSON as chrono's own `Serialize` writes them
//! (`2026-12-07T13:38:33.691853456Z`), but handed to the serialiser as one string.
//! chrono writes its `Display` in pieces, and a JSON serialiser escapes each piece on
//! its own: callgrind counted 1,700 instructions per webhook answer in the due times'
//! pieces, and 7,000 per event in the writer for the contact's and the event's times.

use chrono::{DateTime, SecondsFormat, Utc};

/// For `#[serde(serialize_with = "…")]` on a `DateTime<Utc>`.
pub fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// For `#[serde(serialize_with = "…")]` on an `Option<DateTime<Utc>>`.
pub fn rfc3339_option<S: serde::Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[derive(serde::Serialize)]
    struct Written<'a> {
        #[serde(serialize_with = "rfc3339_option")]
        at: &'a Option<DateTime<Utc>>,
    }

    #[test]
    fn the_text_is_chronos_at_every_precision() {
        let second = Utc.with_ymd_and_hms(2026, 12, 7, 13, 38, 33).single().expect("valid time");
        for nanos in [0, 1, 10, 691_000_000, 691_800_000, 691_853_000, 691_853_400, 691_853_456, 999_999_999] {
            let at = Some(second + chrono::Duration::nanoseconds(nanos));
            let ours = serde_json::to_string(&Written { at: &at }).expect("serialises");
            let chronos = serde_json::to_string(&serde_json::json!({ "at": at })).expect("serialises");
            assert_eq!(ours, chronos, "{nanos} ns");
        }
        let before_1970 = Some(Utc.with_ymd_and_hms(1969, 7, 20, 20, 17, 40).single().expect("valid time"));
        assert_eq!(
            serde_json::to_string(&Written { at: &before_1970 }).expect("serialises"),
            serde_json::to_string(&serde_json::json!({ "at": before_1970 })).expect("serialises")
        );
        assert_eq!(serde_json::to_string(&Written { at: &None }).expect("serialises"), r#"{"at":null}"#);
    }
}
