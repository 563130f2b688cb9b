//! PgStore: dashboard reads, rule-set versions, health.

use async_trait::async_trait;

use super::*;
use crate::store::audit::Audit;
use crate::store::{DashboardReads, Lifecycle, RuleSetStore};

#[async_trait]
impl DashboardReads for PgStore {
    async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT hour, kind, name, count FROM hourly_counts WHERE hour >= $1 ORDER BY hour, kind, name",
            )
            .await?;
        let since_hour = to_millis(since).div_euclid(HOUR_MS) * HOUR_MS;
        // Held through the read: a counter write in progress finishes first.
        let pending = self.counts.lock().await;
        let rows = client.query(&stmt, &[&since_hour]).await?;
        let stored = rows
            .iter()
            .filter_map(|r| {
                let kind: String = r.get(1);
                Some(HourlyCount { hour: r.get(0), kind: CounterKind::parse(&kind)?, name: r.get(2), count: r.get(3) })
            })
            .collect();
        Ok(pending.merge_into(stored, since_hour))
    }

    async fn contact_distribution(&self) -> Result<ContactDistribution, StoreError> {
        let client = self.client().await?;
        let mut d = ContactDistribution::default();
        let stmt = client.prepare_cached("SELECT score, count(*) FROM contacts WHERE email IS DISTINCT FROM 'test@relance.invalid' GROUP BY score").await?;
        for r in client.query(&stmt, &[]).await? {
            let (score, n): (i32, i64) = (r.get(0), r.get(1));
            d.add_score(i64::from(score), n);
            d.total += n;
        }
        let stmt = client
            .prepare_cached(
                "SELECT segment, count(*) AS n FROM contacts WHERE email IS DISTINCT FROM 'test@relance.invalid' GROUP BY segment ORDER BY n DESC, segment LIMIT 50",
            )
            .await?;
        d.segments = client.query(&stmt, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(d)
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, COALESCE(legacy_id, id::TEXT), dedupe_key, event, occurred_at, received_at, name, source, trigger,
                        email, client_code, sender_event_id, raw
                 FROM events ORDER BY id DESC LIMIT $1",
            )
            .await?;
        Ok(client.query(&stmt, &[&(limit as i64)]).await?.iter().map(event_row).collect())
    }

    async fn has_real_events(&self) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT EXISTS (SELECT 1 FROM events WHERE source <> 'test')", &[]).await?;
        Ok(row.get(0))
    }

    async fn rejected_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::store::rejected::RejectedDelivery>, StoreError> {
        let client = self.client().await?;
        rejected::newest(&client, limit).await
    }
}

#[async_trait]
impl RuleSetStore for PgStore {
    async fn active_rule_set(&self) -> Result<Option<RuleSetRow>, StoreError> {
        rule_sets::active(&self.client().await?).await
    }

    async fn save_rule_set(&self, new: NewRuleSet, audit: Audit) -> Result<RuleSetRow, StoreError> {
        rule_sets::save(&mut self.client().await?, &new, (self.clock)(), &audit).await
    }

    async fn activate_rule_set(&self, version: i64, via: String, audit: Audit) -> Result<RuleSetRow, StoreError> {
        rule_sets::activate(&mut self.client().await?, version, &via, (self.clock)(), &audit).await
    }

    async fn rule_set_versions(&self) -> Result<Vec<RuleSetRow>, StoreError> {
        rule_sets::versions(&self.client().await?).await
    }

    async fn rules_file_hash(&self, path: String) -> Result<Option<String>, StoreError> {
        rule_sets::file_hash(&self.client().await?, &path).await
    }

    async fn record_rules_file(&self, path: String, hash: String, version: i64) -> Result<(), StoreError> {
        rule_sets::record_file(&self.client().await?, &path, &hash, version, (self.clock)()).await
    }
}

#[async_trait]
impl Lifecycle for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn database_facts(&self) -> Result<(i64, i64), StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT pg_database_size(current_database()),
                        (SELECT COALESCE(max(version), 0)::bigint FROM relance_migrations)",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    async fn shutdown(&self) {
        // Close the queue, let the batch task finish what it holds, then the pool.
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        let tasks = self.batchers.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
        self.pool.close();
    }
}
