//! SqliteStore: dashboard reads, rule-set versions, health.

use async_trait::async_trait;

use super::*;
use crate::store::audit::Audit;
use crate::store::{DashboardReads, Lifecycle, RuleSetStore};

#[async_trait]
impl DashboardReads for SqliteStore {
    async fn has_real_events(&self) -> Result<bool, StoreError> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT EXISTS (SELECT 1 FROM events WHERE source <> 'test')", [], |r| r.get(0))?)
        })
        .await
    }

    async fn rejected_deliveries(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::store::rejected::RejectedDelivery>, StoreError> {
        self.read(move |conn| rejected::newest(conn, limit)).await
    }

    async fn hourly_counts(&self, since: DateTime<Utc>) -> Result<Vec<HourlyCount>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT hour, kind, name, count FROM hourly_counts WHERE hour >= ?1 ORDER BY hour, kind, name",
            )?;
            let rows = stmt
                .query_map([to_millis(since).div_euclid(HOUR_MS) * HOUR_MS], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows
                .into_iter()
                .filter_map(|(hour, kind, name, count)| {
                    Some(HourlyCount { hour, kind: CounterKind::parse(&kind)?, name, count })
                })
                .collect())
        })
        .await
    }

    async fn contact_distribution(&self) -> Result<ContactDistribution, StoreError> {
        self.read(|conn| {
            let mut d = ContactDistribution::default();
            let mut scores = conn.prepare_cached("SELECT score, count(*) FROM contacts WHERE email IS NOT 'test@relance.invalid' GROUP BY score")?;
            for row in scores.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
                let (score, n) = row?;
                d.add_score(score, n);
                d.total += n;
            }
            let mut segments = conn.prepare_cached(
                "SELECT segment, count(*) AS n FROM contacts WHERE email IS NOT 'test@relance.invalid' GROUP BY segment ORDER BY n DESC, segment LIMIT 50",
            )?;
            d.segments =
                segments.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(d)
        })
        .await
    }

    async fn recent_events(&self, limit: usize) -> Result<Vec<EventRow>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, COALESCE(legacy_id, CAST(id AS TEXT)), dedupe_key, event, occurred_at, received_at, name, source, trigger,
                        email, client_code, sender_event_id, raw
                 FROM events ORDER BY id DESC LIMIT ?1",
            )?;
            Ok(stmt.query_map([limit as i64], event_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

#[async_trait]
impl RuleSetStore for SqliteStore {
    async fn active_rule_set(&self) -> Result<Option<RuleSetRow>, StoreError> {
        self.read(rule_sets::active).await
    }

    async fn save_rule_set(&self, new: NewRuleSet, audit: Audit) -> Result<RuleSetRow, StoreError> {
        self.write(move |conn, _, now| {
            let row = rule_sets::save(conn, &new, now)?;
            access::write_audit(conn, &audit, Some(format!("rule_set:v{}", row.version)), now)?;
            Ok(row)
        })
        .await
    }

    async fn activate_rule_set(&self, version: i64, via: String, audit: Audit) -> Result<RuleSetRow, StoreError> {
        self.write(move |conn, _, now| {
            let row = rule_sets::activate(conn, version, &via)?;
            access::write_audit(conn, &audit, Some(format!("rule_set:v{version}")), now)?;
            Ok(row)
        })
        .await
    }

    async fn rule_set_versions(&self) -> Result<Vec<RuleSetRow>, StoreError> {
        self.read(rule_sets::versions).await
    }

    async fn rules_file_hash(&self, path: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn| rule_sets::file_hash(conn, &path)).await
    }

    async fn record_rules_file(&self, path: String, hash: String, version: i64) -> Result<(), StoreError> {
        self.write(move |conn, _, now| rule_sets::record_file(conn, &path, &hash, version, now)).await
    }
}

#[async_trait]
impl Lifecycle for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    async fn database_facts(&self) -> Result<(i64, i64), StoreError> {
        self.read(|conn| {
            let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
            let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            Ok((pages * page_size, version))
        })
        .await
    }

    async fn shutdown(&self) {
        // Dropping the sender lets the writer finish what is queued, commit, and stop.
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}
