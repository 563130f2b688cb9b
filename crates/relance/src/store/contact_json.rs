//! The form a contact takes in the `data` column of both backends: its JSON without the
//! fields that hold their default value.
//!
//! `Contact` reads with `#[serde(default)]`: a field left out reads back as
//! `Contact::default()` has it. So the stored form leaves out what equals that default
//! (no name, no phone, no tags, no purchase, the flags off, no attributes, zero
//! counters), and reads back equal. On the behaviour load that is about 446 → 230 bytes
//! per contact (issue 20): every event rewrites its contact, so this is written, logged
//! and, on PostgreSQL, kept as a dead row version, once per event. The API still shows
//! every field: it serialises `Contact` itself. Rows written before read the same.
//!
//! Every field of `Contact` is named below (destructured without `..`): a field added to
//! `Contact` does not compile here until its stored form is decided.

use std::collections::BTreeSet;

use relance_core::contact::{DEFAULT_SEGMENT, Engagement};
use relance_core::{ClientCode, Contact, Email, Score};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::StoreError;

/// The contact's JSON for the `data` column.
pub(crate) fn to_stored(contact: &Contact) -> Result<String, StoreError> {
    let Contact {
        email,
        client_code,
        first_name,
        last_name,
        phone,
        segment,
        score,
        tags,
        rfm_score,
        purchases,
        total_spent,
        last_purchase_at,
        last_activity_at,
        engagement,
        unsubscribed,
        complained,
        email_invalid,
        attributes,
        scores,
    } = contact;
    let Engagement { opens, clicks, page_visits, form_submits, soft_bounces } = engagement;
    let stored = Stored {
        email,
        client_code,
        first_name,
        last_name,
        phone,
        segment,
        score,
        tags,
        rfm_score,
        purchases,
        total_spent,
        last_purchase_at,
        last_activity_at,
        engagement: StoredEngagement { opens, clicks, page_visits, form_submits, soft_bounces },
        unsubscribed,
        complained,
        email_invalid,
        attributes,
        scores,
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::Unavailable(e.into()))
}

#[derive(Serialize)]
struct Stored<'a> {
    #[serde(skip_serializing_if = "none")]
    email: &'a Option<Email>,
    #[serde(skip_serializing_if = "none")]
    client_code: &'a Option<ClientCode>,
    #[serde(skip_serializing_if = "none")]
    first_name: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    last_name: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    phone: &'a Option<String>,
    #[serde(skip_serializing_if = "default_segment")]
    segment: &'a String,
    #[serde(skip_serializing_if = "default_score")]
    score: &'a Score,
    #[serde(skip_serializing_if = "no_tags")]
    tags: &'a BTreeSet<String>,
    #[serde(skip_serializing_if = "none")]
    rfm_score: &'a Option<f64>,
    #[serde(skip_serializing_if = "zero")]
    purchases: &'a u32,
    #[serde(skip_serializing_if = "no_amount")]
    total_spent: &'a f64,
    #[serde(skip_serializing_if = "none", serialize_with = "rfc3339_ref")]
    last_purchase_at: &'a Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "none", serialize_with = "rfc3339_ref")]
    last_activity_at: &'a Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "StoredEngagement::is_empty")]
    engagement: StoredEngagement<'a>,
    #[serde(skip_serializing_if = "off")]
    unsubscribed: &'a bool,
    #[serde(skip_serializing_if = "off")]
    complained: &'a bool,
    #[serde(skip_serializing_if = "off")]
    email_invalid: &'a bool,
    #[serde(skip_serializing_if = "no_attributes")]
    attributes: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "relance_core::named_score::Scores::is_empty")]
    scores: &'a relance_core::named_score::Scores,
}

/// `Engagement` reads with `#[serde(default)]` too: a zero counter is left out.
#[derive(Serialize)]
struct StoredEngagement<'a> {
    #[serde(skip_serializing_if = "zero")]
    opens: &'a u32,
    #[serde(skip_serializing_if = "zero")]
    clicks: &'a u32,
    #[serde(skip_serializing_if = "zero")]
    page_visits: &'a u32,
    #[serde(skip_serializing_if = "zero")]
    form_submits: &'a u32,
    #[serde(skip_serializing_if = "zero")]
    soft_bounces: &'a u32,
}

