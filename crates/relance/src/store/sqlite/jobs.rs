//! Job queries on SQLite. Writes run on the writer thread, reads on the read pool.

use chrono::{DateTime, Utc};
use relance_core::ActionType;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::writer::WriteContext;
use super::{from_millis, load_contact, plan_io, runs, stored_event_of, to_millis};
use crate::store::jobs::{
    Attempt, ClaimRequest, ClaimedJob, Finish, JobCount, JobFilter, JobFinish, JobRow, JobState, OutboxRow, truncate,
};
use crate::store::{StoreError, log_plan_warnings};
use relance_core::Event;
use relance_core::plan::Planner;

/// The action types as SQL literals. They come from a closed enum, never from input.
fn type_list(types: &[ActionType]) -> String {
    if types.is_empty() {
        return "''".into();
    }
    types.iter().map(|t| format!("'{}'", t.as_str())).collect::<Vec<_>>().join(",")
}

/// Leases up to `limit` due jobs: pending or failed ones whose time has come, and
/// running ones whose lease expired (their worker died).
pub(crate) fn claim(conn: &Connection, req: &ClaimRequest, now: DateTime<Utc>) -> Result<Vec<ClaimedJob>, StoreError> {
    let now_ms = to_millis(now);
    // Two queries rather than one with OR, so that each walks the (state, due_at) index.
    let types = type_list(&req.action_types);
    // One walk of the (state, due_at) index per state, in its order: with `state IN
    // ('pending', 'failed')` SQLite sorted every due job in a temporary B-tree to take the
    // first few (100,000 jobs due at once were claimed at 1.0k/s). Ties on the due time in
    // the order stored, the order their ids were handed out; the two walks are merged by
    // (due time, id).
    let due = format!(
        "SELECT due_at, id FROM jobs WHERE state = ?3 AND due_at <= ?1 AND action_type IN ({types})
           AND rule_id NOT IN (SELECT rule_id FROM paused_rules)
         ORDER BY due_at, rowid LIMIT ?2"
    );
    let expired = format!(
        "SELECT id FROM jobs WHERE state = 'running' AND lease_until < ?1 AND action_type IN ({types}) LIMIT ?2"
    );
    let mut ids: Vec<String> = conn
        .prepare_cached(&expired)?
        .query_map(params![now_ms, req.limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.len() < req.limit {
        let more = (req.limit - ids.len()) as i64;
        let mut walk = conn.prepare_cached(&due)?;
        let mut due_rows: Vec<(i64, String)> = Vec::new();
        for state in ["pending", "failed"] {
            let rows = walk.query_map(params![now_ms, more, state], |r| Ok((r.get(0)?, r.get(1)?)))?;
            due_rows.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        due_rows.sort_unstable();
        ids.extend(due_rows.into_iter().take(more as usize).map(|(_, id)| id));
    }
    let lease_until = now_ms + req.lease.as_millis() as i64;
    let mut claimed = Vec::with_capacity(ids.len());
    let mut held = Vec::new();
    for id in ids {
        conn.prepare_cached(
            "UPDATE jobs SET state = 'running', lease_until = ?1, attempts = attempts + 1, updated_at = ?2 WHERE id = ?3",
        )?
        .execute(params![lease_until, now_ms, id])?;
        let job = load_claimed(conn, &id)?;
        if skipped(conn, &job, now)? {
            continue;
        }
        if let Some(pressure) = &req.pressure
            && super::pressure::governed(conn, pressure, &job, now, &mut held)?
        {
            continue;
        }
        claimed.push(job);
    }
    super::writer::add_counts(conn, &crate::store::dashboard::fold_held(&held, now))?;
    Ok(claimed)
}

/// A step whose `skip_if` holds now is skipped in the claim itself (the same write
/// transaction): no worker ever sees it. Returns whether it was.
fn skipped(conn: &Connection, job: &ClaimedJob, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let (Some(skip), Some(run_id)) = (&job.skip_if, &job.run_id) else { return Ok(false) };
    let Some(run) = runs::load_one(conn, run_id)?.filter(|r| r.state == relance_core::plan::RunState::Active) else {
        return Ok(false);
    };
    let reason = match relance_core::plan::runs::skip_reason(skip, &run, &job.contact, now) {
        Ok(Some(reason)) => reason,
        Ok(None) => return Ok(false),
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "skip_if expression failed; the step runs");
            return Ok(false);
        }
    };
    let now_ms = to_millis(now);
    conn.prepare_cached(
        "UPDATE jobs SET state = 'skipped', lease_until = NULL, last_error = ?1, updated_at = ?2 WHERE id = ?3",
    )?
    .execute(params![reason, now_ms, job.id])?;
    let attempt = Attempt {
        started_at: now,
        duration_ms: 0,
        status: "skipped".into(),
        http_status: None,
        response: Some(reason),
    };
    record_attempt(conn, &job.id, &attempt)?;
    runs::complete_if_done(conn, Some(run_id), now)?;
    Ok(true)
}

fn load_claimed(conn: &Connection, id: &str) -> Result<ClaimedJob, StoreError> {
    type Row = (String, String, String, String, String, i64, i64, i64, Option<String>, Option<Event>);
    type Extra = (Option<String>, Option<String>, bool, Option<String>, i64, Option<i64>);
    let (r, (run_id, skip_if, transactional, on_cap, priority, max_per_day)): (Row, Extra) = conn
        .prepare_cached(
            "SELECT j.id, j.rule_id, j.trigger, j.action_type, j.config, j.due_at, j.attempts,
                    j.contact_id, j.event_id, e.event, j.run_id, j.skip_if, j.transactional, j.on_cap,
                    j.priority, j.max_per_day, e.source, e.name, e.trigger, e.occurred_at
             FROM jobs j LEFT JOIN events e ON e.id = COALESCE(
                 CASE WHEN j.event_id NOT GLOB '*[^0-9]*' THEN CAST(j.event_id AS INTEGER) END,
                 (SELECT id FROM events WHERE legacy_id = j.event_id))
             WHERE j.id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                (
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    stored_event_of(r, 9, 16)?,
                ),
                (r.get(10)?, r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?, r.get(15)?),
            ))
        })?;
    let action_type =
        r.3.parse::<ActionType>()
            .map_err(|_| StoreError::Unavailable(anyhow::anyhow!("job {id} has unknown action type {}", r.3)))?;
    Ok(ClaimedJob {
        id: id.to_owned(),
        idempotency_key: r.0,
        rule_id: r.1,
        trigger: r.2,
        action_type,
        config: serde_json::from_str(&r.4).unwrap_or(Value::Null),
        due_at: from_millis(r.5),
        attempts: r.6 as u32,
        contact_id: r.7,
        contact: load_contact(conn, r.7)?.contact,
        event_id: r.8,
        event: r.9,
        skip_if: crate::store::runs::parse_skip_if(skip_if.as_deref()),
        run_id,
        transactional,
        on_cap: crate::store::jobs::parse_on_cap(on_cap.as_deref()),
        priority: priority.clamp(0, 255) as u8,
        max_per_day: max_per_day.and_then(|n| u32::try_from(n).ok()),
    })
}

