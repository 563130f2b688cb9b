//! Times written into JSON as chrono's own `Serialize` writes them
//! (`2026-12-07T13:38:33.691853456Z`), but handed to the serialiser as one string.
//! chrono writes its `Display` in pieces, and a JSON serialiser escapes each piece on
//! its own: callgrind counted 1,700 instructions per webhook answer in the due times'
//! pieces, and 7,000 per event in the writer for the contact's and the event's times.
//! Reading goes through chrono's strict RFC 3339 parser first, for the same reason.

use std::fmt;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use serde::de;

fn rfc3339<S: serde::Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// For `#[serde(serialize_with = "…")]` on an `Option<DateTime<Utc>>`.
pub fn rfc3339_option<S: serde::Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// For `#[serde(deserialize_with = "…")]` on an `Option<DateTime<Utc>>`: accepts what
/// chrono's own `Deserialize` accepts, with the same errors. The form this crate writes
/// goes through chrono's strict RFC 3339 parser; anything else (`2025-12-27 16:40:00Z`)
/// through the relaxed one chrono's `Deserialize` uses. Callgrind: reading a stored
/// contact's two times took 4,300 instructions through the relaxed parser.
pub fn from_rfc3339_option<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    deserializer.deserialize_option(OptionalTimeText)
}

/// As serde's `Option` visitor, around [`TimeText`].
struct OptionalTimeText;

impl<'de> de::Visitor<'de> for OptionalTimeText {
    type Value = Option<DateTime<Utc>>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("option")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(TimeText).map(Some)
    }
}

/// As chrono's own visitor (its words in errors), the strict parser first.
struct TimeText;

impl de::Visitor<'_> for TimeText {
    type Value = DateTime<Utc>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an RFC 3339 formatted date and time string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(at) => Ok(at.with_timezone(&Utc)),
            Err(_) => text.parse::<DateTime<FixedOffset>>().map(|at| at.with_timezone(&Utc)).map_err(E::custom),
        }
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

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Read {
        #[serde(default, deserialize_with = "from_rfc3339_option")]
        at: Option<DateTime<Utc>>,
    }

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct ChronoRead {
        #[serde(default)]
        at: Option<DateTime<Utc>>,
    }

    #[test]
    fn reading_accepts_and_refuses_what_chrono_does() {
        let texts = [
            r#"{"at":"2026-12-07T13:38:33Z"}"#,
            r#"{"at":"2026-12-07T13:38:33.691853456Z"}"#,
            r#"{"at":"2026-12-07T14:38:33.5+01:00"}"#,
            r#"{"at":"2026-12-07 13:38:33Z"}"#,
            r#"{"at":"2026-12-07t13:38:33z"}"#,
            r#"{"at":"1969-07-20T20:17:40Z"}"#,
            r#"{"at":null}"#,
            r#"{}"#,
            r#"{"at":"2026-12-07T13:38:33"}"#,
            r#"{"at":"yesterday"}"#,
            r#"{"at":"2026-13-07T13:38:33Z"}"#,
            r#"{"at":1796315209}"#,
        ];
        for text in texts {
            let ours = serde_json::from_str::<Read>(text).map(|r| r.at).map_err(|e| e.to_string());
            let chronos = serde_json::from_str::<ChronoRead>(text).map(|r| r.at).map_err(|e| e.to_string());
            assert_eq!(ours, chronos, "{text}");
        }
        let value = serde_json::json!({"at": "2026-12-07T13:38:33.25Z"});
        assert_eq!(
            serde_json::from_value::<Read>(value.clone()).expect("reads").at,
            serde_json::from_value::<ChronoRead>(value).expect("reads").at
        );
    }
}
