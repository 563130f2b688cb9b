//! PgStore: jobs and occurrences.

use async_trait::async_trait;

use super::*;
use crate::store::JobStore;
use crate::store::audit::Audit;

#[async_trait]
impl JobStore for PgStore {
    async fn claim_jobs(&self, req: ClaimRequest) -> Result<Vec<ClaimedJob>, StoreError> {
        jobs::claim(self, &req).await
    }

    async fn finish_job(&self, id: String, finish: JobFinish) -> Result<bool, StoreError> {
        self.finish_grouped(id, finish).await
    }

    async fn run_internal_job(&self, id: String) -> Result<bool, StoreError> {
        jobs::run_internal(self, &id).await
    }

    async fn next_due(&self, action_types: Vec<ActionType>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let client = self.client().await?;
        jobs::next_due(&client, &action_types).await
    }

    async fn jobs(&self, filter: JobFilter, contact: Option<ContactKey>) -> Result<Vec<JobRow>, StoreError> {
        let client = self.client().await?;
        let mut filter = filter;
        if let Some(key) = &contact {
            match find_contact_id(&client, key, false).await? {
                Some(id) => filter.contact_id = Some(id),
                None => return Ok(Vec::new()),
            }
        }
        jobs::list(&client, &filter).await
    }

    async fn last_calls(
        &self,
        action_types: Vec<relance_core::ActionType>,
    ) -> Result<crate::store::jobs::LastCalls, StoreError> {
        use crate::store::jobs::{LAST_FAILED_SQL, LAST_OK_SQL, LastCalls};
        let types: Vec<String> = action_types.iter().map(|a| a.as_str().to_owned()).collect();
        let client = self.client().await?;
        let mut out = LastCalls::default();
        for (filter, slot) in [(LAST_OK_SQL, &mut out.ok), (LAST_FAILED_SQL, &mut out.failed)] {
            let sql = format!(
                "SELECT a.started_at, a.duration_ms, a.status, a.http_status, a.response
                 FROM job_attempts a JOIN jobs j ON j.id = a.job_id
                 WHERE j.action_type = ANY($1) AND {filter}
                 ORDER BY a.id DESC LIMIT 1"
            );
            *slot = client.query_opt(&sql, &[&types]).await?.as_ref().map(jobs::attempt_row);
        }
        Ok(out)
    }

    async fn job(&self, id: String) -> Result<Option<(JobRow, Vec<Attempt>)>, StoreError> {
        let client = self.client().await?;
        jobs::get(&client, &id).await
    }

    async fn cancel_job(&self, id: String, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        jobs::cancel(&tx, &id, now).await?;
        access::write_audit(&tx, &audit, Some(format!("job:{id}")), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_job(&self, id: String, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        jobs::retry(&tx, &id, now).await?;
        access::write_audit(&tx, &audit, Some(format!("job:{id}")), now).await?;
        tx.commit().await?;
        self.jobs_ready.stored(None);
        Ok(())
    }

    async fn finish_external(&self, id: String, finish: JobFinish, audit: Audit) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        jobs::check_running(&tx, &id).await?;
        let moved = jobs::finish(&tx, &id, &finish, now).await?;
        access::write_audit(&tx, &audit, Some(format!("job:{id}")), now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    async fn job_stats(&self) -> Result<Vec<JobCount>, StoreError> {
        let client = self.client().await?;
        jobs::stats(&client).await
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let client = self.client().await?;
        jobs::outbox(&client, limit).await
    }

    async fn claim_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        stale_after: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let now = to_millis((self.clock)());
        let occ = to_millis(occurrence);
        let stmt = client
            .prepare_cached(
                "INSERT INTO schedule_runs (rule_id, occurrence_at, started_at) VALUES ($1, $2, $3)
                 ON CONFLICT (rule_id, occurrence_at) DO NOTHING",
            )
            .await?;
        if client.execute(&stmt, &[&rule_id, &occ, &now]).await? == 1 {
            return Ok(true);
        }
        let stale = now - stale_after.as_millis() as i64;
        let stmt = client
            .prepare_cached(
                "UPDATE schedule_runs SET started_at = $3
                 WHERE rule_id = $1 AND occurrence_at = $2 AND finished_at IS NULL AND started_at < $4",
            )
            .await?;
        Ok(client.execute(&stmt, &[&rule_id, &occ, &now, &stale]).await? == 1)
    }

    async fn finish_occurrence(
        &self,
        rule_id: String,
        occurrence: DateTime<Utc>,
        contacts: u64,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE schedule_runs SET finished_at = $3, contacts = $4 WHERE rule_id = $1 AND occurrence_at = $2",
            )
            .await?;
        client
            .execute(&stmt, &[&rule_id, &to_millis(occurrence), &to_millis((self.clock)()), &(contacts as i64)])
            .await?;
        Ok(())
    }

    fn jobs_ready(&self) -> Arc<crate::store::jobs_ready::JobsReady> {
        self.jobs_ready.clone()
    }
}

#[async_trait]
impl crate::store::RunStore for PgStore {
    async fn runs(
        &self,
        filter: crate::store::runs::RunFilter,
        contact: Option<ContactKey>,
    ) -> Result<Vec<crate::store::runs::RunView>, StoreError> {
        let client = self.client().await?;
        let mut filter = filter;
        if let Some(key) = &contact {
            match find_contact_id(&client, key, false).await? {
                Some(id) => filter.contact_id = Some(id),
                None => return Ok(Vec::new()),
            }
        }
        runs::list(&client, &filter).await
    }

    async fn run_counts(&self, since: DateTime<Utc>) -> Result<Vec<crate::store::runs::RunCounts>, StoreError> {
        let client = self.client().await?;
        runs::counts(&client, since).await
    }

    async fn cancel_runs_of(&self, rule_ids: Vec<String>, reason: String, audit: Audit) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let n = runs::cancel_runs_of(&tx, &rule_ids, &reason, now).await?;
        access::write_audit(&tx, &audit, None, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn pause_rule(&self, rule_id: String, audit: Audit) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let n = pause::pause(&tx, &rule_id, now).await?;
        access::write_audit(&tx, &audit, Some(format!("rule:{rule_id}")), now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn resume_rule(&self, rule_id: String, audit: Audit) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let n = pause::resume(&tx, &rule_id, now).await?;
        access::write_audit(&tx, &audit, Some(format!("rule:{rule_id}")), now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn paused_rules(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        pause::paused(&self.client().await?).await
    }
}
