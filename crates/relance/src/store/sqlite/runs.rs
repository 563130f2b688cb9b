//! Runs on SQLite: loaded for the planner, written from its plans, completed when their
//! last step ends, listed and counted. Nothing here decides but completion, which is
//! the one rule that needs every step of the run at once (see `complete_if_done`).

use chrono::{DateTime, Utc};
use relance_core::plan::{Planner, RunState, WritePlan};
use rusqlite::{Connection, params};

use super::{from_millis, to_millis};
use crate::store::StoreError;
use crate::store::runs::{self, COMPLETED, RunCounts, RunFilter, RunView, StepView};

/// Loads the runs of every contact the planner has loaded.
pub(crate) fn load(conn: &Connection, planner: &mut Planner<'_>) -> Result<(), StoreError> {
    let ids = planner.loaded_contact_ids();
    if ids.is_empty() {
        return Ok(());
    }
    let sql = runs::LOAD_SQL.replace("{ids}", "SELECT value FROM json_each(?1)");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([serde_json::to_string(&ids).unwrap_or_default()])?;
    while let Some(r) = rows.next()? {
        planner.load_run(runs::decode(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            from_millis(r.get(4)?),
            &r.get::<_, String>(5)?,
            r.get::<_, Option<i64>>(6)?.map(from_millis),
            r.get(7)?,
            r.get::<_, Option<String>>(8)?.as_deref(),
            &r.get::<_, String>(9)?,
            &r.get::<_, String>(10)?,
        )?);
    }
    Ok(())
}

/// Stores the plan's runs: steps of ended runs cancelled, new runs inserted, changed
/// ones updated. Updates only touch runs still active: a run another writer ended
/// meanwhile (its last step done) stays as that writer left it.
pub(crate) fn write(conn: &Connection, plan: &WritePlan, ids: &[i64]) -> Result<(), StoreError> {
    if !plan.run_cancellations.is_empty() {
        let mut cancel = conn.prepare_cached(
            "UPDATE jobs SET state = 'cancelled', last_error = ?1, updated_at = ?2
             WHERE run_id = ?3 AND state IN ('pending', 'failed')",
        )?;
        for c in &plan.run_cancellations {
            cancel.execute(params![c.reason, to_millis(c.at), c.run_id])?;
        }
    }
    let (new, changed) = plan.runs_to_write();
    if !new.is_empty() {
        let mut insert = conn.prepare_cached(
            "INSERT INTO runs (id, contact_id, rule_id, rule_version, started_at, state, ended_at, reason, goal,
                               watch, seen, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?5)",
        )?;
        for p in new {
            let (r, cols) = (&p.run, runs::columns(&p.run)?);
            insert.execute(params![
                r.id,
                ids[p.contact.0],
                r.rule_id,
                r.rule_version,
                to_millis(r.started_at),
                r.state.as_str(),
                r.ended_at.map(to_millis),
                r.reason,
                cols.goal,
                cols.watch,
                cols.seen
            ])?;
        }
    }
    if !changed.is_empty() {
        let mut update = conn.prepare_cached(
            "UPDATE runs SET state = ?1, ended_at = ?2, reason = ?3, seen = ?4, updated_at = ?5
             WHERE id = ?6 AND state = 'active'",
        )?;
        for p in changed {
            let (r, cols) = (&p.run, runs::columns(&p.run)?);
            let at = r.ended_at.unwrap_or(r.started_at);
            update.execute(params![
                r.state.as_str(),
                r.ended_at.map(to_millis),
                r.reason,
                cols.seen,
                to_millis(at),
                r.id
            ])?;
        }
    }
    Ok(())
}

/// An active run none of whose steps is left to run (pending, running or failed) is
/// completed. Called after any step of it ends; idempotent.
pub(crate) fn complete_if_done(conn: &Connection, run_id: Option<&str>, now: DateTime<Utc>) -> Result<(), StoreError> {
    let Some(run_id) = run_id else { return Ok(()) };
    conn.prepare_cached(
        "UPDATE runs SET state = 'completed', ended_at = ?1, reason = ?2, updated_at = ?1
         WHERE id = ?3 AND state = 'active'
           AND NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = ?3 AND state IN ('pending', 'running', 'failed'))",
    )?
    .execute(params![to_millis(now), COMPLETED, run_id])?;
    Ok(())
}

