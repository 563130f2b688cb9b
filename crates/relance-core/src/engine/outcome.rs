//! What applying an event produces: fired actions, changes with their cause, the
//! cancellations it asks for.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::contact::{Contact, SuppressionReason};
use crate::event::{ActionType, Trigger};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Done on the contact already (immediate internal action).
    Applied,
    /// Stored as a job to run at `due_at`.
    Scheduled,
    /// Not to be run: the contact may not receive it.
    Suppressed,
    /// Stored as a job, due later than the rule said: contact pressure (quiet hours, a
    /// cap, the rule's daily budget) holds it until `due_at`. Set by the planner.
    Deferred,
    /// Over a cap with `on_cap = "skip"`: stored as a `skipped` job, never run. Set by
    /// the planner.
    Skipped,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Applied => "applied",
            ActionStatus::Scheduled => "scheduled",
            ActionStatus::Suppressed => "suppressed",
            ActionStatus::Deferred => "deferred",
            ActionStatus::Skipped => "skipped",
        }
    }
}

/// One action a rule fired for this event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FiredAction {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rule_id: Arc<str>,
    /// The trigger that fired the rule (`lead_score_high` for cascades).
    pub trigger: Trigger,
    pub action_type: ActionType,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Arc<Value>,
    pub delay_minutes: u32,
    pub status: ActionStatus,
    /// When a scheduled action is due.
    #[serde(serialize_with = "crate::time_text::rfc3339_option")]
    pub due_at: Option<DateTime<Utc>>,
    /// Why a suppressed action was suppressed.
    pub reason: Option<SuppressionReason>,
    /// Checked when the job is due (it travels with the job, not with the rule set).
    #[serde(skip)]
    pub skip_if: Option<Arc<crate::rules::Happening>>,
    /// Passes contact pressure (it travels with the job).
    #[serde(skip)]
    pub transactional: bool,
    #[serde(skip)]
    pub on_cap: Option<crate::pressure::OnCap>,
    /// The rule's priority: which message takes a cap's last slot.
    #[serde(skip)]
    pub priority: u8,
    /// The rule's daily budget of messages.
    #[serde(skip)]
    pub max_per_day: Option<u32>,
}

/// A firing of a rule that starts runs: entered, or refused by its re-entry policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunEntry {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub rule_id: Arc<str>,
    /// Why the policy refused a new run (`None`: a run starts).
    pub refused: Option<String>,
}

/// Which field of a contact changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Score,
    Tag,
    Segment,
    Unsubscribed,
    Complained,
    EmailInvalid,
    Purchases,
    TotalSpent,
    /// A named score: holds its path, `scores.<name>`.
    Named(Arc<str>),
}

impl Field {
    /// The field of the named score `name`.
    pub fn named(name: &str) -> Field {
        Field::Named(Arc::from(format!("scores.{name}")))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Field::Named(path) => path,
            Field::Score => "score",
            Field::Tag => "tag",
            Field::Segment => "segment",
            Field::Unsubscribed => "unsubscribed",
            Field::Complained => "complained",
            Field::EmailInvalid => "email_invalid",
            Field::Purchases => "purchases",
            Field::TotalSpent => "total_spent",
        }
    }
}

impl Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One state change, with its cause. For tags, `before`/`after` hold the tag name on the
/// side where it is present (added: `None → tag`; removed: `tag → None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// `score`, `tag`, …, or `scores.<name>` for a named score.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub field: Field,
    pub before: Value,
    pub after: Value,
    /// `None` when the event itself caused it (e.g. a hard bounce flags the address).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub rule_id: Option<Arc<str>>,
    pub action_type: Option<ActionType>,
    /// Time did it: a score's decay (no rule, no action).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decay: bool,
}

impl Change {
    /// What history stores as the change's action: the action type, or `decay`.
    pub fn cause_label(&self) -> Option<&'static str> {
        if self.decay { Some(DECAY) } else { self.action_type.map(ActionType::as_str) }
    }
}

/// The cause history records for a score's decay.
pub const DECAY: &str = "decay";

/// Pending jobs of the contact that this event cancels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CancelScope {
    /// Everything that reaches the person: email, SMS, call, task (after an unsubscribe
    /// or complaint: opt-out means pause). Webhooks and internal actions go on.
    OptOut,
    /// Everything (`pause_campaign`).
    All,
}

impl CancelScope {
    /// Whether a pending job of this action type is cancelled.
    pub fn covers(self, action: ActionType) -> bool {
        self == CancelScope::All || action.reaches_person()
    }

    /// The action types it cancels, for the backends' `UPDATE … WHERE action_type IN`.
    pub fn action_types(self) -> Vec<&'static str> {
        ActionType::ALL.iter().filter(|a| self.covers(**a)).map(|a| a.as_str()).collect()
    }

    /// What a cancelled job records as its last error.
    pub fn reason(self) -> &'static str {
        match self {
            CancelScope::OptOut => "cancelled: unsubscribed",
            CancelScope::All => "cancelled: pause_campaign",
        }
    }
}

/// Everything one event did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Outcome {
    pub contact: Contact,
    pub actions: Vec<FiredAction>,
    pub changes: Vec<Change>,
    pub cancel_pending: Option<CancelScope>,
    /// Expressions that failed at run time, cascades that were cut.
    pub warnings: Vec<String>,
    /// Firings of rules that start runs, in firing order.
    pub runs: Vec<RunEntry>,
    /// Rules that matched but are paused (the kill switch): nothing was done for them.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub paused: Vec<Arc<str>>,
}
