//! Job queries on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED`, so that several
//! instances never run the same job at once.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use relance_core::ActionType;
use serde_json::Value;

use super::{PgStore, from_millis, json_text, plan_io, runs, to_millis};
use crate::store::jobs::{
    Attempt, ClaimRequest, ClaimedJob, Finish, JobCount, JobFilter, JobFinish, JobRow, JobState, OutboxRow, truncate,
};
use crate::store::{StoreError, log_plan_warnings};
use relance_core::plan::Planner;

fn types(action_types: &[ActionType]) -> Vec<String> {
    action_types.iter().map(|a| a.as_str().to_owned()).collect()
}

pub(super) async fn claim(store: &PgStore, req: &ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let now = to_millis((store.clock)());
    let lease_until = now + req.lease.as_millis() as i64;
    // Expired leases first, then due jobs: two statements, so that each walks the
    // (state, due_at) index instead of scanning every future job.
    let expired = tx
        .prepare_cached(
            "UPDATE jobs SET lease_until = $2, attempts = attempts + 1, updated_at = $1
             WHERE id IN (
               SELECT id FROM jobs WHERE state = 'running' AND lease_until < $1 AND action_type = ANY($3)
               LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, priority, due_at, contact_id, rule_id, max_per_day IS NOT NULL",
        )
        .await?;
    let due = tx
        .prepare_cached(
            "UPDATE jobs SET state = 'running', lease_until = $2, attempts = attempts + 1, updated_at = $1
             WHERE id IN (
               SELECT id FROM jobs WHERE state IN ('pending', 'failed') AND due_at <= $1 AND action_type = ANY($3)
                 AND rule_id NOT IN (SELECT rule_id FROM paused_rules)
               ORDER BY due_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, priority, due_at, contact_id, rule_id, max_per_day IS NOT NULL",
        )
        .await?;
    let kinds = types(&req.action_types);
    let row = |r: &tokio_postgres::Row| {
        (r.get::<_, String>(0), r.get::<_, i32>(1), r.get::<_, i64>(2), r.get(3), r.get(4), r.get(5))
    };
    // Every statement of a claim is a lookup by key. A generic plan built while a table
    // was small may scan it whole and is then kept by the connection as the table grows
    // (the ingest transaction rules scans out for the same reason); sent in the same
    // round trip as the first statement.
    let limit = req.limit as i64;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&now, &lease_until, &kinds, &limit];
    let (_, expired_rows) =
        tokio::try_join!(tx.batch_execute("SET LOCAL enable_seqscan = off"), tx.query(&expired, &params))?;
    let mut rows: Vec<(String, i32, i64, i64, String, bool)> = expired_rows.iter().map(row).collect();
    if rows.len() < req.limit {
        let more = (req.limit - rows.len()) as i64;
        rows.extend(tx.query(&due, &[&now, &lease_until, &kinds, &more]).await?.iter().map(row));
    }
    // One statement claimed them all: the governor looks at them one by one, the
    // higher-priority rule's first (ties: earlier due), so that two messages of one
    // contact in the batch meet a cap's last slot in that order.
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    if let Some(pressure) = &req.pressure {
        // Contacts are locked only when caps are counted; budgeted rules always.
        let contacts = if pressure.is_off() { Vec::new() } else { rows.iter().map(|r| r.3).collect() };
        let rules = rows.iter().filter(|r| r.5).map(|r| r.4.clone()).collect();
        super::pressure::lock_in_order(&tx, contacts, rules).await?;
    }
    let ids: Vec<String> = rows.into_iter().map(|r| r.0).collect();
    let mut claimed = Vec::with_capacity(ids.len());
    let mut held = Vec::new();
    let now = from_millis(now);
    for (i, job) in load_claimed(&tx, &ids).await?.into_iter().enumerate() {
        if skipped(&tx, &job, now).await? {
            continue;
        }
        if let Some(pressure) = &req.pressure
            && super::pressure::governed(&tx, pressure, &job, &ids[i + 1..], now, &mut held).await?
        {
            continue;
        }
        claimed.push(job);
    }
    tx.commit().await?;
    // After the claim's commit, in their own transaction, like an ingest's counters.
    if !held.is_empty()
        && let Err(e) = super::batch::add_counts(&client, &crate::store::dashboard::fold_held(&held, now)).await
    {
        tracing::warn!(error = %e, "dashboard counters of held-back messages not updated");
    }
    Ok(claimed)
}

/// A step whose `skip_if` holds now is skipped in the claiming transaction, which holds
/// the job's row lock: no worker, here or on another instance, ever sees it.
async fn skipped<C: GenericClient>(c: &C, job: &ClaimedJob, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let (Some(skip), Some(run_id)) = (&job.skip_if, &job.run_id) else { return Ok(false) };
    let Some(run) = runs::load_one(c, run_id).await?.filter(|r| r.state == relance_core::plan::RunState::Active) else {
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
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET state = 'skipped', lease_until = NULL, last_error = $1, updated_at = $2 WHERE id = $3",
        )
        .await?;
    c.execute(&stmt, &[&reason, &to_millis(now), &job.id]).await?;
    let attempt = c
        .prepare_cached(
            "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, response) VALUES ($1, $2, 0, 'skipped', $3)",
        )
        .await?;
    c.execute(&attempt, &[&job.id, &to_millis(now), &reason]).await?;
    runs::complete_if_done(c, Some(run_id), now).await?;
    Ok(true)
}

/// Loads claimed jobs with their event and contact in one round trip, in the order of
/// `ids`. The event is found by its row id, or by its UUID for rows stored before ids
/// were numeric: a `LATERAL` lookup, so that the planner can only probe an index per job
/// (a plain join on that expression got a generic plan hashing the whole events table,
/// built while the table was small: 3.8 ms per job, measured under load).
async fn load_claimed<C: GenericClient>(c: &C, ids: &[String]) -> Result<Vec<ClaimedJob>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = c
        .prepare_cached(
            "SELECT j.id, j.rule_id, j.trigger, j.action_type, j.config, j.due_at, j.attempts,
                    j.contact_id, j.event_id, e.event, j.run_id, j.skip_if, j.transactional, j.on_cap,
                    j.priority, j.max_per_day, e.source, e.name, e.trigger, e.occurred_at,
                    (SELECT data FROM contacts WHERE id = j.contact_id)
             FROM jobs j LEFT JOIN LATERAL (
                 SELECT event, source, name, trigger, occurred_at FROM events
                 WHERE id = CASE WHEN j.event_id ~ '^[0-9]{1,18}$' THEN j.event_id::INT8 END
                 UNION ALL
                 SELECT event, source, name, trigger, occurred_at FROM events WHERE legacy_id = j.event_id
                 LIMIT 1) e ON TRUE
             WHERE j.id = ANY($1)",
        )
        .await?;
    let mut by_id: std::collections::HashMap<String, ClaimedJob> = c
        .query(&stmt, &[&ids])
        .await?
        .iter()
        .map(|r| claimed_job(r).map(|j| (j.id.clone(), j)))
        .collect::<Result<_, _>>()?;
    ids.iter().map(|id| by_id.remove(id).ok_or_else(|| StoreError::NotFound(format!("action {id}")))).collect()
}