/// The run a job is a step of.
pub(crate) fn run_of_job(conn: &Connection, job_id: &str) -> Result<Option<String>, StoreError> {
    use rusqlite::OptionalExtension;
    Ok(conn
        .prepare_cached("SELECT run_id FROM jobs WHERE id = ?1")?
        .query_row([job_id], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Ends the active runs of these rules (an operator removed them) and cancels their
/// pending steps; returns how many runs.
pub(crate) fn cancel_runs_of(
    conn: &Connection,
    rule_ids: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let list = serde_json::to_string(rule_ids).unwrap_or_default();
    let now = to_millis(now);
    conn.prepare_cached(
        "UPDATE jobs SET state = 'cancelled', last_error = ?1, updated_at = ?2
         WHERE state IN ('pending', 'failed') AND run_id IN
           (SELECT id FROM runs WHERE state = 'active' AND rule_id IN (SELECT value FROM json_each(?3)))",
    )?
    .execute(params![reason, now, list])?;
    let n = conn
        .prepare_cached(
            "UPDATE runs SET state = 'cancelled', ended_at = ?1, reason = ?2, updated_at = ?1
             WHERE state = 'active' AND rule_id IN (SELECT value FROM json_each(?3))",
        )?
        .execute(params![now, reason, list])?;
    Ok(n as u64)
}

/// Runs matching a filter, newest first, each with its steps.
pub(crate) fn list(conn: &Connection, f: &RunFilter) -> Result<Vec<RunView>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.rule_id, r.rule_version, COALESCE(c.email, c.client_code), r.state, r.started_at, r.ended_at,
                r.reason
         FROM runs r JOIN contacts c ON c.id = r.contact_id
         WHERE (?1 IS NULL OR r.rule_id = ?1) AND (?2 IS NULL OR r.contact_id = ?2) AND (?3 IS NULL OR r.state = ?3)
           AND (?4 IS NULL OR r.state = 'active' OR r.ended_at >= ?4)
         ORDER BY r.started_at DESC, r.id DESC LIMIT ?5",
    )?;
    let mut views = stmt
        .query_map(
            params![
                f.rule_id,
                f.contact_id,
                f.state.map(RunState::as_str),
                f.ended_since.map(to_millis),
                f.limit as i64
            ],
            |r| {
                Ok(RunView {
                    run_id: r.get(0)?,
                    rule_id: r.get(1)?,
                    rule_version: r.get(2)?,
                    contact: r.get(3)?,
                    state: RunState::parse(&r.get::<_, String>(4)?).unwrap_or(RunState::Cancelled),
                    started_at: from_millis(r.get(5)?),
                    ended_at: r.get::<_, Option<i64>>(6)?.map(from_millis),
                    reason: r.get(7)?,
                    steps: Vec::new(),
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut steps = conn.prepare_cached(
        "SELECT id, action_type, state, due_at, last_error FROM jobs WHERE run_id = ?1 ORDER BY due_at, id",
    )?;
    for v in &mut views {
        v.steps = steps
            .query_map([&v.run_id], |r| {
                let state: String = r.get(2)?;
                let reason: Option<String> = r.get(4)?;
                Ok(StepView {
                    job_id: r.get(0)?,
                    action_type: r.get(1)?,
                    reason: crate::store::jobs::reason_for(&state, reason),
                    state,
                    due_at: from_millis(r.get(3)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
    }
    Ok(views)
}

/// Runs per rule: started since `since`, and by state among those.
pub(crate) fn counts(conn: &Connection, since: DateTime<Utc>) -> Result<Vec<RunCounts>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT rule_id, count(*), sum(state = 'active'), sum(state = 'goal_reached'), sum(state = 'completed'),
                    sum(state = 'cancelled')
             FROM runs WHERE started_at >= ?1 GROUP BY rule_id ORDER BY rule_id",
        )?
        .query_map([to_millis(since)], |r| {
            Ok(RunCounts {
                rule_id: r.get(0)?,
                entered: r.get(1)?,
                active: r.get(2)?,
                goal_reached: r.get(3)?,
                completed: r.get(4)?,
                cancelled: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// One run by id.
pub(crate) fn load_one(conn: &Connection, run_id: &str) -> Result<Option<relance_core::plan::LoadedRun>, StoreError> {
    use rusqlite::OptionalExtension;
    let row = conn
        .prepare_cached(
            "SELECT id, contact_id, rule_id, rule_version, started_at, state, ended_at, reason, goal, watch, seen
             FROM runs WHERE id = ?1",
        )?
        .query_row([run_id], |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?),
                (
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ),
                (r.get::<_, Option<String>>(8)?, r.get::<_, String>(9)?, r.get::<_, String>(10)?),
            ))
        })
        .optional()?;
    let Some(((id, contact_id, rule_id, version), (started, state, ended, reason), (goal, watch, seen))) = row else {
        return Ok(None);
    };
    let started = from_millis(started);
    let ended = ended.map(from_millis);
    runs::decode(id, contact_id, rule_id, version, started, &state, ended, reason, goal.as_deref(), &watch, &seen)
        .map(Some)
}
