//! Contacts and the validated identities that find them.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A lead score, always within `0..=100`: every way to build one clamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Score(u8);

impl Score {
    pub const MIN: Score = Score(0);
    pub const MAX: Score = Score(100);

    /// Clamps any integer into the score range.
    pub fn clamped(value: i64) -> Score {
        Score(value.clamp(0, 100) as u8)
    }

    pub fn value(self) -> u8 {
        self.0
    }

    /// Adds a (possibly negative) delta and clamps.
    pub fn plus(self, delta: i64) -> Score {
        Score::clamped(i64::from(self.0).saturating_add(delta))
    }
}

impl Default for Score {
    fn default() -> Self {
        Score(50)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("is not a valid email address (expected local@domain)")]
    InvalidEmail,
    #[error("must be 1 to 64 printable characters without spaces")]
    InvalidClientCode,
}

/// An email address, trimmed and lower-cased so that the same person is one contact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, IdentityError> {
        let s = raw.trim().to_lowercase();
        let valid = s.len() <= 254
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    // `marie@domaine` is a typo for `marie@domaine.fr`, not an address.
                    && domain.contains('.')
                    && !domain.contains("..")
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid { Ok(Email(s)) } else { Err(IdentityError::InvalidEmail) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Email::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The CRM's customer code (e.g. `CL001`), trimmed; case is kept as the CRM writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ClientCode(String);

impl ClientCode {
    pub fn parse(raw: &str) -> Result<ClientCode, IdentityError> {
        let s = raw.trim();
        let valid = !s.is_empty() && s.chars().count() <= 64 && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid { Ok(ClientCode(s.to_owned())) } else { Err(IdentityError::InvalidClientCode) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ClientCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ClientCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ClientCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a contact has engaged so far; the formula's "engagement events" is their sum
/// (bounces excepted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Engagement {
    pub opens: u32,
    pub clicks: u32,
    pub page_visits: u32,
    pub form_submits: u32,
    pub soft_bounces: u32,
}

impl Engagement {
    pub fn events(&self) -> u32 {
        self.opens.saturating_add(self.clicks).saturating_add(self.page_visits).saturating_add(self.form_submits)
    }
}

/// A contact as the engine sees it. Storage adds an id and a version around it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Contact {
    pub email: Option<Email>,
    pub client_code: Option<ClientCode>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub segment: String,
    pub score: Score,
    pub tags: BTreeSet<String>,
    /// RFM score from the CRM, 0..=4.
    pub rfm_score: Option<f64>,
    pub purchases: u32,
    pub total_spent: f64,
    #[serde(deserialize_with = "crate::time_text::from_rfc3339_option")]
    pub last_purchase_at: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "crate::time_text::from_rfc3339_option")]
    pub last_activity_at: Option<DateTime<Utc>>,
    pub engagement: Engagement,
    pub unsubscribed: bool,
    pub complained: bool,
    pub email_invalid: bool,
    /// Free attributes from the CRM or the API.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The rule set's named scores (`[[score]]`); the lead score is `score`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub scores: crate::named_score::Scores,
}

pub const DEFAULT_SEGMENT: &str = "Standard";

impl Default for Contact {
    fn default() -> Self {
        Contact {
            email: None,
            client_code: None,
            first_name: None,
            last_name: None,
            phone: None,
            segment: DEFAULT_SEGMENT.to_owned(),
            score: Score::default(),
            tags: BTreeSet::new(),
            rfm_score: None,
            purchases: 0,
            total_spent: 0.0,
            last_purchase_at: None,
            last_activity_at: None,
            engagement: Engagement::default(),
            unsubscribed: false,
            complained: false,
            email_invalid: false,
            attributes: serde_json::Map::new(),
            scores: Default::default(),
        }
    }
}