fn claimed_job(r: &tokio_postgres::Row) -> Result<ClaimedJob, StoreError> {
    let id: String = r.get(0);
    let action: String = r.get(3);
    let action_type = action
        .parse::<ActionType>()
        .map_err(|_| StoreError::Unavailable(anyhow::anyhow!("job {id} has unknown action type {action}")))?;
    let contact_id: i64 = r.get(7);
    let contact = r.get::<_, Option<&str>>(20).ok_or_else(|| {
        StoreError::Unavailable(anyhow::anyhow!("job {id} names contact {contact_id}, which is not stored"))
    })?;
    let contact = super::parse_contact(contact_id, contact)?;
    Ok(ClaimedJob {
        idempotency_key: id.clone(),
        id,
        rule_id: r.get(1),
        trigger: r.get(2),
        action_type,
        config: json_text(r.get::<_, &str>(4)),
        due_at: from_millis(r.get(5)),
        attempts: r.get::<_, i32>(6) as u32,
        contact_id,
        contact,
        event_id: r.get(8),
        event: super::stored_event_of(r, 9, 16),
        run_id: r.get(10),
        skip_if: crate::store::runs::parse_skip_if(r.get(11)),
        transactional: r.get(12),
        on_cap: crate::store::jobs::parse_on_cap(r.get(13)),
        priority: r.get::<_, i32>(14).clamp(0, 255) as u8,
        max_per_day: r.get::<_, Option<i32>>(15).and_then(|n| u32::try_from(n).ok()),
    })
}