/// Records an attempt and moves the job to its next state. Only a running job moves:
/// a job cancelled or re-leased meanwhile keeps the state it has.
pub(crate) fn finish(conn: &Connection, id: &str, f: &JobFinish, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let (state, due) = match &f.finish {
        Finish::Done => (JobState::Done, None),
        Finish::Retry { at } => (JobState::Failed, Some(to_millis(*at))),
        Finish::Dead => (JobState::Dead, None),
        Finish::Suppressed => (JobState::Suppressed, None),
    };
    let exists: bool = conn.prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")?.exists([id])?;
    if !exists {
        return Err(StoreError::NotFound(format!("action {id}")));
    }
    let moved = conn
        .prepare_cached(
            "UPDATE jobs SET state = ?1, due_at = COALESCE(?2, due_at), lease_until = NULL, last_error = ?3,
                             updated_at = ?4
             WHERE id = ?5 AND state = 'running'",
        )?
        .execute(params![state.as_str(), due, f.error.as_deref().map(|e| truncate(e, 1000)), to_millis(now), id])?;
    record_attempt(conn, id, &f.attempt)?;
    if moved == 1 && state != JobState::Failed {
        runs::complete_if_done(conn, runs::run_of_job(conn, id)?.as_deref(), now)?;
    }
    if let Some((channel, payload)) = &f.outbox {
        conn.prepare_cached("INSERT INTO outbox (job_id, channel, payload, created_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![id, channel, payload.to_string(), to_millis(now)])?;
    }
    Ok(moved == 1)
}

pub(super) fn record_attempt(conn: &Connection, id: &str, a: &Attempt) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, http_status, response)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        id,
        to_millis(a.started_at),
        a.duration_ms as i64,
        a.status,
        a.http_status,
        a.response.as_deref().map(|r| truncate(r, 2000))
    ])?;
    Ok(())
}

