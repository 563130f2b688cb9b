//! SqliteStore: jobs and occurrences.

use async_trait::async_trait;

use super::*;
use crate::store::JobStore;
use crate::store::audit::Audit;

#[async_trait]
impl JobStore for SqliteStore {
    async fn claim_jobs(&self, req: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        self.write(move |conn, _, now| jobs::claim(conn, &req, now)).await
    }

    async fn finish_job(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        self.write(move |conn, _, now| jobs::finish(conn, &id, &finish, now)).await
    }

    async fn run_internal_job(&self, id: String) -> Result<bool, StoreError> {
        let started = std::time::Instant::now();
        self.write(move |conn, ctx, now| jobs::run_internal(conn, ctx, &id, started, now)).await
    }

    async fn next_due(&self, action_types: Vec<ActionType>) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.read(move |conn| jobs::next_due(conn, &action_types)).await
    }

    async fn jobs(&self, filter: JobFilter, contact: Option<ContactKey>) -> Result<Vec<JobRow>, StoreError> {
        self.read(move |conn| {
            let mut filter = filter;
            if let Some(key) = &contact {
                match find_contact_id(conn, key)? {
                    Some(id) => filter.contact_id = Some(id),
                    None => return Ok(Vec::new()),
                }
            }
            jobs::list(conn, &filter)
        })
        .await
    }

    async fn last_calls(
        &self,
        action_types: Vec<relance_core::ActionType>,
    ) -> Result<crate::store::jobs::LastCalls, StoreError> {
        let types: Vec<&'static str> = action_types.iter().map(|a| a.as_str()).collect();
        let types = serde_json::to_string(&types).unwrap_or_else(|_| "[]".into());
        self.read(move |conn| {
            let last = |filter: &str| -> Result<Option<Attempt>, StoreError> {
                let sql = format!(
                    "SELECT a.started_at, a.duration_ms, a.status, a.http_status, a.response
                     FROM job_attempts a JOIN jobs j ON j.id = a.job_id
                     WHERE j.action_type IN (SELECT value FROM json_each(?1)) AND {filter}
                     ORDER BY a.id DESC LIMIT 1"
                );
                Ok(conn.prepare_cached(&sql)?.query_row([&types], jobs::attempt_row).optional()?)
            };
            use crate::store::jobs::{LAST_FAILED_SQL, LAST_OK_SQL, LastCalls};
            Ok(LastCalls { ok: last(LAST_OK_SQL)?, failed: last(LAST_FAILED_SQL)? })
        })
        .await
    }

    async fn job(&self, id: String) -> Result<Option<(JobRow, Vec<Attempt>)>, StoreError> {
        self.read(move |conn| jobs::get(conn, &id)).await
    }

    async fn cancel_job(&self, id: String, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            jobs::cancel(conn, &id, now)?;
            access::write_audit(conn, &audit, Some(format!("job:{id}")), now)
        })
        .await
    }

    async fn retry_job(&self, id: String, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            jobs::retry(conn, &id, now)?;
            access::write_audit(conn, &audit, Some(format!("job:{id}")), now)
        })
        .await?;
        self.jobs_ready.stored(None);
        Ok(())
    }

    async fn finish_external(&self, id: String, finish: JobFinish, audit: Audit) -> Result<bool, StoreError> {
        self.write(move |conn, _, now| {
            jobs::check_running(conn, &id)?;
            let moved = jobs::finish(conn, &id, &finish, now)?;
            access::write_audit(conn, &audit, Some(format!("job:{id}")), now)?;
            Ok(moved)
        })
        .await
    }

    async fn job_stats(&self) -> Result<Vec<JobCount>, StoreError> {
        self.read(jobs::stats).await
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| jobs::outbox(conn, limit)).await
    }

    async fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.write(move |conn, _, now| {
            let occ = to_millis(occurrence);
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO schedule_runs (rule_id, occurrence_at, started_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (rule_id, occurrence_at) DO NOTHING",
                )?
                .execute(params![rule_id, occ, to_millis(now)])?;
            if inserted == 1 {
                return Ok(true);
            }
            // A run that started and never finished (its instance died) is taken over;
            // the per-contact dedupe keys make the second pass harmless.
            let stale = to_millis(now) - stale_after.as_millis() as i64;
            let taken = conn
                .prepare_cached(
                    "UPDATE schedule_runs SET started_at = ?3
                     WHERE rule_id = ?1 AND occurrence_at = ?2 AND finished_at IS NULL AND started_at < ?4",
                )?
                .execute(params![rule_id, occ, to_millis(now), stale])?;
            Ok(taken == 1)
        })
        .await
    }

    async fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            conn.prepare_cached(
                "UPDATE schedule_runs SET finished_at = ?3, contacts = ?4 WHERE rule_id = ?1 AND occurrence_at = ?2",
            )?
            .execute(params![rule_id, to_millis(occurrence), to_millis(now), contacts as i64])?;
            Ok(())
        })
        .await
    }

    fn jobs_ready(&self) -> Arc<crate::store::jobs_ready::JobsReady> {
        self.jobs_ready.clone()
    }
}

#[async_trait]
impl crate::store::RunStore for SqliteStore {
    async fn runs(
        &self,
        filter: crate::store::runs::RunFilter,
        contact: Option<ContactKey>,
    ) -> Result<Vec<crate::store::runs::RunView>, StoreError> {
        self.read(move |conn| {
            let mut filter = filter;
            if let Some(key) = &contact {
                match find_contact_id(conn, key)? {
                    Some(id) => filter.contact_id = Some(id),
                    None => return Ok(Vec::new()),
                }
            }
            runs::list(conn, &filter)
        })
        .await
    }

    async fn run_counts(&self, since: DateTime<Utc>) -> Result<Vec<crate::store::runs::RunCounts>, StoreError> {
        self.read(move |conn| runs::counts(conn, since)).await
    }

    async fn cancel_runs_of(&self, rule_ids: Vec<String>, reason: String, audit: Audit) -> Result<u64, StoreError> {
        self.write(move |conn, _, now| {
            let n = runs::cancel_runs_of(conn, &rule_ids, &reason, now)?;
            access::write_audit(conn, &audit, None, now)?;
            Ok(n)
        })
        .await
    }

    async fn pause_rule(&self, rule_id: String, audit: Audit) -> Result<u64, StoreError> {
        self.write(move |conn, _, now| {
            let n = pause::pause(conn, &rule_id, now)?;
            access::write_audit(conn, &audit, Some(format!("rule:{rule_id}")), now)?;
            Ok(n)
        })
        .await
    }

    async fn resume_rule(&self, rule_id: String, audit: Audit) -> Result<u64, StoreError> {
        let released = self
            .write(move |conn, _, now| {
                let n = pause::resume(conn, &rule_id, now)?;
                access::write_audit(conn, &audit, Some(format!("rule:{rule_id}")), now)?;
                Ok(n)
            })
            .await?;
        self.jobs_ready.stored(None);
        Ok(released)
    }

    async fn paused_rules(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        self.read(pause::paused).await
    }
}
