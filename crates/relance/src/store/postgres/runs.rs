//! Runs on PostgreSQL: loaded for the planner, written from its plans, completed when
//! their last step ends, listed and counted. Nothing here decides but completion, the
//! one rule that needs every step of the run at once.
//!
//! Runs are read without a lock of their own: every write of a contact's runs at ingest
//! happens under that contact's row lock, and the writes that do not (a step ending, an
//! operator) only move a run out of `active` under a `state = 'active'` guard, which the
//! ingest's own updates carry too: whichever ends a run first wins, the other changes
//! nothing.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use relance_core::plan::{LoadedRun, Planner, RunState, WritePlan};

use super::pipeline::Pipeline;
use super::{from_millis, to_millis};
use crate::store::StoreError;
use crate::store::jobs::reason_for;
use crate::store::runs::{self, COMPLETED, RunCounts, RunFilter, RunView, StepView};

/// The runs of the contacts holding these client codes (`$1`) or emails (`$2`): sent in
/// the same round trip as the locking load, after it.
pub(crate) fn by_identity_sql() -> String {
    runs::LOAD_SQL.replace("{ids}", "SELECT id FROM contacts WHERE client_code = ANY($1) OR email = ANY($2)")
}

pub(crate) fn decode_row(r: &tokio_postgres::Row) -> Result<LoadedRun, StoreError> {
    runs::decode(
        r.get(0),
        r.get(1),
        r.get(2),
        r.get(3),
        from_millis(r.get(4)),
        r.get(5),
        r.get::<_, Option<i64>>(6).map(from_millis),
        r.get(7),
        r.get(8),
        r.get(9),
        r.get(10),
    )
}

/// Loads the runs of every contact the planner has loaded.
pub(crate) async fn load<C: GenericClient>(c: &C, planner: &mut Planner<'_>) -> Result<(), StoreError> {
    let ids = planner.loaded_contact_ids();
    if ids.is_empty() {
        return Ok(());
    }
    let stmt = c.prepare_cached(&runs::LOAD_SQL.replace("{ids}", "SELECT UNNEST($1::INT8[])")).await?;
    for row in c.query(&stmt, &[&ids]).await? {
        planner.load_run(decode_row(&row)?);
    }
    Ok(())
}

