//! The dispatcher: runs scheduled actions when due, through their executor, at least
//! once (leases), with retries and backoff, never to a contact who opted out.
//!
//! Loop: claim as many due jobs as there are free slots; run each in its own task; when
//! nothing is due, sleep until the next due time (capped by `poll_interval`) or until
//! the store says new jobs arrived.

pub mod brevo_sync;
pub mod executors;
pub mod payload;
pub mod probe;
pub mod scheduler;
pub mod signing;
pub mod ssrf;
pub mod templates;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, Semaphore};

use crate::config::{DispatchSettings, ExecutorKind};
use crate::store::jobs::{Attempt, ClaimRequest, ClaimedJob, Finish, JobFinish};
use crate::store::{Clock, Store};
use executors::{ExecOutcome, Executors};

pub struct Dispatcher<S: Store + ?Sized> {
    store: Arc<S>,
    settings: Arc<DispatchSettings>,
    clock: Clock,
    executors: Arc<Executors>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// The delay before retry number `attempt` (1-based): the schedule's entry with ±jitter,
/// and never sooner than the receiver asked (`Retry-After`, Brevo's rate-limit reset).
pub fn backoff(settings: &DispatchSettings, attempt: u32, asked: Option<Duration>) -> Option<Duration> {
    let base = *settings.retry_schedule.get(attempt.saturating_sub(1) as usize)?;
    let spread = settings.jitter * (2.0 * fastrand::f64() - 1.0);
    let jittered = base.mul_f64((1.0 + spread).max(0.0));
    Some(asked.map_or(jittered, |a| a.max(jittered)))
}

const NO_EMAIL: &str = "the contact has no email address";
const NO_PHONE: &str = "the contact has no phone number";

/// Decides a job's next state from an attempt's outcome.
pub fn next_state(
    settings: &DispatchSettings,
    job: &ClaimedJob,
    outcome: &ExecOutcome,
    now: DateTime<Utc>,
) -> (Finish, Option<String>) {
    match outcome {
        ExecOutcome::Success { .. } => (Finish::Done, None),
        ExecOutcome::Permanent { error, .. } => (Finish::Dead, Some(error.clone())),
        ExecOutcome::Retry { error, retry_after, .. } => match backoff(settings, job.attempts, *retry_after) {
            Some(delay) => (
                Finish::Retry { at: now + chrono::Duration::milliseconds(delay.as_millis() as i64) },
                Some(format!("attempt {}: {error}", job.attempts)),
            ),
            None => (Finish::Dead, Some(format!("gave up after {} attempts: {error}", job.attempts))),
        },
    }
}

/// How long the dispatcher waits, once woken by newly stored due jobs, before claiming.
/// Under load every ingest batch stores a few due jobs and woke the dispatcher for them
/// alone: 1.6 jobs per claim, and per claim a transaction and a look at the next due
/// time (measured on PostgreSQL: 3,619 claims in a 12 s run, a quarter of its
/// transactions). A due message leaves this much later at most.
const GATHER: Duration = Duration::from_millis(10);

impl<S: Store + ?Sized> Dispatcher<S> {
    pub fn new(store: Arc<S>, settings: Arc<DispatchSettings>, clock: Clock) -> anyhow::Result<Dispatcher<S>> {
        let executors = Arc::new(Executors::new(settings.clone())?);
        Ok(Dispatcher { store, settings, clock, executors, metrics: None })
    }

    /// Records job lateness in the server's metrics.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Dispatcher<S> {
        self.metrics = Some(metrics);
        self
    }

