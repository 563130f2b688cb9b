//! What a write plan holds: rows for the backends to store as they are, and the answer
//! for each event.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contact::Contact;
use crate::engine::{CancelScope, Change, FiredAction};
use crate::event::Trigger;

use super::runs::{PlannedRun, RunCancellation, RunChange};

/// A contact's place in a plan (an index into [`WritePlan::contacts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub usize);

/// A contact the plan read, and what it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedContact {
    /// `None`: a new contact, to insert (the backend assigns its id).
    pub id: Option<i64>,
    pub contact: Contact,
    /// Its version once the plan is stored (see the version rule in [`super`]).
    pub version: i64,
    /// As loaded (0 for a new contact).
    pub loaded_version: i64,
    /// Its email or client code changed (linked by an event), or it is new.
    pub identities_changed: bool,
    /// Its segment as loaded (empty for a new contact): a backend that indexes the
    /// segment rewrites that index entry only when it changed.
    pub loaded_segment: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A field mapped to a Brevo attribute changed (or the contact is new): when to push
    /// it to Brevo, if the contact is not queued already. Set by [`super::Planner::finish`].
    pub brevo_sync: Option<DateTime<Utc>>,
}

impl PlannedContact {
    /// Whether the plan writes this contact.
    pub fn is_written(&self) -> bool {
        self.version != self.loaded_version
    }

    /// Whether the plan moves this stored contact to another segment.
    pub fn segment_changed(&self) -> bool {
        self.contact.segment != self.loaded_segment
    }
}

/// An event to insert: the `input`-th event given to the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedEvent {
    pub input: usize,
    /// Its row id, reserved by the backend.
    pub id: i64,
    /// What the API answers and history rows and jobs refer to it by: `id` in decimal.
    pub public_id: String,
    pub contact: Slot,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedHistory {
    pub contact: Slot,
    pub event_id: Option<String>,
    pub change: Change,
    pub at: DateTime<Utc>,
    pub rule_version: i64,
}

/// The state a job is created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    /// The contact may not receive it (kept to be seen, never run).
    Suppressed,
    /// Cancelled later in the same batch (an opt-out, `pause_campaign`).
    Cancelled,
    /// Over a contact-pressure cap with `on_cap = "skip"`.
    Skipped,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Suppressed => "suppressed",
            JobState::Cancelled => "cancelled",
            JobState::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedJob {
    /// Also its idempotency key downstream.
    pub id: String,
    pub contact: Slot,
    pub event_id: Option<String>,
    pub fired: FiredAction,
    pub due_at: DateTime<Utc>,
    pub state: JobState,
    pub last_error: Option<String>,
    pub at: DateTime<Utc>,
    pub rule_version: i64,
    /// The run it is a step of.
    pub run_id: Option<String>,
    /// Contact pressure held it back at ingest: the attempt to record (`deferred` or
    /// `skipped`, and why), as the claim records its own.
    pub held: Option<(&'static str, String)>,
}

/// Stored pending or failed jobs of a contact to cancel: those `scope` covers. Stored
/// before the plan's new jobs are inserted, so that it reaches only older ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancellation {
    pub contact: Slot,
    pub scope: CancelScope,
    pub at: DateTime<Utc>,
}

/// A fired action as answered to the sender: the engine's decision plus its job.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionRecord {
    #[serde(flatten)]
    pub fired: FiredAction,
    pub job_id: Option<String>,
    /// The run the action is a step of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why contact pressure deferred or skipped it (`deferred: quiet hours`,
    /// `cap: email 2/7d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<String>,
}

/// What storing one event did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub event_id: String,
    pub duplicate: bool,
    pub trigger: Option<Trigger>,
    /// The event's name when Relance does not recognise it (counted on the dashboard).
    pub unrecognised: Option<String>,
    /// A test event (the dashboard's): left out of the counters.
    pub test: bool,
    /// The contact after the event.
    pub contact: Contact,
    pub actions: Vec<ActionRecord>,
    /// What the event did to runs: started, not entered, goal reached, cancelled.
    pub runs: Vec<RunChange>,
    /// Rules that matched but are paused: they did nothing.
    pub paused: Vec<String>,
}

/// Everything a batch writes, in the order a backend stores it: new contacts (their
/// ids assigned), changed contacts, events, cancellations of stored jobs, history, jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WritePlan {
    pub contacts: Vec<PlannedContact>,
    pub events: Vec<PlannedEvent>,
    pub history: Vec<PlannedHistory>,
    pub jobs: Vec<PlannedJob>,
    pub cancellations: Vec<Cancellation>,
    /// Every run the plan read or started; the backend stores the new and changed ones.
    pub runs: Vec<PlannedRun>,
    /// Stored steps of runs that ended, to cancel (before the plan's jobs are inserted).
    pub run_cancellations: Vec<RunCancellation>,
    /// One per event given, in order.
    pub answers: Vec<Answer>,
    /// Expressions that failed at run time, cascades cut, identities that disagree.
    pub warnings: Vec<(Slot, String)>,
}

impl WritePlan {
    /// The stored id of each slot, given the ids the backend assigned to new contacts in
    /// slot order.
    pub fn contact_ids(&self, mut created: impl Iterator<Item = i64>) -> Option<Vec<i64>> {
        self.contacts.iter().map(|c| c.id.or_else(|| created.next())).collect()
    }

    /// New contacts, in slot order.
    pub fn new_contacts(&self) -> impl Iterator<Item = &PlannedContact> {
        self.contacts.iter().filter(|c| c.id.is_none())
    }

    /// Runs to insert and runs to update.
    pub fn runs_to_write(&self) -> (Vec<&PlannedRun>, Vec<&PlannedRun>) {
        let new = self.runs.iter().filter(|r| r.is_new).collect();
        let changed = self.runs.iter().filter(|r| !r.is_new && r.changed).collect();
        (new, changed)
    }

    /// Existing contacts the plan changes.
    pub fn changed_contacts(&self) -> impl Iterator<Item = (i64, &PlannedContact)> {
        self.contacts.iter().filter(|c| c.is_written()).filter_map(|c| c.id.map(|id| (id, c)))
    }
}