/// Stores the plan's runs: steps of ended runs cancelled, new runs inserted, changed
/// ones updated (only while still active).
pub(crate) fn write<'a>(p: &mut Pipeline<'a>, plan: &'a WritePlan, ids: &[i64]) -> Result<(), StoreError> {
    if !plan.run_cancellations.is_empty() {
        let run_ids: Vec<&str> = plan.run_cancellations.iter().map(|c| c.run_id.as_str()).collect();
        let reasons: Vec<&str> = plan.run_cancellations.iter().map(|c| c.reason.as_str()).collect();
        let at: Vec<i64> = plan.run_cancellations.iter().map(|c| to_millis(c.at)).collect();
        p.push(
            "UPDATE jobs SET state = 'cancelled', last_error = u.reason, updated_at = u.at
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::INT8[]) AS u(run_id, reason, at)
                 WHERE jobs.run_id = u.run_id AND jobs.state IN ('pending', 'failed')",
            vec![Box::new(run_ids), Box::new(reasons), Box::new(at)],
        );
    }
    let (new, changed) = plan.runs_to_write();
    if !new.is_empty() {
        let cols = new.iter().map(|p| runs::columns(&p.run)).collect::<Result<Vec<_>, _>>()?;
        let run_ids: Vec<&str> = new.iter().map(|p| p.run.id.as_str()).collect();
        let contacts: Vec<i64> = new.iter().map(|p| ids[p.contact.0]).collect();
        let rules: Vec<&str> = new.iter().map(|p| p.run.rule_id.as_str()).collect();
        let versions: Vec<i64> = new.iter().map(|p| p.run.rule_version).collect();
        let started: Vec<i64> = new.iter().map(|p| to_millis(p.run.started_at)).collect();
        let states: Vec<&str> = new.iter().map(|p| p.run.state.as_str()).collect();
        let ended: Vec<Option<i64>> = new.iter().map(|p| p.run.ended_at.map(to_millis)).collect();
        let reasons: Vec<Option<&str>> = new.iter().map(|p| p.run.reason.as_deref()).collect();
        let goals: Vec<Option<String>> = cols.iter().map(|c| c.goal.clone()).collect();
        let watch: Vec<String> = cols.iter().map(|c| c.watch.clone()).collect();
        let seen: Vec<String> = cols.iter().map(|c| c.seen.clone()).collect();
        p.push(
            "INSERT INTO runs (id, contact_id, rule_id, rule_version, started_at, state, ended_at, reason, goal,
                                   watch, seen, updated_at)
                 SELECT id, c, r, v, s, st, e, re, g, w, se, s
                 FROM UNNEST($1::TEXT[], $2::INT8[], $3::TEXT[], $4::INT8[], $5::INT8[], $6::TEXT[], $7::INT8[],
                             $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[]) AS u(id, c, r, v, s, st, e, re, g, w, se)",
            vec![Box::new(run_ids), Box::new(contacts), Box::new(rules), Box::new(versions), Box::new(started), Box::new(states), Box::new(ended), Box::new(reasons), Box::new(goals), Box::new(watch), Box::new(seen)],
        );
    }
    if !changed.is_empty() {
        let cols = changed.iter().map(|p| runs::columns(&p.run)).collect::<Result<Vec<_>, _>>()?;
        let run_ids: Vec<&str> = changed.iter().map(|p| p.run.id.as_str()).collect();
        let states: Vec<&str> = changed.iter().map(|p| p.run.state.as_str()).collect();
        let ended: Vec<Option<i64>> = changed.iter().map(|p| p.run.ended_at.map(to_millis)).collect();
        let reasons: Vec<Option<&str>> = changed.iter().map(|p| p.run.reason.as_deref()).collect();
        let seen: Vec<String> = cols.iter().map(|c| c.seen.clone()).collect();
        let at: Vec<i64> = changed.iter().map(|p| to_millis(p.run.ended_at.unwrap_or(p.run.started_at))).collect();
        p.push(
            "UPDATE runs SET state = u.st, ended_at = u.e, reason = u.re, seen = u.se, updated_at = u.at
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::INT8[], $4::TEXT[], $5::TEXT[], $6::INT8[])
                      AS u(id, st, e, re, se, at)
                 WHERE runs.id = u.id AND runs.state = 'active'",
            vec![Box::new(run_ids), Box::new(states), Box::new(ended), Box::new(reasons), Box::new(seen), Box::new(at)],
        );
    }
    Ok(())
}

/// An active run none of whose steps is left to run is completed; idempotent.
pub(crate) async fn complete_if_done<C: GenericClient>(
    c: &C,
    run_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(run_id) = run_id else { return Ok(()) };
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET state = 'completed', ended_at = $1, reason = $2, updated_at = $1
             WHERE id = $3 AND state = 'active'
               AND NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = $3 AND state IN ('pending', 'running', 'failed'))",
        )
        .await?;
    c.execute(&stmt, &[&to_millis(now), &COMPLETED, &run_id]).await?;
    Ok(())
}

/// [`complete_if_done`] for several runs in one statement (a group of job finishes).
pub(crate) async fn complete_all_done<C: GenericClient>(
    c: &C,
    run_ids: &[&str],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if run_ids.is_empty() {
        return Ok(());
    }
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET state = 'completed', ended_at = $1, reason = $2, updated_at = $1
             WHERE id = ANY($3) AND state = 'active'
               AND NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = runs.id AND state IN ('pending', 'running', 'failed'))",
        )
        .await?;
    c.execute(&stmt, &[&to_millis(now), &COMPLETED, &run_ids]).await?;
    Ok(())
}

pub(crate) async fn run_of_job<C: GenericClient>(c: &C, job_id: &str) -> Result<Option<String>, StoreError> {
    let stmt = c.prepare_cached("SELECT run_id FROM jobs WHERE id = $1").await?;
    Ok(c.query_opt(&stmt, &[&job_id]).await?.and_then(|r| r.get::<_, Option<String>>(0)))
}

