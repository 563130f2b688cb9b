//! How the store wakes the dispatcher after it stored jobs, without waking it for jobs
//! due after the time it already means to wake up at.
//!
//! Measured before this existed: every ingest batch woke the dispatcher, which then ran a
//! claim transaction and a `next_due` query even when the batch's only jobs were due in
//! minutes (the thank-you email five minutes after a purchase) — on PostgreSQL one
//! durable commit and a 3 ms query per batch, on SQLite a write in the single writer and
//! a read on the blocking pool per batch.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

/// `sleeping_until` while the dispatcher is busy: any stored job wakes it.
const AWAKE: i64 = i64::MAX;

pub struct JobsReady {
    notify: Notify,
    /// When the dispatcher will wake by itself (epoch milliseconds), or `AWAKE`.
    sleeping_until: AtomicI64,
}

impl Default for JobsReady {
    fn default() -> Self {
        JobsReady { notify: Notify::new(), sleeping_until: AtomicI64::new(AWAKE) }
    }
}

impl JobsReady {
    /// After a commit that stored jobs, the earliest of them due at `earliest_due`
    /// (`None`: not known, wake anyway). A wake-up asked while the dispatcher is awake is
    /// kept (`Notify` holds one permit), so none is lost between its claim and its sleep.
    pub fn stored(&self, earliest_due: Option<DateTime<Utc>>) {
        let wakes_anyway =
            earliest_due.is_some_and(|due| due.timestamp_millis() >= self.sleeping_until.load(Ordering::SeqCst));
        if !wakes_anyway {
            self.notify.notify_one();
        }
    }

    /// The dispatcher, about to sleep until `at` unless woken.
    pub fn sleeping_until(&self, at: DateTime<Utc>) {
        self.sleeping_until.store(at.timestamp_millis(), Ordering::SeqCst);
    }

    /// The dispatcher, awake and about to claim: every job stored from now on counts.
    pub fn awake(&self) {
        self.sleeping_until.store(AWAKE, Ordering::SeqCst);
    }

    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    async fn woken(ready: &JobsReady) -> bool {
        tokio::time::timeout(Duration::from_millis(20), ready.notified()).await.is_ok()
    }

    #[tokio::test]
    async fn a_job_due_after_the_planned_wake_up_does_not_wake_the_dispatcher() {
        let ready = JobsReady::default();
        ready.sleeping_until(at(100));
        ready.stored(Some(at(400)));
        assert!(!woken(&ready).await);
        ready.stored(Some(at(100)));
        assert!(!woken(&ready).await, "due exactly when it wakes anyway");
    }

    #[tokio::test]
    async fn a_job_due_earlier_or_unknown_wakes_it() {
        let ready = JobsReady::default();
        ready.sleeping_until(at(100));
        ready.stored(Some(at(99)));
        assert!(woken(&ready).await);
        ready.stored(None);
        assert!(woken(&ready).await);
    }

    #[tokio::test]
    async fn jobs_stored_while_it_is_awake_are_not_lost() {
        let ready = JobsReady::default();
        ready.awake();
        ready.stored(Some(at(1_000_000)));
        // It goes to sleep after the job was stored: the permit is waiting for it.
        ready.sleeping_until(at(100));
        assert!(woken(&ready).await);
    }
}