impl StoredEngagement<'_> {
    fn is_empty(&self) -> bool {
        [self.opens, self.clicks, self.page_visits, self.form_submits, self.soft_bounces].iter().all(|n| **n == 0)
    }
}

fn none<T>(value: &&Option<T>) -> bool {
    value.is_none()
}

/// A time as chrono writes it, in one piece ([`relance_core::time_text`]).
fn rfc3339_ref<S: serde::Serializer>(
    at: &&Option<chrono::DateTime<chrono::Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    relance_core::time_text::rfc3339_option(at, serializer)
}

fn off(value: &&bool) -> bool {
    !**value
}

fn zero(value: &&u32) -> bool {
    **value == 0
}

fn no_amount(value: &&f64) -> bool {
    **value == 0.0
}

fn no_tags(value: &&BTreeSet<String>) -> bool {
    value.is_empty()
}

fn no_attributes(value: &&Map<String, Value>) -> bool {
    value.is_empty()
}

fn default_segment(value: &&String) -> bool {
    value.as_str() == DEFAULT_SEGMENT
}

fn default_score(value: &&Score) -> bool {
    **value == Score::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use relance_core::named_score::ScoreValue;
    use serde_json::json;

    fn round_trip(contact: &Contact) -> Contact {
        serde_json::from_str(&to_stored(contact).unwrap()).unwrap()
    }

    #[test]
    fn a_default_contact_is_stored_as_an_empty_object_and_reads_back_equal() {
        let contact = Contact::default();
        assert_eq!(to_stored(&contact).unwrap(), "{}");
        assert_eq!(round_trip(&contact), contact);
    }

    #[test]
    fn every_field_set_reads_back_equal() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let contact = Contact {
            email: Some(Email::parse("anne@exemple.fr").unwrap()),
            client_code: Some(ClientCode::parse("CL1").unwrap()),
            first_name: Some("Anne".into()),
            last_name: Some("Martin".into()),
            phone: Some("+33612345678".into()),
            segment: "VIP".into(),
            score: Score::clamped(0),
            tags: ["bio".to_owned()].into_iter().collect(),
            rfm_score: Some(0.0),
            purchases: 3,
            total_spent: 120.5,
            last_purchase_at: Some(at),
            last_activity_at: Some(at),
            engagement: Engagement { opens: 1, clicks: 2, page_visits: 3, form_submits: 4, soft_bounces: 5 },
            unsubscribed: true,
            complained: true,
            email_invalid: true,
            attributes: json!({"ville": "Beaune"}).as_object().unwrap().clone(),
            scores: [("fidelite".to_owned(), ScoreValue { value: 7, base: 9, since: at })].into_iter().collect(),
        };
        assert_eq!(round_trip(&contact), contact);
        let stored: Value = serde_json::from_str(&to_stored(&contact).unwrap()).unwrap();
        assert_eq!(stored["score"], 0, "a score of 0 is not the default (50): it is written");
        assert_eq!(stored["rfm_score"], 0.0, "an RFM score of 0 is known, not absent");
    }

    #[test]
    fn only_defaults_are_left_out() {
        let contact = Contact {
            client_code: Some(ClientCode::parse("CL2").unwrap()),
            engagement: Engagement { page_visits: 4, ..Engagement::default() },
            purchases: 1,
            ..Contact::default()
        };
        assert_eq!(
            to_stored(&contact).unwrap(),
            r#"{"client_code":"CL2","purchases":1,"engagement":{"page_visits":4}}"#
        );
        assert_eq!(round_trip(&contact), contact);
    }

    #[test]
    fn the_full_form_written_before_reads_the_same() {
        let contact = Contact { purchases: 2, segment: "VIP".into(), ..Contact::default() };
        let full = serde_json::to_string(&contact).unwrap();
        assert_eq!(serde_json::from_str::<Contact>(&full).unwrap(), round_trip(&contact));
    }
}
