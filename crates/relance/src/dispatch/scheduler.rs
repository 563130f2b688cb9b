//! Time-based rules: at each occurrence of a rule's schedule, an event for every contact
//! matching its conditions, once. The occurrence is claimed in the database (one run per
//! occurrence, whichever instance gets there first) and each contact's event has a dedupe
//! key, so restarts and takeovers never fire twice.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use relance_core::inbound::Identity;
use relance_core::rules::Rule;
use relance_core::{Engine, Event, InboundEvent, Source, Trigger};
use serde_json::json;

use crate::store::{Clock, ContactFilter, Store, StoreError};

/// Occurrences missed by more than this (the server was down) are skipped, not replayed:
/// a "daily 09:00" message should not go out at 17:00.
pub const GRACE: chrono::Duration = chrono::Duration::hours(1);

/// The daily decay sweep's name among occurrences (rule ids starting with `__` are
/// refused, so no rule can share it).
pub const DECAY_SWEEP: &str = "__score_decay";

/// The sweep runs daily at this hour (UTC), when the estate's traffic is lowest.
const DECAY_SWEEP_HOUR_UTC: u32 = 2;

/// The latest sweep time at or before `now`.
pub fn decay_sweep_at(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.date_naive().and_hms_opt(DECAY_SWEEP_HOUR_UTC, 0, 0).unwrap_or_default().and_utc();
    if today <= now { today } else { today - chrono::Duration::days(1) }
}

/// A run that started this long ago without finishing is taken over.
const STALE_RUN: Duration = Duration::from_secs(600);

pub struct Scheduler<S: Store + ?Sized> {
    pub store: Arc<S>,
    pub rules: Arc<crate::live_rules::LiveRules>,
    pub clock: Clock,
    pub poll_interval: Duration,
}

impl<S: Store + ?Sized> Scheduler<S> {
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        // Occurrences this instance already settled, to spare the database a write per look.
        let mut settled = std::collections::HashMap::<String, DateTime<Utc>>::new();
        loop {
            let now = (self.clock)();
            // The rule set may change at run time; take the current one each round.
            let rules = self.rules.current();
            let engine = &rules.engine;
            let mut wake =
                now + chrono::Duration::from_std(self.poll_interval).unwrap_or(chrono::Duration::seconds(30));
            if engine.has_decay() {
                let occurrence = decay_sweep_at(now);
                if settled.get(DECAY_SWEEP) != Some(&occurrence) {
                    match self.store.claim_occurrence(DECAY_SWEEP.into(), occurrence, STALE_RUN).await {
                        Ok(true) => match self.sweep_decay(engine, occurrence).await {
                            Ok(n) => {
                                tracing::info!(%occurrence, contacts = n, "score decay sweep ran");
                                settled.insert(DECAY_SWEEP.into(), occurrence);
                            }
                            Err(e) => tracing::warn!(error = %e, "score decay sweep interrupted; it will be resumed"),
                        },
                        Ok(false) => {
                            settled.insert(DECAY_SWEEP.into(), occurrence);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot claim the score decay sweep"),
                    }
                }
                wake = wake.min(occurrence + chrono::Duration::days(1));
            }
            for rule in engine.scheduled_rules() {
                let Some(schedule) = &rule.schedule else { continue };
                if let Some(occurrence) = schedule.latest_at_or_before(now)
                    && now - occurrence <= GRACE
                    && settled.get(&*rule.rule_id) != Some(&occurrence)
                {
                    match self.store.claim_occurrence(rule.rule_id.to_string(), occurrence, STALE_RUN).await {
                        Ok(true) => match self.run_occurrence(engine, rule, occurrence).await {
                            Ok(n) => {
                                tracing::info!(rule = %rule.rule_id, %occurrence, contacts = n, "time-based rule ran");
                                settled.insert(rule.rule_id.to_string(), occurrence);
                            }
                            Err(e) => {
                                tracing::warn!(rule = %rule.rule_id, error = %e, "time-based run interrupted; it will be resumed")
                            }
                        },
                        Ok(false) => {
                            settled.insert(rule.rule_id.to_string(), occurrence);
                        }
                        Err(e) => tracing::warn!(rule = %rule.rule_id, error = %e, "cannot claim the occurrence"),
                    }
                }
                if let Some(next) = schedule.next_after(now) {
                    wake = wake.min(next);
                }
            }
            let sleep = (wake - (self.clock)()).to_std().unwrap_or(Duration::ZERO).min(self.poll_interval);
            tokio::select! {
                _ = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
                _ = &mut shutdown => return,
            }
        }
    }

    /// Materialises decayed scores, 100 contacts per transaction with a pause between,
    /// so that ingest is never held up for long; returns how many contacts changed.
    async fn sweep_decay(&self, engine: &Engine, occurrence: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut after = 0;
        let mut changed = 0u64;
        loop {
            let page = self
                .store
                .list_contacts(ContactFilter { after_id: after, limit: 500, ..ContactFilter::default() })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let now = (self.clock)();
            let due: Vec<i64> =
                page.iter().filter(|c| !engine.settle(&c.contact, now).changes.is_empty()).map(|c| c.id).collect();
            for chunk in due.chunks(100) {
                loop {
                    match self.store.settle_scores(chunk.to_vec()).await {
                        Ok(n) => {
                            changed += n;
                            break;
                        }
                        Err(StoreError::Overloaded) => tokio::time::sleep(Duration::from_millis(50)).await,
                        Err(e) => return Err(e),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.store.finish_occurrence(DECAY_SWEEP.into(), occurrence, changed).await?;
        Ok(changed)
    }

    /// Ingests one scheduler event per matching contact; returns how many.
    async fn run_occurrence(&self, engine: &Engine, rule: &Rule, occurrence: DateTime<Utc>) -> Result<u64, StoreError> {
        let rule_id = rule.rule_id.to_string();
        let mut event = Event::new(Source::Scheduler, Trigger::TimeBased, occurrence);
        event.name = format!("schedule:{rule_id}");
        event.scheduled_rule = Some(rule_id.clone());
        event.attributes.insert("occurrence_at".into(), json!(occurrence));
        let mut after = 0;
        let mut fired = 0u64;
        loop {
            let page = self
                .store
                .list_contacts(ContactFilter { after_id: after, limit: 500, ..ContactFilter::default() })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            let batch: Vec<InboundEvent> = page
                .iter()
                .filter(|c| engine.rule_matches(&rule_id, &c.contact, &event))
                .map(|c| InboundEvent {
                    identity: Identity { email: c.contact.email.clone(), client_code: c.contact.client_code.clone() },
                    event: event.clone(),
                    dedupe_key: Some(format!("time:{rule_id}:{}:{}", occurrence.timestamp_millis(), c.id)),
                    sender_event_id: None,
                    recognised: true,
                    raw: json!({"rule_id": rule_id, "occurrence_at": occurrence, "contact_id": c.id}),
                })
                .collect();
            for chunk in batch.chunks(100) {
                loop {
                    match self.store.ingest(chunk.to_vec()).await {
                        Ok(_) => break,
                        // The queue is busy with webhooks: they come first; try again shortly.
                        Err(StoreError::Overloaded) => tokio::time::sleep(Duration::from_millis(50)).await,
                        Err(e) => return Err(e),
                    }
                }
            }
            fired += batch.len() as u64;
        }
        self.store.finish_occurrence(rule_id, occurrence, fired).await?;
        Ok(fired)
    }
}
