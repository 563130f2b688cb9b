//! Events as the engine sees them, and the seed's vocabularies of triggers and actions.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// The nine triggers of the seed.
    Trigger {
        EmailOpened = "email_opened",
        EmailClicked = "email_clicked",
        EmailBounce = "email_bounce",
        PageVisit = "page_visit",
        Purchase = "purchase",
        FormSubmit = "form_submit",
        TimeBased = "time_based",
        Unsubscribe = "unsubscribe",
        LeadScoreHigh = "lead_score_high",
    }
}

impl Trigger {
    pub fn index(self) -> usize {
        self as usize
    }
}

vocabulary! {
    /// The seed's eight action types plus `remove_tag` and `set_segment`.
    ActionType {
        SendEmail = "send_email",
        UpdateScore = "update_score",
        AddTag = "add_tag",
        CreateTask = "create_task",
        ScheduleCall = "schedule_call",
        PauseCampaign = "pause_campaign",
        SendSms = "send_sms",
        TriggerWebhook = "trigger_webhook",
        RemoveTag = "remove_tag",
        SetSegment = "set_segment",
    }
}

impl ActionType {
    /// Actions the engine carries out itself on the contact; the others reach the
    /// outside world and always become jobs.
    pub fn is_internal(self) -> bool {
        matches!(
            self,
            ActionType::UpdateScore
                | ActionType::AddTag
                | ActionType::RemoveTag
                | ActionType::SetSegment
                | ActionType::PauseCampaign
        )
    }

    /// Actions that message the contact (email, SMS).
    pub fn is_messaging(self) -> bool {
        matches!(self, ActionType::SendEmail | ActionType::SendSms)
    }

    /// Actions that reach the person, by message or by someone calling or following up:
    /// an opt-out pauses them all. Webhooks and internal actions inform systems, not the
    /// person, and keep running.
    pub fn reaches_person(self) -> bool {
        matches!(self, ActionType::SendEmail | ActionType::SendSms | ActionType::ScheduleCall | ActionType::CreateTask)
    }
}

vocabulary! {
    BounceType {
        Hard = "hard",
        Soft = "soft",
    }
}

vocabulary! {
    /// Where an event came from; `test` is the dashboard's "Send a test event" (stored and
    /// shown, never counted).
    Source {
        Brevo = "brevo",
        Tracking = "tracking",
        Api = "api",
        Scheduler = "scheduler",
        Test = "test",
    }
}

/// One thing that happened to a contact, already interpreted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub source: Source,
    /// The name the sender used (`hard_bounce`, `purchase`, …).
    pub name: String,
    /// `None` for events that are stored but fire no rule (`delivered`, …).
    pub trigger: Option<Trigger>,
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<BounceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<i64>,
    /// Whether the unsubscribe is a spam complaint.
    #[serde(default)]
    pub complaint: bool,
    /// For scheduler events: the one `time_based` rule whose occurrence this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_rule: Option<String>,
    /// Everything else the sender said (behaviour `metadata`, Brevo tags…), for
    /// expressions and templates.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    /// A bare event for `trigger`, for tests and the scheduler.
    pub fn new(source: Source, trigger: Trigger, occurred_at: DateTime<Utc>) -> Event {
        Event {
            source,
            name: trigger.as_str().to_owned(),
            trigger: Some(trigger),
            occurred_at,
            amount: None,
            link: None,
            bounce_type: None,
            page: None,
            product_id: None,
            message_id: None,
            campaign_id: None,
            complaint: false,
            scheduled_rule: None,
            attributes: serde_json::Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_round_trip() {
        for t in Trigger::ALL {
            assert_eq!(t.as_str().parse::<Trigger>(), Ok(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for a in ActionType::ALL {
            assert_eq!(a.as_str().parse::<ActionType>(), Ok(*a));
        }
        assert_eq!(Trigger::ALL.len(), 9);
        assert_eq!(ActionType::ALL.len(), 10);
        assert_eq!(Trigger::LeadScoreHigh.index(), 8);
    }
}
