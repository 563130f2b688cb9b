//! Contact pressure on PostgreSQL: what the governor counts, read in the claim's
//! transaction (or before planning an ingest), and its verdict stored on the job.
//! Nothing here decides: [`crate::store::jobs::hold_back`] and the planner do.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use relance_core::ActionType;
use relance_core::plan::Planner;
use relance_core::pressure::{Channel, Pressure};

use super::{from_millis, runs, to_millis};
use crate::store::StoreError;
use crate::store::jobs::{ClaimedJob, SendCounts, hold_back, needs_counts};

/// Contact pressure, in the claim: a message that may not go now is deferred or skipped.
/// Atomic with the send claim across instances: a transaction-scoped advisory lock on the
/// contact makes two claims for one contact take turns, and what counts as sent includes
/// the jobs claimed (`running`), so the second claim sees the first's job before deciding.
/// A budgeted rule's jobs take a second lock, on the rule, for its daily count.
/// (An advisory lock rather than the contact's row: ingest locks that row and then
/// cancels jobs, which this claim holds locked — the two would deadlock.) `undecided`:
/// jobs of this claim not looked at yet; `running` already, they do not count as sent.
pub(super) async fn governed<C: GenericClient>(
    c: &C,
    pressure: &Pressure,
    job: &ClaimedJob,
    undecided: &[String],
    now: DateTime<Utc>,
    held_counts: &mut Vec<(crate::store::dashboard::CounterKind, String)>,
) -> Result<bool, StoreError> {
    let Some(channel) = Channel::of(job.action_type) else { return Ok(false) };
    let mut counts = SendCounts::default();
    if needs_counts(pressure, job) {
        counts = count(c, pressure, job, channel, undecided, now).await?;
    }
    let Some(held) = hold_back(pressure, job, &counts, now) else { return Ok(false) };
    let (state, due, reason) = (held.state, to_millis(held.due_at), held.reason.clone());
    held_counts.push(crate::store::dashboard::held_counter(state == "skipped", &reason));
    let update = c
        .prepare_cached(
            "UPDATE jobs SET state = $1, due_at = $2, lease_until = NULL, attempts = attempts - 1, last_error = $3,
                             updated_at = $4
             WHERE id = $5",
        )
        .await?;
    c.execute(&update, &[&state, &due, &reason, &to_millis(now), &job.id]).await?;
    let status = held.attempt_status();
    let attempt = c
        .prepare_cached(
            "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, response) VALUES ($1, $2, 0, $3, $4)",
        )
        .await?;
    c.execute(&attempt, &[&job.id, &to_millis(now), &status, &reason]).await?;
    if state == "skipped" {
        runs::complete_if_done(c, job.run_id.as_deref(), now).await?;
    }
    Ok(true)
}

/// Takes every advisory lock a claimed batch may need before the governor looks at any
/// job: the contacts' (then the budgeted rules') in ascending order, so that two
/// instances' claims never wait on each other in a cycle. The per-job locks taken later
/// are then already held (advisory locks are re-entrant within a transaction).
pub(super) async fn lock_in_order<C: GenericClient>(
    c: &C,
    mut contacts: Vec<i64>,
    mut rules: Vec<String>,
) -> Result<(), StoreError> {
    contacts.sort_unstable();
    contacts.dedup();
    rules.sort_unstable();
    rules.dedup();
    if contacts.len() > 1 {
        let stmt = c
            .prepare_cached(
                "SELECT count(pg_advisory_xact_lock(7291, (id % 2147483647)::INT4))
                 FROM (SELECT id FROM UNNEST($1::INT8[]) AS u(id) ORDER BY id) ordered",
            )
            .await?;
        c.query_one(&stmt, &[&contacts]).await?;
    }
    if rules.len() > 1 {
        let stmt = c
            .prepare_cached(
                "SELECT count(pg_advisory_xact_lock(7292, hashtext(r)))
                 FROM (SELECT r FROM UNNEST($1::TEXT[]) AS u(r) ORDER BY r) ordered",
            )
            .await?;
        c.query_one(&stmt, &[&rules]).await?;
    }
    Ok(())
}

