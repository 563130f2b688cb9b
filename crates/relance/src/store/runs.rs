//! Runs as both backends store and show them (see `relance_core::plan::runs`).

use chrono::{DateTime, Utc};
use relance_core::Trigger;
use relance_core::plan::{LoadedRun, RunState};
use relance_core::rules::Happening;
use serde::Serialize;

use super::StoreError;

/// Active runs and the latest run of each rule, for these contacts: what the planner
/// needs (re-entry reads the latest start). Same SQL on both backends but for the list
/// parameter, which each backend puts in `{ids}`.
pub(crate) const LOAD_SQL: &str = "SELECT id, contact_id, rule_id, rule_version, started_at, state, ended_at, reason,
        goal, watch, seen
 FROM runs r WHERE r.contact_id IN ({ids})
   AND (r.state = 'active' OR r.started_at = (SELECT max(x.started_at) FROM runs x
                                              WHERE x.contact_id = r.contact_id AND x.rule_id = r.rule_id))
 ORDER BY r.started_at, r.id";

/// What a completed run records.
pub(crate) use relance_core::plan::runs::COMPLETED;

/// The text columns of a run.
pub(crate) struct RunColumns {
    pub goal: Option<String>,
    pub watch: String,
    pub seen: String,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.into()))
}

pub(crate) fn columns(run: &LoadedRun) -> Result<RunColumns, StoreError> {
    Ok(RunColumns {
        goal: run.goal.as_ref().map(to_json).transpose()?,
        watch: to_json(&run.watch)?,
        seen: to_json(&run.seen)?,
    })
}

/// A job's `skip_if`, stored with it.
pub(crate) fn skip_if_column(skip: Option<&Happening>) -> Result<Option<String>, StoreError> {
    skip.map(to_json).transpose()
}

/// A stored `skip_if` (an unreadable one skips nothing: the step runs, as written).
pub(crate) fn parse_skip_if(text: Option<&str>) -> Option<Happening> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// A run read back: the raw columns in `LOAD_SQL`'s order.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decode(
    id: String,
    contact_id: i64,
    rule_id: String,
    rule_version: i64,
    started_at: DateTime<Utc>,
    state: &str,
    ended_at: Option<DateTime<Utc>>,
    reason: Option<String>,
    goal: Option<&str>,
    watch: &str,
    seen: &str,
) -> Result<LoadedRun, StoreError> {
    let unreadable = |what: &str| StoreError::Unavailable(anyhow::anyhow!("run {id}: unreadable {what}"));
    let triggers = |text: &str, what: &str| serde_json::from_str::<Vec<Trigger>>(text).map_err(|_| unreadable(what));
    Ok(LoadedRun {
        state: RunState::parse(state).ok_or_else(|| unreadable("state"))?,
        goal: goal.map(|g| serde_json::from_str::<Happening>(g).map_err(|_| unreadable("goal"))).transpose()?,
        watch: triggers(watch, "watch")?,
        seen: triggers(seen, "seen")?,
        id,
        contact_id,
        rule_id,
        rule_version,
        started_at,
        ended_at,
        reason,
    })
}

/// One step of a run, as shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepView {
    pub job_id: String,
    pub action_type: String,
    pub state: String,
    pub due_at: DateTime<Utc>,
    pub reason: Option<String>,
}

/// A run as the API, the dashboard and explain show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub run_id: String,
    pub rule_id: String,
    pub rule_version: i64,
    /// The contact's email or client code.
    pub contact: Option<String>,
    #[schema(value_type = String)]
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
    pub steps: Vec<StepView>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub rule_id: Option<String>,
    pub contact_id: Option<i64>,
    pub state: Option<RunState>,
    /// Ended runs that ended before this are left out (active ones are always listed).
    pub ended_since: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// Runs of one rule since a time, by outcome.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, PartialEq)]
pub struct RunCounts {
    pub rule_id: String,
    /// Runs started since.
    pub entered: i64,
    pub active: i64,
    pub goal_reached: i64,
    pub completed: i64,
    pub cancelled: i64,
}

impl RunCounts {
    /// Goals reached over runs that ended (`None` before any ended).
    pub fn goal_rate(&self) -> Option<f64> {
        let ended = self.goal_reached + self.completed + self.cancelled;
        (ended > 0).then(|| self.goal_reached as f64 / ended as f64)
    }
}