/// Runs a delayed internal action in the same transaction as its effects.
pub(crate) fn run_internal(
    conn: &Connection,
    ctx: &WriteContext,
    id: &str,
    started: std::time::Instant,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let job = load_claimed(conn, id)?;
    let state: String = conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
    if state != "running" {
        return Ok(false);
    }
    let rules = ctx.rules.current();
    let mut new_id = || uuid::Uuid::now_v7().to_string();
    let mut planner = Planner::new(&rules.engine, rules.version, &ctx.default_segment, &mut new_id);
    planner.set_sync(ctx.brevo_sync.clone());
    planner.set_paused(super::pause::paused_ids(conn)?);
    planner.set_pressure(ctx.pressure.clone());
    planner.load_contact(plan_io::load(conn, job.contact_id)?);
    runs::load(conn, &mut planner)?;
    super::pressure::load(conn, &mut planner, now)?;
    let changes = planner.delayed(&job.due_action(), now)?;
    let plan = planner.finish();
    let ids = plan_io::write_plan(conn, &plan, &[])?;
    log_plan_warnings(&plan, &ids);
    finish(
        conn,
        id,
        &JobFinish {
            finish: Finish::Done,
            error: None,
            attempt: Attempt {
                started_at: now,
                duration_ms: started.elapsed().as_millis() as u64,
                status: "done".into(),
                http_status: None,
                response: Some(format!("{changes} change(s) applied")),
            },
            outbox: None,
        },
        now,
    )
}

/// When the next job of these types is due, if any.
pub(crate) fn next_due(conn: &Connection, types: &[ActionType]) -> Result<Option<DateTime<Utc>>, StoreError> {
    let sql = format!(
        "SELECT min(t) FROM (
           SELECT min(due_at) AS t FROM jobs WHERE state IN ('pending', 'failed') AND action_type IN ({types})
           UNION ALL
           SELECT min(lease_until) FROM jobs WHERE state = 'running' AND action_type IN ({types}))",
        types = type_list(types)
    );
    let t: Option<i64> = conn.prepare_cached(&sql)?.query_row([], |r| r.get(0))?;
    Ok(t.map(from_millis))
}

const JOB_COLUMNS: &str = "j.id, j.state, j.action_type, j.rule_id, j.trigger, j.config, j.due_at, j.attempts,
     j.last_error, j.event_id, c.email, c.client_code, j.created_at, j.updated_at, j.run_id";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let state: String = r.get(1)?;
    Ok(JobRow {
        id: r.get(0)?,
        reason: crate::store::jobs::reason_for(&state, r.get(8)?),
        run_id: r.get(14)?,
        state: JobState::parse(&state).unwrap_or(JobState::Dead),
        action_type: r.get(2)?,
        rule_id: r.get(3)?,
        trigger: r.get(4)?,
        config: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or(Value::Null),
        due_at: from_millis(r.get(6)?),
        attempts: r.get::<_, i64>(7)? as u32,
        last_error: r.get(8)?,
        event_id: r.get(9)?,
        contact_email: r.get(10)?,
        contact_client_code: r.get(11)?,
        created_at: from_millis(r.get(12)?),
        updated_at: from_millis(r.get(13)?),
    })
}