/// The state a finished attempt leaves its job in, and when a retry is due.
pub(super) fn state_after(finish: &Finish) -> (JobState, Option<i64>) {
    match finish {
        Finish::Done => (JobState::Done, None),
        Finish::Retry { at } => (JobState::Failed, Some(to_millis(*at))),
        Finish::Dead => (JobState::Dead, None),
        Finish::Suppressed => (JobState::Suppressed, None),
    }
}

pub(super) async fn finish<C: GenericClient>(
    c: &C,
    id: &str,
    f: &JobFinish,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (state, due) = state_after(&f.finish);
    // The state change, the attempt and the outbox record in one round trip (pipelined),
    // inside the caller's transaction.
    // The inserts are guarded by the job's existence, so that an unknown id reads as
    // "not found" rather than as a foreign-key error.
    let update = c
        .prepare_cached(
            "WITH job AS (SELECT run_id FROM jobs WHERE id = $5),
                  moved AS (
                    UPDATE jobs SET state = $1, due_at = COALESCE($2, due_at), lease_until = NULL, last_error = $3,
                                    updated_at = $4
                    WHERE id = $5 AND state = 'running' RETURNING 1)
             SELECT run_id, EXISTS (SELECT 1 FROM moved) FROM job",
        )
        .await?;
    let attempt = c
        .prepare_cached(
            "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, http_status, response)
             SELECT $1::TEXT, $2::INT8, $3::INT8, $4::TEXT, $5::INT4, $6::TEXT WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1)",
        )
        .await?;
    let outbox = c
        .prepare_cached(
            "INSERT INTO outbox (job_id, channel, payload, created_at)
             SELECT $1::TEXT, $2::TEXT, $3::TEXT, $4::INT8 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1)",
        )
        .await?;
    let a = &f.attempt;
    let error = f.error.as_deref().map(|e| truncate(e, 1000));
    let now_ms = to_millis(now);
    let update_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&state.as_str(), &due, &error, &now_ms, &id];
    let (started_at, duration_ms, http_status) =
        (to_millis(a.started_at), a.duration_ms as i64, a.http_status.map(i32::from));
    let response = a.response.as_deref().map(|r| truncate(r, 2000));
    let attempt_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&id, &started_at, &duration_ms, &a.status, &http_status, &response];
    let outbox_row = f.outbox.as_ref().map(|(channel, payload)| (channel, payload.to_string()));
    let record_outbox = async {
        match &outbox_row {
            Some((channel, payload)) => c.execute(&outbox, &[&id, channel, payload, &now_ms]).await.map(Some),
            None => Ok(None),
        }
    };
    // Lookups by key only: scans ruled out, as in a claim.
    let (_, row, _, _) = tokio::try_join!(
        c.batch_execute("SET LOCAL enable_seqscan = off"),
        c.query_opt(&update, &update_params),
        c.execute(&attempt, &attempt_params),
        record_outbox
    )?;
    let Some(row) = row else {
        return Err(StoreError::NotFound(format!("action {id}")));
    };
    let moved = row.get::<_, bool>(1);
    if moved && state != JobState::Failed {
        runs::complete_if_done(c, row.get::<_, Option<&str>>(0), now).await?;
    }
    Ok(moved)
}

