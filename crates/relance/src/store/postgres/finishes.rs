//! Job finishes on PostgreSQL, grouped: the finishes recorded while one transaction runs
//! are written together in the next, as ingest batches are. Under load the dispatcher
//! finishes a few jobs at a time, and one durable transaction per job was most of the
//! transactions the server committed (5,057 of 15,125 in a 12 s run, beside 2,129 ingest
//! batches).
//!
//! No task lives between groups: the finish that finds no group being written spawns
//! one, which writes groups until nothing is queued. It is spawned rather than run by
//! that caller so that a caller that stops waiting cannot strand the others.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio::sync::oneshot;

use super::{PgStore, jobs, runs, to_millis};
use crate::store::StoreError;
use crate::store::jobs::{JobFinish, JobState, truncate};

/// Finishes written in one transaction at most.
const MAX_GROUP: usize = 64;

struct Queued {
    id: String,
    finish: JobFinish,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

#[derive(Default)]
pub(crate) struct Finishes {
    /// What is queued, and whether a task is writing groups.
    state: Mutex<(Vec<Queued>, bool)>,
}

impl Finishes {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Queued>, bool)> {
        // The state is a list and a flag, consistent after every statement: a panic while
        // it was held leaves nothing half-changed.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PgStore {
    /// Records a job's result with the others queued meanwhile; answers once their
    /// transaction has committed (or, if it failed, once this one's own has).
    pub(crate) async fn finish_grouped(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut state = self.finishes.lock();
            state.0.push(Queued { id, finish, reply });
            !std::mem::replace(&mut state.1, true)
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.write_groups().await });
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(anyhow::anyhow!("the job's result was not recorded"))))
    }

    async fn write_groups(&self) {
        loop {
            // The finishing tasks this one raced with queue theirs first.
            tokio::task::yield_now().await;
            let group: Vec<Queued> = {
                let mut state = self.finishes.lock();
                if state.0.is_empty() {
                    state.1 = false;
                    return;
                }
                let n = state.0.len().min(MAX_GROUP);
                state.0.drain(..n).collect()
            };
            self.write_group(group).await;
        }
    }

    /// One transaction for the group; if it fails (a job gone, a deadlock with another
    /// instance finishing jobs of the same run), each finish in a transaction of its own,
    /// so that one cannot fail the others.
    async fn write_group(&self, group: Vec<Queued>) {
        let distinct = group.iter().map(|q| q.id.as_str()).collect::<HashSet<_>>().len() == group.len();
        if group.len() > 1 && distinct {
            match self.finish_together(&group).await {
                Ok(Some(moved)) => {
                    for (q, m) in group.into_iter().zip(moved) {
                        let _ = q.reply.send(Ok(m));
                    }
                    return;
                }
                // A job of the group is not stored: alone, only its caller hears so.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, size = group.len(), "job results not recorded together; recording them one at a time")
                }
            }
        }
        for q in group {
            let r = self.finish_alone(&q.id, &q.finish).await;
            let _ = q.reply.send(r);
        }
    }

    /// The group in one transaction; `None` (rolled back) when one of its jobs is not
    /// stored.
    async fn finish_together(&self, group: &[Queued]) -> Result<Option<Vec<bool>>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let moved = write_finishes(&tx, group, (self.clock)()).await?;
        if moved.is_some() {
            tx.commit().await?;
        }
        Ok(moved)
    }

    /// One transaction: the state, the attempt, the outbox record and the run's
    /// completion are seen together or not at all.
    async fn finish_alone(&self, id: &str, finish: &JobFinish) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let moved = jobs::finish(&tx, id, finish, (self.clock)()).await?;
        tx.commit().await?;
        Ok(moved)
    }
}