pub(crate) fn list(conn: &Connection, f: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN contacts c ON c.id = j.contact_id
         WHERE (?1 IS NULL OR j.state = ?1) AND (?2 IS NULL OR j.contact_id = ?2) AND (?3 IS NULL OR j.action_type = ?3)
           AND (?5 = 0 OR (j.state = 'pending' AND j.last_error LIKE 'deferred:%'))
         ORDER BY j.due_at, j.id LIMIT ?4"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                f.state.map(JobState::as_str),
                f.contact_id,
                f.action_type.map(ActionType::as_str),
                f.limit as i64,
                f.deferred
            ],
            job_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn get(conn: &Connection, id: &str) -> Result<Option<(JobRow, Vec<Attempt>)>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs j JOIN contacts c ON c.id = j.contact_id WHERE j.id = ?1");
    let Some(row) = conn.prepare_cached(&sql)?.query_row([id], job_row).optional()? else {
        return Ok(None);
    };
    let attempts = conn
        .prepare_cached(
            "SELECT started_at, duration_ms, status, http_status, response FROM job_attempts WHERE job_id = ?1 ORDER BY id",
        )?
        .query_map([id], attempt_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((row, attempts)))
}

/// An attempt from `started_at, duration_ms, status, http_status, response`.
pub(crate) fn attempt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        started_at: from_millis(r.get(0)?),
        duration_ms: r.get::<_, i64>(1)? as u64,
        status: r.get(2)?,
        http_status: r.get(3)?,
        response: r.get(4)?,
    })
}

fn current_state(conn: &Connection, id: &str) -> Result<JobState, StoreError> {
    let state: Option<String> =
        conn.prepare_cached("SELECT state FROM jobs WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    state.and_then(|s| JobState::parse(&s)).ok_or_else(|| StoreError::NotFound(format!("action {id}")))
}

/// Operator cancel: only a job that has not run yet.
pub(crate) fn cancel(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    match current_state(conn, id)? {
        JobState::Pending | JobState::Failed | JobState::Held => {
            conn.prepare_cached(
                "UPDATE jobs SET state = 'cancelled', last_error = 'cancelled by an operator', updated_at = ?1 WHERE id = ?2",
            )?
            .execute(params![to_millis(now), id])?;
            runs::complete_if_done(conn, runs::run_of_job(conn, id)?.as_deref(), now)?;
            Ok(())
        }
        other => Err(StoreError::Conflict(format!(
            "job {id} is {}; only pending or failed jobs can be cancelled",
            other.as_str()
        ))),
    }
}

/// Operator retry: a dead (or failed) job runs again now, with a fresh attempt budget.
pub(crate) fn retry(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    match current_state(conn, id)? {
        JobState::Dead | JobState::Failed => {
            conn.prepare_cached(
                "UPDATE jobs SET state = 'pending', due_at = ?1, attempts = 0, lease_until = NULL, updated_at = ?1 WHERE id = ?2",
            )?
            .execute(params![to_millis(now), id])?;
            Ok(())
        }
        other => Err(StoreError::Conflict(format!(
            "job {id} is {}; only dead or failed jobs can be retried",
            other.as_str()
        ))),
    }
}

/// An external worker's word on a job it claimed.
pub(crate) fn check_running(conn: &Connection, id: &str) -> Result<(), StoreError> {
    match current_state(conn, id)? {
        JobState::Running => Ok(()),
        other => Err(StoreError::Conflict(format!("job {id} is {}, not running: claim it first", other.as_str()))),
    }
}

pub(crate) fn stats(conn: &Connection) -> Result<Vec<JobCount>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT state, action_type, count(*) FROM jobs GROUP BY state, action_type ORDER BY state, action_type",
        )?
        .query_map([], |r| Ok(JobCount { state: r.get(0)?, action_type: r.get(1)?, count: r.get(2)? }))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(crate) fn outbox(conn: &Connection, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
    let rows = conn
        .prepare_cached("SELECT job_id, channel, payload, created_at FROM outbox ORDER BY id DESC LIMIT ?1")?
        .query_map([limit as i64], |r| {
            Ok(OutboxRow {
                job_id: r.get(0)?,
                channel: r.get(1)?,
                payload: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(Value::Null),
                created_at: from_millis(r.get(3)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