pub(super) async fn run_internal(store: &PgStore, id: &str) -> Result<bool, StoreError> {
    let started = std::time::Instant::now();
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let now = (store.clock)();
    let lock = tx.prepare_cached("SELECT state, contact_id FROM jobs WHERE id = $1 FOR UPDATE").await?;
    let Some(row) = tx.query_opt(&lock, &[&id]).await? else {
        return Err(StoreError::NotFound(format!("action {id}")));
    };
    let state: String = row.get(0);
    if state != "running" {
        return Ok(false);
    }
    let contact_id: i64 = row.get(1);
    let job =
        load_claimed(&tx, &[id.to_owned()]).await?.pop().ok_or_else(|| StoreError::NotFound(format!("action {id}")))?;
    let rules = store.rules.current();
    let mut new_id = || uuid::Uuid::now_v7().to_string();
    let mut planner = Planner::new(&rules.engine, rules.version, &store.default_segment, &mut new_id);
    planner.set_sync(store.brevo_sync.clone());
    planner.load_contact(plan_io::load_locked(&tx, contact_id).await?);
    runs::load(&tx, &mut planner).await?;
    planner.set_paused(super::pause::paused(&tx).await?.into_iter().map(|(id, _)| id).collect());
    planner.set_pressure(store.pressure.clone());
    super::pressure::load(&tx, &mut planner, now).await?;
    let changes = planner.delayed(&job.due_action(), now)?;
    let plan = planner.finish();
    let ids = plan_io::write_plan(&tx, &plan, &[]).await?;
    log_plan_warnings(&plan, &ids);
    let done = JobFinish {
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
    };
    let moved = finish(&tx, id, &done, now).await?;
    tx.commit().await?;
    Ok(moved)
}

pub(super) async fn next_due<C: GenericClient>(
    c: &C,
    action_types: &[ActionType],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT LEAST(
               (SELECT due_at FROM jobs WHERE state = 'pending' AND action_type = ANY($1) ORDER BY due_at LIMIT 1),
               (SELECT due_at FROM jobs WHERE state = 'failed' AND action_type = ANY($1) ORDER BY due_at LIMIT 1),
               (SELECT min(lease_until) FROM jobs WHERE state = 'running' AND action_type = ANY($1)))",
        )
        .await?;
    // In a transaction of its own that leaves the planner only ordered index scans (one
    // round trip, pipelined): its generic plan, built while `jobs` was small, read every
    // pending job into a bitmap, or aggregated an index scan of them, and was kept as
    // they accumulated (15,000 rows, 4.3 ms a call after 15 s of load, measured with
    // auto_explain; the dispatcher asks after every round). `ORDER BY due_at LIMIT 1`
    // on the (state, due_at) index: the first pending job of a dispatched type ends
    // the walk.
    let kinds = types(action_types);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&kinds];
    let (_, row, _) = tokio::try_join!(
        c.batch_execute("BEGIN READ ONLY; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"),
        c.query_one(&stmt, &params),
        c.batch_execute("COMMIT")
    )?;
    let t: Option<i64> = row.get(0);
    Ok(t.map(from_millis))
}

const JOB_COLUMNS: &str = "j.id, j.state, j.action_type, j.rule_id, j.trigger, j.config, j.due_at, j.attempts,
     j.last_error, j.event_id, c.email, c.client_code, j.created_at, j.updated_at, j.run_id";

fn job_row(r: &tokio_postgres::Row) -> JobRow {
    JobRow {
        id: r.get(0),
        state: JobState::parse(r.get::<_, &str>(1)).unwrap_or(JobState::Dead),
        action_type: r.get(2),
        rule_id: r.get(3),
        trigger: r.get(4),
        config: serde_json::from_str(r.get::<_, &str>(5)).unwrap_or(Value::Null),
        due_at: from_millis(r.get(6)),
        attempts: r.get::<_, i32>(7) as u32,
        last_error: r.get(8),
        reason: crate::store::jobs::reason_for(r.get(1), r.get(8)),
        run_id: r.get(14),
        event_id: r.get(9),
        contact_email: r.get(10),
        contact_client_code: r.get(11),
        created_at: from_millis(r.get(12)),
        updated_at: from_millis(r.get(13)),
    }
}

pub(super) async fn list<C: GenericClient>(c: &C, f: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j JOIN contacts c ON c.id = j.contact_id
         WHERE ($1::TEXT IS NULL OR j.state = $1) AND ($2::BIGINT IS NULL OR j.contact_id = $2)
           AND ($3::TEXT IS NULL OR j.action_type = $3)
           AND (NOT $5 OR (j.state = 'pending' AND j.last_error LIKE 'deferred:%'))
         ORDER BY j.due_at, j.id LIMIT $4"
    );
    let stmt = c.prepare_cached(&sql).await?;
    let rows = c
        .query(
            &stmt,
            &[
                &f.state.map(JobState::as_str),
                &f.contact_id,
                &f.action_type.map(ActionType::as_str),
                &(f.limit as i64),
                &f.deferred,
            ],
        )
        .await?;
    Ok(rows.iter().map(job_row).collect())
}