impl Contact {
    /// A contact first seen through an event: the default segment and the formula's
    /// score for what is known about it (nothing yet, so the baseline).
    pub fn new(email: Option<Email>, client_code: Option<ClientCode>, segment: &str, now: DateTime<Utc>) -> Contact {
        let mut contact = Contact { email, client_code, segment: segment.to_owned(), ..Contact::default() };
        contact.score = contact.formula_score(now);
        contact
    }

    /// The lead-score formula applied to what the contact record holds.
    pub fn formula_score(&self, now: DateTime<Utc>) -> Score {
        let days = self.last_purchase_at.map(|at| (now - at).num_days().max(0) as u32);
        crate::score::ScoreInputs {
            rfm: self.rfm_score.unwrap_or(0.0).clamp(0.0, 4.0),
            engagement_events: self.engagement.events(),
            purchases: self.purchases,
            days_since_purchase: days,
        }
        .score()
    }

    /// Why no email may reach this contact, if any.
    pub fn email_suppression(&self) -> Option<SuppressionReason> {
        if self.complained {
            Some(SuppressionReason::Complained)
        } else if self.unsubscribed {
            Some(SuppressionReason::Unsubscribed)
        } else if self.email_invalid {
            Some(SuppressionReason::HardBounced)
        } else {
            None
        }
    }

    /// Why `action` may not reach this contact, if any: email obeys opt-outs and hard
    /// bounces; SMS, calls and tasks obey opt-outs (an opt-out pauses everything that
    /// contacts the person); webhooks and internal actions are never suppressed.
    pub fn suppression_for(&self, action: crate::event::ActionType) -> Option<SuppressionReason> {
        use crate::event::ActionType;
        match action {
            ActionType::SendEmail => self.email_suppression(),
            a if a.reaches_person() => self.sms_suppression(),
            _ => None,
        }
    }

    /// Why no SMS may reach this contact, if any (a bounced email address does not
    /// stop SMS).
    pub fn sms_suppression(&self) -> Option<SuppressionReason> {
        if self.complained {
            Some(SuppressionReason::Complained)
        } else if self.unsubscribed {
            Some(SuppressionReason::Unsubscribed)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    Unsubscribed,
    Complained,
    HardBounced,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::Unsubscribed => "unsubscribed",
            SuppressionReason::Complained => "complained",
            SuppressionReason::HardBounced => "hard_bounced",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_clamps_both_ways() {
        assert_eq!(Score::clamped(-5).value(), 0);
        assert_eq!(Score::clamped(250).value(), 100);
        assert_eq!(Score::clamped(42).plus(-100).value(), 0);
        assert_eq!(Score::clamped(90).plus(50).value(), 100);
        assert_eq!(Score::clamped(90).plus(i64::MAX).value(), 100);
    }

    #[test]
    fn email_is_normalised() {
        let e = Email::parse("  Ann.Smith@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ann.smith@example.com");
        for bad in ["", "ann", "@x.com", "ann@", "a b@x.com", "a@b@c", "a@.x"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn client_code_is_trimmed_not_lowered() {
        assert_eq!(ClientCode::parse(" CL001 ").unwrap().as_str(), "CL001");
        assert!(ClientCode::parse("  ").is_err());
        assert!(ClientCode::parse("CL 1").is_err());
    }

    #[test]
    fn suppression_causes() {
        let mut c = Contact::default();
        assert_eq!(c.email_suppression(), None);
        c.email_invalid = true;
        assert_eq!(c.email_suppression(), Some(SuppressionReason::HardBounced));
        assert_eq!(c.sms_suppression(), None);
        c.unsubscribed = true;
        assert_eq!(c.sms_suppression(), Some(SuppressionReason::Unsubscribed));
        use crate::event::ActionType;
        assert_eq!(c.suppression_for(ActionType::ScheduleCall), Some(SuppressionReason::Unsubscribed));
        assert_eq!(c.suppression_for(ActionType::CreateTask), Some(SuppressionReason::Unsubscribed));
        assert_eq!(c.suppression_for(ActionType::TriggerWebhook), None);
        assert_eq!(c.suppression_for(ActionType::UpdateScore), None);
    }
}
