//! Group ingest on PostgreSQL: the requests queued while a transaction runs are taken
//! together into the next one, so that a batch costs about ten round trips whatever its
//! size (a round trip, not the disk, is what a loopback PostgreSQL costs most).
//!
//! In one transaction: lock and load every contact the batch names and the stored events
//! its dedupe keys point to (`plan_io`), plan the batch in memory (`relance_core::plan`),
//! write the plan with one statement per table. If anything fails, the batch is replayed
//! one request per transaction. The dashboard's counters are added up across batches and
//! written a quarter of a second after the first of them at most, never before an answer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use relance_core::InboundEvent;
use relance_core::plan::Planner;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{PgStore, plan_io, retryable};
use crate::store::dashboard::{CounterKind, HourlyCount};
use crate::store::{IngestResult, StoreError, dashboard, earliest_new_job, log_plan_warnings};

/// Requests taken into one transaction at most.
const MAX_BATCH: usize = 64;

/// Batches in flight at once per instance. Measured on 2 cores with PostgreSQL on the
/// server's core: 1 worker 2.9k req/s, 2 workers 2.6k, 4 workers 1.8k (smaller batches,
/// same CPU). More may pay off when PostgreSQL has cores of its own; they lock contacts
/// in the same order, as two instances do.
pub(crate) const WORKERS: usize = 1;

/// Each request's answers, and when the earliest job the batch stored is due.
type Answered = (Vec<Vec<IngestResult>>, Option<DateTime<Utc>>);

pub(crate) struct IngestJob {
    pub events: Vec<InboundEvent>,
    pub reply: oneshot::Sender<Result<Vec<IngestResult>, StoreError>>,
}