pub(super) async fn get<C: GenericClient>(c: &C, id: &str) -> Result<Option<(JobRow, Vec<Attempt>)>, StoreError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs j JOIN contacts c ON c.id = j.contact_id WHERE j.id = $1");
    let stmt = c.prepare_cached(&sql).await?;
    let Some(row) = c.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let stmt = c
        .prepare_cached(
            "SELECT started_at, duration_ms, status, http_status, response FROM job_attempts WHERE job_id = $1 ORDER BY id",
        )
        .await?;
    let attempts = c.query(&stmt, &[&id]).await?.iter().map(attempt_row).collect();
    Ok(Some((job_row(&row), attempts)))
}

/// An attempt from `started_at, duration_ms, status, http_status, response`.
pub(super) fn attempt_row(r: &tokio_postgres::Row) -> Attempt {
    Attempt {
        started_at: from_millis(r.get(0)),
        duration_ms: r.get::<_, i64>(1) as u64,
        status: r.get(2),
        http_status: r.get::<_, Option<i32>>(3).map(|s| s as u16),
        response: r.get(4),
    }
}

async fn current_state<C: GenericClient>(c: &C, id: &str) -> Result<JobState, StoreError> {
    let stmt = c.prepare_cached("SELECT state FROM jobs WHERE id = $1").await?;
    let state: Option<String> = c.query_opt(&stmt, &[&id]).await?.map(|r| r.get(0));
    state.and_then(|s| JobState::parse(&s)).ok_or_else(|| StoreError::NotFound(format!("action {id}")))
}

pub(super) async fn cancel<C: GenericClient>(c: &C, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET state = 'cancelled', last_error = 'cancelled by an operator', updated_at = $1
             WHERE id = $2 AND state IN ('pending', 'failed', 'held')",
        )
        .await?;
    if c.execute(&stmt, &[&to_millis(now), &id]).await? == 1 {
        return runs::complete_if_done(c, runs::run_of_job(c, id).await?.as_deref(), now).await;
    }
    let state = current_state(c, id).await?;
    Err(StoreError::Conflict(format!("job {id} is {}; only pending or failed jobs can be cancelled", state.as_str())))
}

pub(super) async fn retry<C: GenericClient>(c: &C, id: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "UPDATE jobs SET state = 'pending', due_at = $1, attempts = 0, lease_until = NULL, updated_at = $1
             WHERE id = $2 AND state IN ('dead', 'failed')",
        )
        .await?;
    if c.execute(&stmt, &[&to_millis(now), &id]).await? == 1 {
        return Ok(());
    }
    let state = current_state(c, id).await?;
    Err(StoreError::Conflict(format!("job {id} is {}; only dead or failed jobs can be retried", state.as_str())))
}

pub(super) async fn check_running<C: GenericClient>(c: &C, id: &str) -> Result<(), StoreError> {
    match current_state(c, id).await? {
        JobState::Running => Ok(()),
        other => Err(StoreError::Conflict(format!("job {id} is {}, not running: claim it first", other.as_str()))),
    }
}

pub(super) async fn stats<C: GenericClient>(c: &C) -> Result<Vec<JobCount>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT state, action_type, count(*) FROM jobs GROUP BY state, action_type ORDER BY state, action_type",
        )
        .await?;
    Ok(c.query(&stmt, &[])
        .await?
        .iter()
        .map(|r| JobCount { state: r.get(0), action_type: r.get(1), count: r.get(2) })
        .collect())
}

pub(super) async fn outbox<C: GenericClient>(c: &C, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
    let stmt =
        c.prepare_cached("SELECT job_id, channel, payload, created_at FROM outbox ORDER BY id DESC LIMIT $1").await?;
    Ok(c.query(&stmt, &[&(limit as i64)])
        .await?
        .iter()
        .map(|r| OutboxRow {
            job_id: r.get(0),
            channel: r.get(1),
            payload: json_text(r.get::<_, &str>(2)),
            created_at: from_millis(r.get(3)),
        })
        .collect())
}