async fn count<C: GenericClient>(
    c: &C,
    pressure: &Pressure,
    job: &ClaimedJob,
    channel: Channel,
    undecided: &[String],
    now: DateTime<Utc>,
) -> Result<SendCounts, StoreError> {
    let types = channel.action_types();
    let mut counts = SendCounts::default();
    if let Some(window) = pressure.window(channel).filter(|_| !job.transactional) {
        let lock = c.prepare_cached("SELECT pg_advisory_xact_lock(7291, ($1::INT8 % 2147483647)::INT4)").await?;
        c.execute(&lock, &[&job.contact_id]).await?;
        let sent = c
            .prepare_cached(
                "SELECT updated_at FROM jobs WHERE contact_id = $1 AND id <> $2 AND state IN ('done', 'running')
                   AND action_type = ANY($3) AND updated_at > $4 AND id <> ALL($5)",
            )
            .await?;
        counts.sent = c
            .query(&sent, &[&job.contact_id, &job.id, &types, &to_millis(now - window), &undecided])
            .await?
            .iter()
            .map(|r| from_millis(r.get(0)))
            .collect();
        // The contact's other messages due now that go first (not transactional ones:
        // they take no slot; not a paused rule's: they wait).
        let ahead = c
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE contact_id = $1 AND id <> $2 AND state IN ('pending', 'failed')
                   AND due_at <= $3 AND NOT transactional AND action_type = ANY($4)
                   AND rule_id NOT IN (SELECT rule_id FROM paused_rules)
                   AND (priority > $5 OR (priority = $5 AND (due_at < $6 OR (due_at = $6 AND id < $2))))",
            )
            .await?;
        let priority = i32::from(job.priority);
        let row = c
            .query_one(&ahead, &[&job.contact_id, &job.id, &to_millis(now), &types, &priority, &to_millis(job.due_at)])
            .await?;
        counts.ahead = row.get::<_, i64>(0) as usize;
    }
    if job.max_per_day.is_some() {
        let lock = c.prepare_cached("SELECT pg_advisory_xact_lock(7292, hashtext($1))").await?;
        c.execute(&lock, &[&job.rule_id]).await?;
        let today = c
            .prepare_cached(
                "SELECT COUNT(*) FROM jobs WHERE rule_id = $1 AND id <> $2 AND max_per_day IS NOT NULL
                   AND state IN ('done', 'running') AND updated_at >= $3 AND id <> ALL($4)",
            )
            .await?;
        let row =
            c.query_one(&today, &[&job.rule_id, &job.id, &to_millis(pressure.day_start(now)), &undecided]).await?;
        counts.rule_today = row.get::<_, i64>(0) as usize;
    }
    Ok(counts)
}

/// What the planner's governor counts for an ingest: the loaded contacts' sends over the
/// longest cap window, and the budgeted rules' sends today — counting the messages due
/// now and not yet claimed as sent now (they go next, so that a burst's answers agree
/// with what the claim will do). Nothing without caps or budgets.
pub(super) async fn load<C: GenericClient>(
    c: &C,
    planner: &mut Planner<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(pressure) = planner.pressure() else { return Ok(()) };
    let window = relance_core::plan::sends_window(pressure);
    let day_start = pressure.day_start(now);
    if let Some(window) = window {
        let ids = planner.loaded_contact_ids();
        let types: Vec<&str> = Channel::ALL.iter().flat_map(|c| c.action_types()).collect();
        let stmt = c
            .prepare_cached(
                "SELECT contact_id, action_type, CASE WHEN state = 'pending' THEN $4 ELSE updated_at END FROM jobs
                 WHERE contact_id = ANY($1) AND action_type = ANY($2)
                   AND ((state IN ('done', 'running') AND updated_at > $3) OR (state = 'pending' AND due_at <= $4))",
            )
            .await?;
        for r in c.query(&stmt, &[&ids, &types, &to_millis(now - window), &to_millis(now)]).await? {
            if let Ok(action) = r.get::<_, &str>(1).parse::<ActionType>() {
                planner.load_send(r.get(0), action, from_millis(r.get(2)));
            }
        }
    }
    let rules = planner.budgeted_rules();
    if !rules.is_empty() {
        let stmt = c
            .prepare_cached(
                "SELECT rule_id, COUNT(*) FROM jobs WHERE rule_id = ANY($1) AND max_per_day IS NOT NULL
                   AND ((state IN ('done', 'running') AND updated_at >= $2) OR (state = 'pending' AND due_at <= $3))
                 GROUP BY rule_id",
            )
            .await?;
        for r in c.query(&stmt, &[&rules, &to_millis(day_start), &to_millis(now)]).await? {
            planner.load_rule_sends(r.get(0), r.get::<_, i64>(1) as usize);
        }
    }
    Ok(())
}