impl PgStore {
    pub(crate) async fn batch_loop(self, rx: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<IngestJob>>>) {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        loop {
            {
                // Take what is queued; the lock is held only while taking.
                let mut rx = rx.lock().await;
                // Counters waiting are written when due, even if no request comes.
                let deadline = self.counts.lock().await.deadline();
                let first = match deadline {
                    Some(deadline) => match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                        Ok(first) => first,
                        Err(_) => {
                            drop(rx);
                            self.write_counts().await;
                            continue;
                        }
                    },
                    None => rx.recv().await,
                };
                let Some(first) = first else { break };
                jobs.push(first);
                // The requests a batch's answers wake are sent again only once their tasks
                // have run; taking the queue at once would take the one request that came
                // in meanwhile alone, and batches would alternate between 1 and 31
                // requests (measured: half the batches, a third of the time). So the woken
                // tasks run first, as long as each turn brings more requests.
                loop {
                    tokio::task::yield_now().await;
                    let before = jobs.len();
                    while jobs.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(j) => jobs.push(j),
                            Err(_) => break,
                        }
                    }
                    if jobs.len() == before || jobs.len() >= MAX_BATCH {
                        break;
                    }
                }
            }
            let started = std::time::Instant::now();
            let outcome = self.ingest_batch(&jobs).await;
            tracing::debug!(
                size = jobs.len(),
                ms = started.elapsed().as_secs_f64() * 1000.0,
                ok = outcome.is_ok(),
                "ingest batch"
            );
            let mut counts = Vec::new();
            let replies: Vec<Result<Vec<IngestResult>, StoreError>> = match outcome {
                Ok(((results, earliest_job), batch_counts)) => {
                    counts = batch_counts;
                    if earliest_job.is_some() {
                        self.jobs_ready.stored(earliest_job);
                    }
                    results.into_iter().map(Ok).collect()
                }
                Err(e) => {
                    if jobs.len() > 1 {
                        tracing::warn!(error = %e, size = jobs.len(), "ingest batch failed; replaying it one request at a time");
                    }
                    let mut replies = Vec::with_capacity(jobs.len());
                    for job in &jobs {
                        replies.push(self.ingest_alone(job).await.map(|(results, alone_counts)| {
                            counts.extend(alone_counts);
                            results
                        }));
                    }
                    // What the replays stored is not followed job by job: wake anyway.
                    self.jobs_ready.stored(None);
                    replies
                }
            };
            // Pending before the answers go: a dashboard read on this instance adds them.
            let due = {
                let mut pending = self.counts.lock().await;
                pending.add(counts);
                pending.due()
            };
            for (job, reply) in jobs.drain(..).zip(replies) {
                let _ = job.reply.send(reply);
            }
            if due {
                self.write_counts().await;
            }
        }
        self.write_counts().await;
    }

    /// Writes the pending counters. The lock is held through the write, so that a
    /// dashboard read sees each count once: pending in memory or stored, never both.
    async fn write_counts(&self) {
        let mut pending = self.counts.lock().await;
        let counts = pending.take();
        if counts.is_empty() {
            return;
        }
        let written = match self.client().await {
            Ok(client) => add_counts(&client, &counts).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "dashboard counters not updated");
        }
    }

    /// One request in a transaction of its own, tried again after a deadlock or a
    /// serialization failure (instances working on the same contacts).
    async fn ingest_alone(&self, job: &IngestJob) -> Result<(Vec<IngestResult>, Vec<HourlyCount>), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ingest_batch(std::slice::from_ref(job)).await {
                Ok(((mut r, _), counts)) => return Ok((r.pop().unwrap_or_default(), counts)),
                Err(e) if attempt < 3 && retryable(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One transaction for the batch, in two round trips when it creates no contact:
    /// `BEGIN` with the loads, then every write with the `COMMIT`. Returns the answers
    /// and the dashboard counters they add.
    async fn ingest_batch(&self, jobs: &[IngestJob]) -> Result<(Answered, Vec<HourlyCount>), StoreError> {
        let client = self.client().await?;
        let now = (self.clock)();
        match self.batch_body(&client, jobs, now).await {
            Ok(answered) => {
                let counts = dashboard::fold_counts(answered.0.iter().flatten(), now);
                Ok((answered, counts))
            }
            Err(e) => {
                // The transaction may still be open (an error before the COMMIT was
                // sent); a connection that cannot say ROLLBACK leaves the pool.
                if client.batch_execute("ROLLBACK").await.is_err() {
                    drop(deadpool_postgres::Object::take(client));
                }
                Err(e)
            }
        }
    }

    /// Opens the transaction, loads what the batch names, plans it in memory, writes the
    /// plan and commits.
    async fn batch_body<C: GenericClient + Sync>(
        &self,
        c: &C,
        jobs: &[IngestJob],
        now: DateTime<Utc>,
    ) -> Result<Answered, StoreError> {
        let all: Vec<&InboundEvent> = jobs.iter().flat_map(|j| &j.events).collect();
        // One rule set for the whole batch.
        let rules = self.rules.current();
        let mut new_id = || Uuid::now_v7().to_string();
        let mut planner = Planner::new(&rules.engine, rules.version, &self.default_segment, &mut new_id);
        planner.set_pressure(self.pressure.clone());
        planner.set_sync(self.brevo_sync.clone());
        plan_io::load_for(c, &mut planner, &all).await?;
        super::pressure::load(c, &mut planner, now).await?;
        for e in &all {
            planner.ingest(e, now)?;
        }
        let plan = planner.finish();
        let ids = plan_io::write_plan_and_commit(c, &plan, &all).await?;
        log_plan_warnings(&plan, &ids);
        let earliest = earliest_new_job(&plan);
        let mut answers = plan.answers.into_iter();
        Ok((jobs.iter().map(|j| answers.by_ref().take(j.events.len()).collect()).collect(), earliest))
    }
}

/// Counters of committed batches not written yet, added up. Written every
/// `COUNTS_EVERY` at most, after the answers; this instance's dashboard reads add them
/// (`merge_into`), so that what was answered is counted at once.
#[derive(Default)]
pub(crate) struct PendingCounts {
    counts: BTreeMap<(i64, CounterKind, String), i64>,
    /// When the oldest of them was added.
    since: Option<Instant>,
}

/// How long counters wait at most. Written per batch, they were a transaction and a round
/// trip of their own behind every batch (measured: 0.89× the req/s); written before the
/// answers whenever the queue was empty, they still followed half the batches under the
/// benchmark's load (1,801 counter writes for 3,756 batches in 12 s).
const COUNTS_EVERY: Duration = Duration::from_millis(250);

impl PendingCounts {
    fn add(&mut self, counts: Vec<HourlyCount>) {
        for c in counts {
            *self.counts.entry((c.hour, c.kind, c.name)).or_default() += c.count;
        }
        if !self.counts.is_empty() {
            self.since.get_or_insert_with(Instant::now);
        }
    }

    fn due(&self) -> bool {
        self.since.is_some_and(|s| s.elapsed() >= COUNTS_EVERY)
    }

    /// When the pending counters are due, if any are pending.
    fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + COUNTS_EVERY)
    }

    /// Adds the pending counters of hours from `since_hour` on to rows read from the
    /// table (in its order: hour, kind, name).
    pub(crate) fn merge_into(&self, rows: Vec<HourlyCount>, since_hour: i64) -> Vec<HourlyCount> {
        if self.counts.is_empty() {
            return rows;
        }
        let mut all: BTreeMap<(i64, &'static str, String), (CounterKind, i64)> = BTreeMap::new();
        let pending = self.counts.iter().filter(|((hour, _, _), _)| *hour >= since_hour);
        for (hour, kind, name, count) in rows
            .into_iter()
            .map(|c| (c.hour, c.kind, c.name, c.count))
            .chain(pending.map(|((hour, kind, name), count)| (*hour, *kind, name.clone(), *count)))
        {
            all.entry((hour, kind.as_str(), name)).or_insert((kind, 0)).1 += count;
        }
        all.into_iter().map(|((hour, _, name), (kind, count))| HourlyCount { hour, kind, name, count }).collect()
    }

    fn take(&mut self) -> Vec<HourlyCount> {
        self.since = None;
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(|((hour, kind, name), count)| HourlyCount { hour, kind, name, count })
            .collect()
    }
}

