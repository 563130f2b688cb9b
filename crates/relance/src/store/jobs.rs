//! Jobs: actions to run later or outside, as both backends store them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use relance_core::{ActionType, Contact, Event};
use serde::Serialize;
use serde_json::Value;

/// `pending → running → done`, plus `failed` (will retry at `due_at`), `dead` (gave up),
/// `cancelled` (opt-out, pause or operator) and `suppressed` (not allowed to reach the
/// contact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
    Dead,
    Cancelled,
    Suppressed,
    /// A step of a run whose `skip_if` held when it was due.
    Skipped,
    /// Its rule is paused: kept, not run, until the rule is resumed or the job cancelled.
    Held,
}

impl JobState {
    pub const NAMES: &'static [&'static str] =
        &["pending", "running", "done", "failed", "dead", "cancelled", "suppressed", "skipped", "held"];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
            JobState::Suppressed => "suppressed",
            JobState::Skipped => "skipped",
            JobState::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "dead" => JobState::Dead,
            "cancelled" => JobState::Cancelled,
            "suppressed" => JobState::Suppressed,
            "skipped" => JobState::Skipped,
            "held" => JobState::Held,
            _ => return None,
        })
    }
}

/// A job leased to a worker, with what it needs to run: the contact as it is now (for
/// suppression and addressing) and the event that caused it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub idempotency_key: String,
    pub rule_id: String,
    pub trigger: String,
    pub action_type: ActionType,
    pub config: Value,
    pub due_at: DateTime<Utc>,
    /// Including this one.
    pub attempts: u32,
    pub contact_id: i64,
    pub contact: Contact,
    pub event_id: Option<String>,
    pub event: Option<Event>,
    pub run_id: Option<String>,
    pub skip_if: Option<relance_core::rules::Happening>,
    /// Passes caps and quiet hours (a thank-you, an order message).
    pub transactional: bool,
    pub on_cap: relance_core::pressure::OnCap,
    /// The firing rule's priority and daily budget.
    pub priority: u8,
    pub max_per_day: Option<u32>,
}

impl ClaimedJob {
    /// The delayed internal action this job carries, for the planner.
    pub fn due_action(&self) -> relance_core::plan::DueAction {
        relance_core::plan::DueAction {
            contact_id: self.contact_id,
            event_id: self.event_id.clone(),
            rule_id: self.rule_id.clone(),
            action_type: self.action_type,
            config: self.config.clone(),
            event: self.event.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub limit: usize,
    pub lease: Duration,
    /// Only jobs of these action types (those routed to the claimer's executors).
    pub action_types: Vec<ActionType>,
    /// The governor messages pass in the claim (`None`: none).
    pub pressure: Option<std::sync::Arc<relance_core::pressure::Pressure>>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Done,
    /// Try again at this time (state `failed` until then).
    Retry {
        at: DateTime<Utc>,
    },
    Dead,
    Suppressed,
}

impl Finish {
    pub fn label(&self) -> &'static str {
        match self {
            Finish::Done => "done",
            Finish::Retry { .. } => "retry",
            Finish::Dead => "dead",
            Finish::Suppressed => "suppressed",
        }
    }
}

/// One attempt's record.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub status: String,
    pub http_status: Option<u16>,
    /// Response excerpt or error, truncated.
    pub response: Option<String>,
}

/// The latest call an executor made that worked, and the latest that did not.
#[derive(Debug, Clone, Default)]
pub struct LastCalls {
    pub ok: Option<Attempt>,
    pub failed: Option<Attempt>,
}

/// Attempts that were calls: `done` with an HTTP answer; `failed` or `dead` with an
/// answer or a transport error (refusals before any call, like a suppressed contact, are
/// not calls).
pub const LAST_OK_SQL: &str = "a.status = 'done' AND a.http_status IS NOT NULL";
pub const LAST_FAILED_SQL: &str = "a.status IN ('failed', 'dead') AND (a.http_status IS NOT NULL
    OR a.response LIKE 'could not connect%' OR a.response LIKE 'timed out%' OR a.response LIKE 'request failed%')";

#[derive(Debug, Clone)]
pub struct JobFinish {
    pub finish: Finish,
    pub error: Option<String>,
    pub attempt: Attempt,
    /// For the outbox executor: what would have been sent, and through which channel.
    pub outbox: Option<(String, Value)>,
}