    /// Runs until `shutdown` resolves, then lets running jobs finish (up to the lease).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency));
        let slot_freed = Arc::new(Notify::new());
        let jobs_ready = self.store.jobs_ready();
        let types = self.settings.dispatched_types();
        tokio::pin!(shutdown);
        tracing::info!(concurrency = self.settings.concurrency, "dispatcher started");
        loop {
            jobs_ready.awake();
            let free = slots.available_permits();
            let mut claimed_all = false;
            if free > 0 {
                // Always: a rule's daily budget binds without `[pressure]`.
                let pressure = Some(self.settings.pressure.clone());
                let request =
                    ClaimRequest { limit: free, lease: self.settings.lease, action_types: types.clone(), pressure };
                match self.store.claim_jobs(request).await {
                    Ok(jobs) => {
                        claimed_all = jobs.len() == free;
                        for job in jobs {
                            let Ok(permit) = slots.clone().try_acquire_owned() else { break };
                            let (this, freed) = (self.clone_parts(), slot_freed.clone());
                            tokio::spawn(async move {
                                this.execute(job).await;
                                drop(permit);
                                freed.notify_one();
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim jobs; retrying shortly");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            _ = &mut shutdown => break,
                        }
                    }
                }
            }
            if claimed_all {
                continue; // there may be more due right now
            }
            let wait = if slots.available_permits() == 0 {
                self.settings.poll_interval
            } else {
                match self.store.next_due(types.clone()).await {
                    Ok(Some(at)) => {
                        let until = (at - (self.clock)()).to_std().unwrap_or(Duration::ZERO);
                        until.min(self.settings.poll_interval)
                    }
                    _ => self.settings.poll_interval,
                }
            };
            if wait.is_zero() && free == 0 {
                // Due work but no slot: wait for one to free up.
                tokio::select! {
                    _ = slot_freed.notified() => {}
                    _ = &mut shutdown => break,
                }
                continue;
            }
            let wait = wait.max(Duration::from_millis(5));
            // Jobs stored from now on and due after this wake-up do not wake it earlier.
            jobs_ready.sleeping_until((self.clock)() + chrono::Duration::from_std(wait).unwrap_or_default());
            // A freed slot matters only when none was free: due work is known to the store,
            // and whatever a finished job makes due wakes `jobs_ready` (a retry, what an
            // internal job changed). Waking on every finish made a claim per job or two.
            let slots_full = slots.available_permits() == 0;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = jobs_ready.notified() => {
                    // New jobs are due: let the next few ingest batches store theirs too,
                    // so that one claim takes them together.
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = &mut shutdown => break,
                    }
                }
                _ = slot_freed.notified(), if slots_full => {}
                _ = &mut shutdown => break,
            }
        }
        // Let in-flight jobs finish so that their results are recorded; a job still
        // running past this is retried by whoever claims it after its lease.
        let all = self.settings.concurrency as u32;
        let _ = tokio::time::timeout(self.settings.lease, slots.acquire_many(all)).await;
        tracing::info!("dispatcher stopped");
    }

    fn clone_parts(&self) -> Dispatcher<S> {
        Dispatcher {
            store: self.store.clone(),
            settings: self.settings.clone(),
            clock: self.clock.clone(),
            executors: self.executors.clone(),
            metrics: self.metrics.clone(),
        }
    }

    #[tracing::instrument(name = "job", skip_all, fields(id = %job.id, action = %job.action_type, attempt = job.attempts))]
    async fn execute(&self, job: ClaimedJob) {
        let started = Instant::now();
        let started_at = (self.clock)();
        if let Some(m) = &self.metrics {
            m.job_lateness_seconds.observe((started_at - job.due_at).num_milliseconds().max(0) as f64 / 1000.0);
        }
        let executor = self.settings.route(job.action_type);

        // The contact as it is now, not as it was when the job was scheduled: an opt-out
        // since, or no address to send to (a contact known by client code only whose email
        // never arrived). Neither is a failure to retry or to look into: suppressed.
        use relance_core::ActionType;
        // (reason kept on the job, what the attempt records)
        let suppression = match job.action_type {
            ActionType::SendEmail => match job.contact.email_suppression() {
                Some(reason) => Some((reason.as_str(), format!("contact is {}", reason.as_str()))),
                None => job.contact.email.is_none().then_some(NO_EMAIL).map(|r| (r, r.to_owned())),
            },
            ActionType::SendSms => match job.contact.sms_suppression() {
                Some(reason) => Some((reason.as_str(), format!("contact is {}", reason.as_str()))),
                None => job.contact.phone.is_none().then_some(NO_PHONE).map(|r| (r, r.to_owned())),
            },
            // A call or a task for someone who opted out since: opt-out means pause.
            other => job.contact.suppression_for(other).map(|r| (r.as_str(), format!("contact is {}", r.as_str()))),
        };
        let attempt = |status: &str, http_status: Option<u16>, response: Option<String>| Attempt {
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            status: status.to_owned(),
            http_status,
            response,
        };
        let finish = if let Some((reason, detail)) = suppression {
            JobFinish {
                finish: Finish::Suppressed,
                error: Some(format!("suppressed: {reason}")),
                attempt: attempt("suppressed", None, Some(detail)),
                outbox: None,
            }
        } else {
            match executor {
                ExecutorKind::Internal => {
                    if let Err(e) = self.store.run_internal_job(job.id.clone()).await {
                        tracing::warn!(error = %e, "internal job failed; it will be retried after its lease");
                    }
                    // What it changed may have stored due jobs (a score crossing a
                    // threshold): look again.
                    self.store.jobs_ready().stored(None);
                    return;
                }
                ExecutorKind::Outbox => match self.executors.outbox_payload(&job) {
                    Ok(payload) => JobFinish {
                        finish: Finish::Done,
                        error: None,
                        attempt: attempt("done", None, Some("recorded in the outbox".into())),
                        outbox: Some((job.action_type.as_str().to_owned(), payload)),
                    },
                    Err(reason) => JobFinish {
                        finish: Finish::Dead,
                        error: Some(reason.clone()),
                        attempt: attempt("dead", None, Some(reason)),
                        outbox: None,
                    },
                },
                ExecutorKind::External => return, // never claimed here
                kind => {
                    let outcome = match kind {
                        ExecutorKind::Brevo => self.executors.brevo(&job).await,
                        ExecutorKind::PowerAutomate => self.executors.power_automate(&job).await,
                        _ => self.executors.webhook(&job, (self.clock)().timestamp()).await,
                    };
                    let now = (self.clock)();
                    let (finish, error) = next_state(&self.settings, &job, &outcome, now);
                    let (http_status, response) = match &outcome {
                        ExecOutcome::Success { http_status, response } => (*http_status, Some(response.clone())),
                        ExecOutcome::Retry { http_status, error, .. }
                        | ExecOutcome::Permanent { http_status, error } => (*http_status, Some(error.clone())),
                    };
                    JobFinish { attempt: attempt(finish.label(), http_status, response), finish, error, outbox: None }
                }
            }
        };
        match &finish.finish {
            Finish::Dead => tracing::warn!(error = ?finish.error, "job is dead"),
            Finish::Retry { at } => tracing::info!(error = ?finish.error, retry_at = %at, "job will be retried"),
            _ => tracing::debug!(state = finish.finish.label(), "job finished"),
        }
        let retry_at = match finish.finish {
            Finish::Retry { at } => Some(at),
            _ => None,
        };
        match self.store.finish_job(job.id.clone(), finish).await {
            // Due again, perhaps before the dispatcher's planned wake-up.
            Ok(_) => {
                if retry_at.is_some() {
                    self.store.jobs_ready().stored(retry_at);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not record the job's result; it will run again after its lease")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_schedule_with_jitter() {
        let s = DispatchSettings {
            retry_schedule: vec![Duration::from_secs(10), Duration::from_secs(60)],
            jitter: 0.2,
            ..DispatchSettings::default()
        };
        for _ in 0..100 {
            let d = backoff(&s, 1, None).unwrap();
            assert!(d >= Duration::from_secs(8) && d <= Duration::from_secs(12), "{d:?}");
        }
        assert!(backoff(&s, 2, None).unwrap() >= Duration::from_secs(48));
        assert_eq!(backoff(&s, 3, None), None, "past the schedule: give up");
        assert!(
            backoff(&s, 1, Some(Duration::from_secs(300))).unwrap() >= Duration::from_secs(300),
            "Retry-After wins"
        );
    }
}