/// Adds committed batches' counters to the dashboard's hourly counts. A transaction of
/// its own, after the batches', without waiting for the disk: the counter rows are hot
/// (every batch of the hour touches them), and holding their locks through a batch's
/// commit would queue every instance's commits behind each other. Counters are
/// statistics; a crash before they are written loses a quarter of a second of counts at
/// most, no event.
pub(super) async fn add_counts(
    client: &deadpool_postgres::Client,
    counts: &[dashboard::HourlyCount],
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO hourly_counts (hour, kind, name, count)
             SELECT h, k, n, c FROM UNNEST($1::INT8[], $2::TEXT[], $3::TEXT[], $4::INT8[]) WITH ORDINALITY AS u(h, k, n, c, ord)
             ORDER BY ord
             ON CONFLICT (hour, kind, name) DO UPDATE SET count = hourly_counts.count + excluded.count",
        )
        .await?;
    let hours: Vec<i64> = counts.iter().map(|c| c.hour).collect();
    let kinds: Vec<&str> = counts.iter().map(|c| c.kind.as_str()).collect();
    let names: Vec<&str> = counts.iter().map(|c| c.name.as_str()).collect();
    let values: Vec<i64> = counts.iter().map(|c| c.count).collect();
    // One round trip (pipelined); a failed INSERT turns the COMMIT into a rollback.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&hours, &kinds, &names, &values];
    tokio::try_join!(
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off"),
        client.execute(&stmt, &params),
        client.batch_execute("COMMIT"),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(hour: i64, name: &str, n: i64) -> HourlyCount {
        HourlyCount { hour, kind: CounterKind::Trigger, name: name.into(), count: n }
    }

    #[test]
    fn counters_of_several_batches_add_up_by_hour_and_name() {
        let mut pending = PendingCounts::default();
        pending.add(vec![]);
        assert!(pending.since.is_none(), "nothing to write, nothing waiting");
        pending.add(vec![count(0, "open", 2), count(0, "purchase", 1)]);
        pending.add(vec![count(0, "open", 3), count(3_600_000, "open", 1)]);
        assert!(!pending.due(), "just added");
        pending.since = Instant::now().checked_sub(COUNTS_EVERY);
        assert!(pending.due());
        assert_eq!(
            pending.take(),
            [count(0, "open", 5), count(0, "purchase", 1), count(3_600_000, "open", 1)],
            "one row per hour, kind and name"
        );
        assert!(pending.take().is_empty() && !pending.due(), "taken once");
    }

    #[test]
    fn a_dashboard_read_adds_the_pending_counters_from_its_first_hour_on() {
        let mut pending = PendingCounts::default();
        let stored = vec![count(3_600_000, "open", 4), count(3_600_000, "purchase", 1)];
        assert_eq!(pending.merge_into(stored.clone(), 0), stored, "nothing pending");
        pending.add(vec![count(0, "open", 9), count(3_600_000, "open", 2), count(3_600_000, "click", 1)]);
        assert_eq!(
            pending.merge_into(stored, 3_600_000),
            [count(3_600_000, "click", 1), count(3_600_000, "open", 6), count(3_600_000, "purchase", 1)],
            "added to the stored row of the same hour and name, in the table's order; earlier hours left out"
        );
    }
}