pub(crate) async fn load_one<C: GenericClient>(c: &C, run_id: &str) -> Result<Option<LoadedRun>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT id, contact_id, rule_id, rule_version, started_at, state, ended_at, reason, goal, watch, seen
             FROM runs WHERE id = $1",
        )
        .await?;
    c.query_opt(&stmt, &[&run_id]).await?.map(|r| decode_row(&r)).transpose()
}

/// Ends the active runs of these rules and cancels their pending steps.
pub(crate) async fn cancel_runs_of<C: GenericClient>(
    c: &C,
    rule_ids: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let now = to_millis(now);
    let steps = c
        .prepare_cached(
            "UPDATE jobs SET state = 'cancelled', last_error = $1, updated_at = $2
             WHERE state IN ('pending', 'failed')
               AND run_id IN (SELECT id FROM runs WHERE state = 'active' AND rule_id = ANY($3))",
        )
        .await?;
    c.execute(&steps, &[&reason, &now, &rule_ids]).await?;
    let stmt = c
        .prepare_cached(
            "UPDATE runs SET state = 'cancelled', ended_at = $1, reason = $2, updated_at = $1
             WHERE state = 'active' AND rule_id = ANY($3)",
        )
        .await?;
    Ok(c.execute(&stmt, &[&now, &reason, &rule_ids]).await?)
}

pub(crate) async fn list<C: GenericClient>(c: &C, f: &RunFilter) -> Result<Vec<RunView>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT r.id, r.rule_id, r.rule_version, COALESCE(c.email, c.client_code), r.state, r.started_at,
                    r.ended_at, r.reason
             FROM runs r JOIN contacts c ON c.id = r.contact_id
             WHERE ($1::TEXT IS NULL OR r.rule_id = $1) AND ($2::INT8 IS NULL OR r.contact_id = $2)
               AND ($3::TEXT IS NULL OR r.state = $3)
               AND ($4::INT8 IS NULL OR r.state = 'active' OR r.ended_at >= $4)
             ORDER BY r.started_at DESC, r.id DESC LIMIT $5",
        )
        .await?;
    let rows = c
        .query(
            &stmt,
            &[
                &f.rule_id,
                &f.contact_id,
                &f.state.map(RunState::as_str),
                &f.ended_since.map(to_millis),
                &(f.limit as i64),
            ],
        )
        .await?;
    let steps = c
        .prepare_cached(
            "SELECT id, action_type, state, due_at, last_error FROM jobs WHERE run_id = $1 ORDER BY due_at, id",
        )
        .await?;
    let mut views = Vec::with_capacity(rows.len());
    for r in rows {
        let run_id: String = r.get(0);
        let step_rows = c.query(&steps, &[&run_id]).await?;
        views.push(RunView {
            rule_id: r.get(1),
            rule_version: r.get(2),
            contact: r.get(3),
            state: RunState::parse(r.get(4)).unwrap_or(RunState::Cancelled),
            started_at: from_millis(r.get(5)),
            ended_at: r.get::<_, Option<i64>>(6).map(from_millis),
            reason: r.get(7),
            steps: step_rows
                .iter()
                .map(|s| {
                    let state: String = s.get(2);
                    StepView {
                        job_id: s.get(0),
                        action_type: s.get(1),
                        reason: reason_for(&state, s.get(4)),
                        state,
                        due_at: from_millis(s.get(3)),
                    }
                })
                .collect(),
            run_id,
        });
    }
    Ok(views)
}

pub(crate) async fn counts<C: GenericClient>(c: &C, since: DateTime<Utc>) -> Result<Vec<RunCounts>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT rule_id, count(*), count(*) FILTER (WHERE state = 'active'),
                    count(*) FILTER (WHERE state = 'goal_reached'), count(*) FILTER (WHERE state = 'completed'),
                    count(*) FILTER (WHERE state = 'cancelled')
             FROM runs WHERE started_at >= $1 GROUP BY rule_id ORDER BY rule_id",
        )
        .await?;
    Ok(c.query(&stmt, &[&to_millis(since)])
        .await?
        .iter()
        .map(|r| RunCounts {
            rule_id: r.get(0),
            entered: r.get(1),
            active: r.get(2),
            goal_reached: r.get(3),
            completed: r.get(4),
            cancelled: r.get(5),
        })
        .collect())
}
