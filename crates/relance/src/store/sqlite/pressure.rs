//! Contact pressure on SQLite: what the governor counts, read in the write transaction
//! (for the claim) or before planning (for ingest), and its verdict stored on the job.
//! Nothing here decides: [`crate::store::jobs::hold_back`] and the planner do.

use chrono::{DateTime, Utc};
use relance_core::ActionType;
use relance_core::plan::Planner;
use relance_core::pressure::{Channel, Pressure};
use rusqlite::{Connection, params};

use super::{from_millis, runs, to_millis};
use crate::store::StoreError;
use crate::store::jobs::{Attempt, ClaimedJob, SendCounts, hold_back, needs_counts};

/// Messaging action types as a JSON array, for `IN (SELECT value FROM json_each(?))`.
fn types_json(types: &[&str]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".into())
}

fn all_message_types() -> Vec<&'static str> {
    Channel::ALL.iter().flat_map(|c| c.action_types()).collect()
}

/// Contact pressure, in the claim: a message that may not go now is deferred (back to
/// `pending` at a later `due_at`, its attempt given back) or skipped. Atomic with the
/// send claim: SQLite has one writer, and what counts as sent includes the jobs claimed
/// (`running`), so a second claim for the same contact sees the first. Returns whether
/// the job was held back.
pub(crate) fn governed(
    conn: &Connection,
    pressure: &Pressure,
    job: &ClaimedJob,
    now: DateTime<Utc>,
    held_counts: &mut Vec<(crate::store::dashboard::CounterKind, String)>,
) -> Result<bool, StoreError> {
    let Some(channel) = Channel::of(job.action_type) else { return Ok(false) };
    let mut counts = SendCounts::default();
    if needs_counts(pressure, job) {
        counts = count(conn, pressure, job, channel, now)?;
    }
    let Some(held) = hold_back(pressure, job, &counts, now) else { return Ok(false) };
    let (state, due, reason) = (held.state, to_millis(held.due_at), held.reason.clone());
    held_counts.push(crate::store::dashboard::held_counter(state == "skipped", &reason));
    conn.prepare_cached(
        "UPDATE jobs SET state = ?1, due_at = ?2, lease_until = NULL, attempts = attempts - 1, last_error = ?3,
                         updated_at = ?4
         WHERE id = ?5",
    )?
    .execute(params![state, due, reason, to_millis(now), job.id])?;
    let status = held.attempt_status();
    let attempt =
        Attempt { started_at: now, duration_ms: 0, status: status.into(), http_status: None, response: Some(reason) };
    super::jobs::record_attempt(conn, &job.id, &attempt)?;
    if state == "skipped" {
        runs::complete_if_done(conn, job.run_id.as_deref(), now)?;
    }
    Ok(true)
}

fn count(
    conn: &Connection,
    pressure: &Pressure,
    job: &ClaimedJob,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<SendCounts, StoreError> {
    let types = types_json(&channel.action_types());
    let mut counts = SendCounts::default();
    if let Some(window) = pressure.window(channel).filter(|_| !job.transactional) {
        counts.sent = conn
            .prepare_cached(
                "SELECT updated_at FROM jobs WHERE contact_id = ?1 AND id <> ?2 AND state IN ('done', 'running')
                   AND action_type IN (SELECT value FROM json_each(?3)) AND updated_at > ?4",
            )?
            .query_map(params![job.contact_id, job.id, types, to_millis(now - window)], |r| r.get::<_, i64>(0))?
            .map(|t| t.map(from_millis))
            .collect::<rusqlite::Result<_>>()?;
        // The contact's other messages due now that go first (not transactional ones:
        // they do not take slots; not a paused rule's: they wait).
        counts.ahead = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE contact_id = ?1 AND id <> ?2 AND state IN ('pending', 'failed')
                   AND due_at <= ?3 AND transactional = 0
                   AND action_type IN (SELECT value FROM json_each(?4))
                   AND rule_id NOT IN (SELECT rule_id FROM paused_rules)
                   AND (priority > ?5 OR (priority = ?5 AND (due_at < ?6 OR (due_at = ?6 AND id < ?2))))",
            )?
            .query_row(
                params![job.contact_id, job.id, to_millis(now), types, job.priority, to_millis(job.due_at)],
                |r| r.get::<_, i64>(0),
            )? as usize;
    }
    if job.max_per_day.is_some() {
        counts.rule_today = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE rule_id = ?1 AND id <> ?2 AND max_per_day IS NOT NULL
                   AND state IN ('done', 'running') AND updated_at >= ?3",
            )?
            .query_row(params![job.rule_id, job.id, to_millis(pressure.day_start(now))], |r| r.get::<_, i64>(0))?
            as usize;
    }
    Ok(counts)
}

/// What the planner's governor counts for an ingest: the loaded contacts' sends over the
/// longest cap window, and the budgeted rules' sends today — counting the messages due
/// now and not yet claimed as sent now (they go next, so that a burst's answers agree
/// with what the claim will do). Nothing without caps or budgets.
pub(crate) fn load(conn: &Connection, planner: &mut Planner<'_>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let Some(pressure) = planner.pressure() else { return Ok(()) };
    let window = relance_core::plan::sends_window(pressure);
    let day_start = pressure.day_start(now);
    if let Some(window) = window {
        let ids = serde_json::to_string(&planner.loaded_contact_ids()).unwrap_or_else(|_| "[]".into());
        let sends: Vec<(i64, String, i64)> = conn
            .prepare_cached(
                "SELECT contact_id, action_type, CASE WHEN state = 'pending' THEN ?4 ELSE updated_at END FROM jobs
                 WHERE contact_id IN (SELECT value FROM json_each(?1))
                   AND action_type IN (SELECT value FROM json_each(?2))
                   AND ((state IN ('done', 'running') AND updated_at > ?3) OR (state = 'pending' AND due_at <= ?4))",
            )?
            .query_map(params![ids, types_json(&all_message_types()), to_millis(now - window), to_millis(now)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (contact, action, at) in sends {
            if let Ok(action) = action.parse::<ActionType>() {
                planner.load_send(contact, action, from_millis(at));
            }
        }
    }
    for rule in planner.budgeted_rules() {
        let n: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE rule_id = ?1 AND max_per_day IS NOT NULL
                   AND ((state IN ('done', 'running') AND updated_at >= ?2) OR (state = 'pending' AND due_at <= ?3))",
            )?
            .query_row(params![rule, to_millis(day_start), to_millis(now)], |r| r.get(0))?;
        planner.load_rule_sends(rule, n as usize);
    }
    Ok(())
}