/// Why a job is in its state, for the states that have a why: cancelled, suppressed,
/// skipped (the stored last word on the job). A failed job's error is its `last_error`.
pub fn reason_for(state: &str, last_error: Option<String>) -> Option<String> {
    match state {
        "cancelled" | "suppressed" | "skipped" | "held" => last_error,
        // A pending job moved by the governor says so.
        "pending" => last_error.filter(|e| e.starts_with("deferred")),
        _ => None,
    }
}

/// Keeps stored responses short.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRow {
    pub id: String,
    pub state: JobState,
    pub action_type: String,
    pub rule_id: String,
    pub trigger: String,
    pub config: Value,
    pub due_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// Why it was cancelled, suppressed or skipped.
    pub reason: Option<String>,
    /// The run it is a step of.
    pub run_id: Option<String>,
    pub event_id: Option<String>,
    pub contact_email: Option<String>,
    pub contact_client_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    /// Only pending jobs contact pressure deferred (their reason starts `deferred:`).
    pub deferred: bool,
    pub contact_id: Option<i64>,
    pub action_type: Option<ActionType>,
    pub limit: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobCount {
    pub state: String,
    pub action_type: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxRow {
    pub job_id: String,
    pub channel: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

/// A job's `on_cap` column.
pub(crate) fn on_cap_column(policy: Option<relance_core::pressure::OnCap>) -> Option<&'static str> {
    policy.map(|p| match p {
        relance_core::pressure::OnCap::Defer => "defer",
        relance_core::pressure::OnCap::Skip => "skip",
    })
}

pub(crate) fn parse_on_cap(text: Option<&str>) -> relance_core::pressure::OnCap {
    match text {
        Some("skip") => relance_core::pressure::OnCap::Skip,
        _ => relance_core::pressure::OnCap::Defer,
    }
}

/// A claimed message the governor holds back: back to `pending` later, or `skipped`.
pub(crate) struct HeldBack {
    pub state: &'static str,
    pub due_at: DateTime<Utc>,
    pub reason: String,
}

impl HeldBack {
    /// What the attempt records.
    pub fn attempt_status(&self) -> &'static str {
        if self.state == "pending" { "deferred" } else { "skipped" }
    }
}

/// What the governor counts for a claimed job, as the backend read it in the claim.
#[derive(Debug, Default)]
pub(crate) struct SendCounts {
    /// When the contact's messages of the job's channel were sent (`done`) or claimed
    /// (`running`), any rule, over the channel's longest cap window.
    pub sent: Vec<DateTime<Utc>>,
    /// The contact's messages of the channel due now that go first: a higher-priority
    /// rule's, or the same priority due earlier.
    pub ahead: usize,
    /// The rule's messages sent or claimed since the estate's day start.
    pub rule_today: usize,
}

/// Whether the backend needs to count anything for this job: a message of a channel
/// with caps, or of a rule with a budget.
pub(crate) fn needs_counts(pressure: &relance_core::pressure::Pressure, job: &ClaimedJob) -> bool {
    relance_core::pressure::Channel::of(job.action_type)
        .is_some_and(|c| job.max_per_day.is_some() || (!job.transactional && pressure.window(c).is_some()))
}

/// The governor's word on a claimed job; `None`: it goes now. Both backends decide
/// through this.
pub(crate) fn hold_back(
    pressure: &relance_core::pressure::Pressure,
    job: &ClaimedJob,
    counts: &SendCounts,
    now: DateTime<Utc>,
) -> Option<HeldBack> {
    use relance_core::pressure::{Message, Verdict};
    let timezone = job.contact.attributes.get("timezone").and_then(Value::as_str);
    let message = Message {
        action: job.action_type,
        transactional: job.transactional,
        on_cap: job.on_cap,
        timezone,
        sent: &counts.sent,
        ahead: counts.ahead,
        budget: job.max_per_day.map(|max| (max, counts.rule_today)),
    };
    match pressure.check(&message, now) {
        Verdict::Send => None,
        Verdict::Defer { until, reason } => Some(HeldBack { state: "pending", due_at: until, reason }),
        Verdict::Skip { reason } => Some(HeldBack { state: "skipped", due_at: job.due_at, reason }),
    }
}