/// A group's finishes as one statement per table whatever its size (`UNNEST`), pipelined
/// in one round trip: per job, the state change, the attempt and the outbox record, as
/// [`jobs::finish`] writes them for one. Statements per finished job were a third of
/// what PostgreSQL executed under the benchmark's load (three per job: 20,000 in a 12 s
/// run beside 32,000 for 3,600 ingest batches). The ids must be distinct.
async fn write_finishes<C: GenericClient>(
    c: &C,
    group: &[Queued],
    now: DateTime<Utc>,
) -> Result<Option<Vec<bool>>, StoreError> {
    let n = group.len();
    let (mut ids, mut states, mut dues, mut errors) = (vec![], vec![], vec![], vec![]);
    let (mut started, mut durations, mut statuses, mut http, mut responses) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut outbox_ids, mut channels, mut payloads) = (vec![], vec![], vec![]);
    for q in group {
        let (state, due) = jobs::state_after(&q.finish.finish);
        ids.push(q.id.as_str());
        states.push(state.as_str());
        dues.push(due);
        errors.push(q.finish.error.as_deref().map(|e| truncate(e, 1000)));
        let a = &q.finish.attempt;
        started.push(to_millis(a.started_at));
        durations.push(a.duration_ms as i64);
        statuses.push(a.status.as_str());
        http.push(a.http_status.map(i32::from));
        responses.push(a.response.as_deref().map(|r| truncate(r, 2000)));
        if let Some((channel, payload)) = &q.finish.outbox {
            outbox_ids.push(q.id.as_str());
            channels.push(channel.as_str());
            payloads.push(payload.to_string());
        }
    }
    // The final SELECT reads `jobs` as the statement began: `run_id`, which a finish
    // does not change, and whether the job is stored at all.
    let update = c
        .prepare_cached(
            "WITH input AS (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::INT8[], $4::TEXT[]) AS u(id, state, due, error)),
                  moved AS (
                    UPDATE jobs j SET state = i.state, due_at = COALESCE(i.due, j.due_at), lease_until = NULL,
                                      last_error = i.error, updated_at = $5
                    FROM input i WHERE j.id = i.id AND j.state = 'running' RETURNING j.id)
             SELECT j.id, j.run_id, EXISTS (SELECT 1 FROM moved m WHERE m.id = j.id) FROM jobs j WHERE j.id = ANY($1)",
        )
        .await?;
    let attempts = c
        .prepare_cached(
            "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, http_status, response)
             SELECT u.id, u.s, u.d, u.st, u.h, u.r
             FROM UNNEST($1::TEXT[], $2::INT8[], $3::INT8[], $4::TEXT[], $5::INT4[], $6::TEXT[]) AS u(id, s, d, st, h, r)
             WHERE EXISTS (SELECT 1 FROM jobs WHERE id = u.id)",
        )
        .await?;
    let outbox = c
        .prepare_cached(
            "INSERT INTO outbox (job_id, channel, payload, created_at)
             SELECT u.id, u.c, u.p, $4 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS u(id, c, p)
             WHERE EXISTS (SELECT 1 FROM jobs WHERE id = u.id)",
        )
        .await?;
    let now_ms = to_millis(now);
    let record_outbox = async {
        if outbox_ids.is_empty() {
            return Ok(0);
        }
        c.execute(&outbox, &[&outbox_ids, &channels, &payloads, &now_ms]).await
    };
    let update_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [&ids, &states, &dues, &errors, &now_ms];
    let attempt_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&ids, &started, &durations, &statuses, &http, &responses];
    // Lookups by key only: scans ruled out, as in a claim.
    let (_, rows, _, _) = tokio::try_join!(
        c.batch_execute("SET LOCAL enable_seqscan = off"),
        c.query(&update, &update_params),
        c.execute(&attempts, &attempt_params),
        record_outbox
    )?;
    if rows.len() != n {
        return Ok(None);
    }
    let by_id: HashMap<&str, (Option<&str>, bool)> =
        rows.iter().map(|r| (r.get::<_, &str>(0), (r.get::<_, Option<&str>>(1), r.get::<_, bool>(2)))).collect();
    let mut moved = Vec::with_capacity(n);
    let mut ended_runs: Vec<&str> = vec![];
    for (id, state) in ids.iter().zip(&states) {
        let Some(&(run_id, m)) = by_id.get(id) else { return Ok(None) };
        moved.push(m);
        // As for one job: a run ends when its last step is finished for good.
        if let Some(run_id) = run_id.filter(|_| m && *state != JobState::Failed.as_str()) {
            ended_runs.push(run_id);
        }
    }
    ended_runs.sort_unstable();
    ended_runs.dedup();
    runs::complete_all_done(c, &ended_runs, now).await?;
    Ok(Some(moved))
}
