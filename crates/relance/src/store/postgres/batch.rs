//! Group ingest on PostgreSQL: the requests queued while a transaction runs are taken
//! together into the next one, so that a batch costs about ten round trips whatever its
//! size (a round trip, not the disk, is what a loopback PostgreSQL costs most).
//!
//! In one transaction: lock and load every existing contact the batch names, in id order
//! (a stable order across instances); create the missing ones; insert the events (the
//! unique dedupe key tells redeliveries, here or on another instance); apply the engine in
//! memory, event after event; write contacts, history, cancellations and jobs with one
//! statement each. If anything fails, the batch is replayed one request per transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use relance_core::engine::{ActionStatus, CancelScope};
use relance_core::{Contact, InboundEvent, Trigger};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{PgStore, find_contact_id, from_millis, insert_contact, load_contact, retryable, to_millis};
use crate::store::{ActionRecord, ContactKey, IngestResult, StoreError, StoredContact, dashboard};

/// Requests taken into one transaction at most.
const MAX_BATCH: usize = 64;

/// Batches in flight at once per instance. Measured on 2 cores with PostgreSQL on the
/// server's core: 1 worker 2.9k req/s, 2 workers 2.6k, 4 workers 1.8k (smaller batches,
/// same CPU). More may pay off when PostgreSQL has cores of its own; they lock contacts
/// in the same order, as two instances do.
pub(crate) const WORKERS: usize = 1;

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
                let Some(first) = rx.recv().await else { break };
                jobs.push(first);
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
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
            match outcome {
                Ok(results) => {
                    for (job, r) in jobs.drain(..).zip(results) {
                        let _ = job.reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    if jobs.len() > 1 {
                        tracing::warn!(error = %e, size = jobs.len(), "ingest batch failed; replaying it one request at a time");
                    }
                    for job in jobs.drain(..) {
                        let r = self.ingest_alone(&job).await;
                        let _ = job.reply.send(r);
                    }
                }
            }
            self.jobs_ready.notify_one();
        }
    }

    /// One request in a transaction of its own, tried again after a deadlock or a
    /// serialization failure (instances working on the same contacts).
    async fn ingest_alone(&self, job: &IngestJob) -> Result<Vec<IngestResult>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.ingest_batch(std::slice::from_ref(job)).await {
                Ok(mut r) => return Ok(r.pop().unwrap_or_default()),
                Err(e) if attempt < 3 && retryable(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn ingest_batch(&self, jobs: &[IngestJob]) -> Result<Vec<Vec<IngestResult>>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let results = self.batch_body(&tx, jobs, now).await?;
        tx.commit().await?;
        let counts = dashboard::fold_counts(results.iter().flatten(), now);
        if let Err(e) = add_counts(&mut client, &counts).await {
            tracing::warn!(error = %e, "dashboard counters not updated");
        }
        Ok(results)
    }

    async fn batch_body<C: GenericClient>(
        &self,
        c: &C,
        jobs: &[IngestJob],
        now: DateTime<Utc>,
    ) -> Result<Vec<Vec<IngestResult>>, StoreError> {
        // 1. Lock and load the existing contacts, in id order.
        let mut codes: Vec<&str> = Vec::new();
        let mut emails: Vec<&str> = Vec::new();
        for e in jobs.iter().flat_map(|j| &j.events) {
            codes.extend(e.identity.client_code.as_ref().map(|k| k.as_str()));
            emails.extend(e.identity.email.as_ref().map(|m| m.as_str()));
        }
        codes.sort_unstable();
        codes.dedup();
        emails.sort_unstable();
        emails.dedup();
        let load = c
            .prepare_cached(
                "SELECT id, data, created_at, updated_at, version FROM contacts
                 WHERE client_code = ANY($1) OR email = ANY($2) ORDER BY id FOR UPDATE",
            )
            .await?;
        let mut contacts: HashMap<i64, StoredContact> = HashMap::new();
        let mut by_code: HashMap<String, i64> = HashMap::new();
        let mut by_email: HashMap<String, i64> = HashMap::new();
        for row in c.query(&load, &[&codes, &emails]).await? {
            let id: i64 = row.get(0);
            let contact: Contact = serde_json::from_str(row.get::<_, &str>(1)).map_err(|e| {
                StoreError::Unavailable(anyhow::Error::new(e).context(format!("contact {id} is unreadable")))
            })?;
            if let Some(k) = &contact.client_code {
                by_code.insert(k.to_string(), id);
            }
            if let Some(m) = &contact.email {
                by_email.insert(m.to_string(), id);
            }
            let stored = StoredContact {
                id,
                contact,
                created_at: from_millis(row.get(2)),
                updated_at: from_millis(row.get(3)),
                version: row.get(4),
            };
            contacts.insert(id, stored);
        }

        // 2. Each event's contact: found, linked, or created.
        let mut identities_changed: HashSet<i64> = HashSet::new();
        let mut event_contact = Vec::new();
        for e in jobs.iter().flat_map(|j| &j.events) {
            let code = e.identity.client_code.as_ref().map(|k| k.to_string());
            let email = e.identity.email.as_ref().map(|m| m.to_string());
            let found_code = code.as_ref().and_then(|k| by_code.get(k)).copied();
            let found_email = email.as_ref().and_then(|m| by_email.get(m)).copied();
            let id = match found_code.or(found_email) {
                Some(id) => {
                    let stored = contacts
                        .get_mut(&id)
                        .ok_or_else(|| StoreError::Unavailable(anyhow::anyhow!("lost contact {id}")))?;
                    if stored.contact.email.is_none() && found_email.is_none() && e.identity.email.is_some() {
                        stored.contact.email = e.identity.email.clone();
                        by_email.insert(email.clone().unwrap_or_default(), id);
                        identities_changed.insert(id);
                    }
                    if stored.contact.client_code.is_none() && found_code.is_none() && e.identity.client_code.is_some()
                    {
                        stored.contact.client_code = e.identity.client_code.clone();
                        by_code.insert(code.clone().unwrap_or_default(), id);
                        identities_changed.insert(id);
                    }
                    id
                }
                None => {
                    let contact = Contact::new(
                        e.identity.email.clone(),
                        e.identity.client_code.clone(),
                        &self.default_segment,
                        now,
                    );
                    let stored = match insert_contact(c, &contact, now).await? {
                        Some(id) => StoredContact { id, contact, created_at: now, updated_at: now, version: 1 },
                        None => {
                            // Another instance created it meanwhile: lock and use theirs.
                            let key = match (&e.identity.client_code, &e.identity.email) {
                                (Some(k), _) => ContactKey::ClientCode(k.clone()),
                                (None, Some(m)) => ContactKey::Email(m.clone()),
                                (None, None) => {
                                    return Err(StoreError::invalid("client_code", "an event without identity"));
                                }
                            };
                            let id = find_contact_id(c, &key, true).await?.ok_or_else(|| {
                                StoreError::Unavailable(anyhow::anyhow!("contact vanished while created"))
                            })?;
                            load_contact(c, id).await?
                        }
                    };
                    let id = stored.id;
                    if let Some(k) = code {
                        by_code.insert(k, id);
                    }
                    if let Some(m) = email {
                        by_email.insert(m, id);
                    }
                    contacts.insert(id, stored);
                    id
                }
            };
            event_contact.push(id);
        }

        // 3. Insert every event; redeliveries conflict on the dedupe key.
        let all: Vec<&InboundEvent> = jobs.iter().flat_map(|j| &j.events).collect();
        let public_ids: Vec<String> = all.iter().map(|_| Uuid::now_v7().to_string()).collect();
        let mut event_json = Vec::with_capacity(all.len());
        for e in &all {
            event_json.push(serde_json::to_string(&e.event).map_err(|e| StoreError::Unavailable(e.into()))?);
        }
        let insert = c
            .prepare_cached(
                "INSERT INTO events (public_id, dedupe_key, sender_event_id, source, name, trigger, contact_id,
                                     email, client_code, occurred_at, received_at, event, raw)
                 SELECT p, d, s, src, n, t, cid, em, cc, oc, $1, ev, raw
                 FROM UNNEST($2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::INT8[],
                             $9::TEXT[], $10::TEXT[], $11::INT8[], $12::TEXT[], $13::TEXT[])
                      WITH ORDINALITY AS u(p, d, s, src, n, t, cid, em, cc, oc, ev, raw, ord)
                 ORDER BY ord
                 ON CONFLICT (dedupe_key) DO NOTHING RETURNING public_id",
            )
            .await?;
        let dedupe: Vec<Option<&str>> = all.iter().map(|e| e.dedupe_key.as_deref()).collect();
        let senders: Vec<Option<&str>> = all.iter().map(|e| e.sender_event_id.as_deref()).collect();
        let sources: Vec<&str> = all.iter().map(|e| e.event.source.as_str()).collect();
        let names: Vec<&str> = all.iter().map(|e| e.event.name.as_str()).collect();
        let triggers: Vec<Option<&str>> = all.iter().map(|e| e.event.trigger.map(Trigger::as_str)).collect();
        let mails: Vec<Option<&str>> = all.iter().map(|e| e.identity.email.as_ref().map(|m| m.as_str())).collect();
        let ccodes: Vec<Option<&str>> =
            all.iter().map(|e| e.identity.client_code.as_ref().map(|k| k.as_str())).collect();
        let occurred: Vec<i64> = all.iter().map(|e| to_millis(e.event.occurred_at)).collect();
        let raws: Vec<String> = all.iter().map(|e| e.raw.to_string()).collect();
        let inserted: HashSet<String> = c
            .query(
                &insert,
                &[
                    &to_millis(now),
                    &public_ids,
                    &dedupe,
                    &senders,
                    &sources,
                    &names,
                    &triggers,
                    &event_contact,
                    &mails,
                    &ccodes,
                    &occurred,
                    &event_json,
                    &raws,
                ],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut originals: HashMap<String, (String, Option<String>)> = HashMap::new();
        if inserted.len() < all.len() {
            let dup_keys: Vec<&str> = all
                .iter()
                .zip(&public_ids)
                .filter(|(_, p)| !inserted.contains(*p))
                .filter_map(|(e, _)| e.dedupe_key.as_deref())
                .collect();
            let stmt = c
                .prepare_cached("SELECT dedupe_key, public_id, trigger FROM events WHERE dedupe_key = ANY($1)")
                .await?;
            for r in c.query(&stmt, &[&dup_keys]).await? {
                originals.insert(r.get(0), (r.get(1), r.get(2)));
            }
        }

        // 4. Apply, in order, in memory, with one rule set for the whole batch.
        let rules = self.rules.current();
        let (engine, rule_version) = (&rules.engine, rules.version);
        let mut history: Vec<HistoryRow> = Vec::new();
        let mut new_jobs: Vec<NewJob> = Vec::new();
        let mut cancel_opt_out: Vec<i64> = Vec::new();
        let mut cancel_all: Vec<i64> = Vec::new();
        let mut touched: HashSet<i64> = HashSet::new();
        let mut results: Vec<Vec<IngestResult>> = Vec::with_capacity(jobs.len());
        let mut index = 0;
        for job in jobs {
            let mut out = Vec::with_capacity(job.events.len());
            for inbound in &job.events {
                let (contact_id, public_id) = (event_contact[index], &public_ids[index]);
                index += 1;
                let stored = contacts
                    .get_mut(&contact_id)
                    .ok_or_else(|| StoreError::Unavailable(anyhow::anyhow!("lost contact")))?;
                if !inserted.contains(public_id) {
                    let (original, trigger) = inbound
                        .dedupe_key
                        .as_ref()
                        .and_then(|k| originals.get(k))
                        .cloned()
                        .unwrap_or_else(|| (public_id.clone(), None));
                    out.push(IngestResult {
                        event_id: original,
                        duplicate: true,
                        trigger: trigger.and_then(|t| t.parse().ok()),
                        unrecognised: None,
                        contact: stored.contact.clone(),
                        actions: Vec::new(),
                    });
                    continue;
                }
                let outcome = engine.apply(&stored.contact, &inbound.event, now);
                for w in &outcome.warnings {
                    tracing::warn!(contact_id, "{w}");
                }
                stored.contact = outcome.contact.clone();
                touched.insert(contact_id);
                for ch in &outcome.changes {
                    history.push((
                        contact_id,
                        public_id.clone(),
                        ch.rule_id.as_deref().map(str::to_owned),
                        ch.action_type.map(|a| a.as_str()),
                        ch.field.as_str(),
                        ch.before.to_string(),
                        ch.after.to_string(),
                    ));
                }
                if let Some(scope) = outcome.cancel_pending {
                    // Jobs of this contact queued earlier in this batch are cancelled too,
                    // as they would be had they been committed already.
                    for j in new_jobs.iter_mut().filter(|j| j.contact_id == contact_id && j.state == "pending") {
                        if scope == CancelScope::All || j.reaches_person {
                            j.state = "cancelled";
                            j.reason = Some(match scope {
                                CancelScope::All => "cancelled: pause_campaign".into(),
                                CancelScope::OptOut => "cancelled: unsubscribed".into(),
                            });
                        }
                    }
                    match scope {
                        CancelScope::All => cancel_all.push(contact_id),
                        CancelScope::OptOut => cancel_opt_out.push(contact_id),
                    }
                }
                let mut actions = Vec::with_capacity(outcome.actions.len());
                for fired in outcome.actions {
                    let job_id = match fired.status {
                        ActionStatus::Applied => None,
                        ActionStatus::Scheduled | ActionStatus::Suppressed => {
                            let id = Uuid::now_v7().to_string();
                            let suppressed = fired.status == ActionStatus::Suppressed;
                            new_jobs.push(NewJob {
                                id: id.clone(),
                                contact_id,
                                event_id: public_id.clone(),
                                rule_id: fired.rule_id.to_string(),
                                trigger: fired.trigger.as_str(),
                                action_type: fired.action_type.as_str(),
                                reaches_person: fired.action_type.reaches_person(),
                                config: fired.config.to_string(),
                                delay: fired.delay_minutes as i32,
                                due: to_millis(fired.due_at.unwrap_or(now)),
                                state: if suppressed { "suppressed" } else { "pending" },
                                reason: if suppressed {
                                    fired.reason.map(|r| format!("suppressed: {}", r.as_str()))
                                } else {
                                    None
                                },
                            });
                            Some(id)
                        }
                    };
                    actions.push(ActionRecord { fired, job_id });
                }
                out.push(IngestResult {
                    event_id: public_id.clone(),
                    duplicate: false,
                    trigger: inbound.event.trigger,
                    unrecognised: (!inbound.recognised).then(|| inbound.event.name.clone()),
                    contact: outcome.contact,
                    actions,
                });
            }
            results.push(out);
        }

        // 5. Write it all, one statement per table.
        if !identities_changed.is_empty() {
            let ids: Vec<i64> = identities_changed.iter().copied().collect();
            let mails: Vec<Option<String>> =
                ids.iter().map(|id| contacts[id].contact.email.as_ref().map(|m| m.to_string())).collect();
            let codes: Vec<Option<String>> =
                ids.iter().map(|id| contacts[id].contact.client_code.as_ref().map(|k| k.to_string())).collect();
            let stmt = c
                .prepare_cached(
                    "UPDATE contacts SET email = u.e, client_code = u.k
                     FROM UNNEST($1::INT8[], $2::TEXT[], $3::TEXT[]) AS u(id, e, k) WHERE contacts.id = u.id",
                )
                .await?;
            c.execute(&stmt, &[&ids, &mails, &codes]).await?;
            touched.extend(ids);
        }
        if !touched.is_empty() {
            let mut ids: Vec<i64> = touched.into_iter().collect();
            ids.sort_unstable();
            let segments: Vec<&str> = ids.iter().map(|id| contacts[id].contact.segment.as_str()).collect();
            let scores: Vec<i32> = ids.iter().map(|id| i32::from(contacts[id].contact.score.value())).collect();
            let mut data = Vec::with_capacity(ids.len());
            for id in &ids {
                data.push(serde_json::to_string(&contacts[id].contact).map_err(|e| StoreError::Unavailable(e.into()))?);
            }
            let stmt = c
                .prepare_cached(
                    "UPDATE contacts SET segment = u.s, score = u.sc, data = u.d, updated_at = $1, version = version + 1
                     FROM UNNEST($2::INT8[], $3::TEXT[], $4::INT4[], $5::TEXT[]) AS u(id, s, sc, d) WHERE contacts.id = u.id",
                )
                .await?;
            c.execute(&stmt, &[&to_millis(now), &ids, &segments, &scores, &data]).await?;
        }
        if !history.is_empty() {
            let stmt = c
                .prepare_cached(
                    "INSERT INTO history (contact_id, event_id, rule_id, action_type, field, before, after, at, rule_version)
                     SELECT c, e, r, a, f, b, af, $1, $9::INT8
                     FROM UNNEST($2::INT8[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[])
                          WITH ORDINALITY AS t(c, e, r, a, f, b, af, ord)
                     ORDER BY ord",
                )
                .await?;
            let cs: Vec<i64> = history.iter().map(|h| h.0).collect();
            let es: Vec<&str> = history.iter().map(|h| h.1.as_str()).collect();
            let rs: Vec<Option<&str>> = history.iter().map(|h| h.2.as_deref()).collect();
            let acts: Vec<Option<&str>> = history.iter().map(|h| h.3).collect();
            let fs: Vec<&str> = history.iter().map(|h| h.4).collect();
            let bs: Vec<&str> = history.iter().map(|h| h.5.as_str()).collect();
            let afs: Vec<&str> = history.iter().map(|h| h.6.as_str()).collect();
            c.execute(&stmt, &[&to_millis(now), &cs, &es, &rs, &acts, &fs, &bs, &afs, &rule_version]).await?;
        }
        for (ids, all, reason) in
            [(&cancel_opt_out, false, "cancelled: unsubscribed"), (&cancel_all, true, "cancelled: pause_campaign")]
        {
            if ids.is_empty() {
                continue;
            }
            let stmt = c
                .prepare_cached(
                    "UPDATE jobs SET state = 'cancelled', last_error = $1, updated_at = $2
                     WHERE contact_id = ANY($3) AND state IN ('pending', 'failed')
                       AND ($4 OR action_type IN ('send_email', 'send_sms', 'schedule_call', 'create_task'))",
                )
                .await?;
            c.execute(&stmt, &[&reason, &to_millis(now), ids, &all]).await?;
        }
        if !new_jobs.is_empty() {
            let stmt = c
                .prepare_cached(
                    "INSERT INTO jobs (id, contact_id, event_id, rule_id, trigger, action_type, config, delay_minutes,
                                       due_at, state, idempotency_key, last_error, created_at, updated_at, rule_version)
                     SELECT id, c, e, r, t, a, cfg, d, due, st, id, err, $1, $1, $13::INT8
                     FROM UNNEST($2::TEXT[], $3::INT8[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
                                 $9::INT4[], $10::INT8[], $11::TEXT[], $12::TEXT[]) AS u(id, c, e, r, t, a, cfg, d, due, st, err)",
                )
                .await?;
            let ids: Vec<&str> = new_jobs.iter().map(|j| j.id.as_str()).collect();
            let cs: Vec<i64> = new_jobs.iter().map(|j| j.contact_id).collect();
            let es: Vec<&str> = new_jobs.iter().map(|j| j.event_id.as_str()).collect();
            let rs: Vec<&str> = new_jobs.iter().map(|j| j.rule_id.as_str()).collect();
            let ts: Vec<&str> = new_jobs.iter().map(|j| j.trigger).collect();
            let acts: Vec<&str> = new_jobs.iter().map(|j| j.action_type).collect();
            let cfgs: Vec<&str> = new_jobs.iter().map(|j| j.config.as_str()).collect();
            let ds: Vec<i32> = new_jobs.iter().map(|j| j.delay).collect();
            let dues: Vec<i64> = new_jobs.iter().map(|j| j.due).collect();
            let sts: Vec<&str> = new_jobs.iter().map(|j| j.state).collect();
            let errs: Vec<Option<&str>> = new_jobs.iter().map(|j| j.reason.as_deref()).collect();
            c.execute(
                &stmt,
                &[&to_millis(now), &ids, &cs, &es, &rs, &ts, &acts, &cfgs, &ds, &dues, &sts, &errs, &rule_version],
            )
            .await?;
        }
        Ok(results)
    }
}

/// Adds a committed batch's counters to the dashboard's hourly counts. Its own
/// transaction, after the batch's, without waiting for the disk: the counter rows are hot
/// (every batch of the hour touches them), and holding their locks through the batch's
/// commit would queue every instance's commits behind each other. Counters are
/// statistics; a crash between the two commits loses one batch's counts, no event.
async fn add_counts(
    client: &mut deadpool_postgres::Client,
    counts: &[dashboard::HourlyCount],
) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off").await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO hourly_counts (hour, kind, name, count)
             SELECT $1, k, n, c FROM UNNEST($2::TEXT[], $3::TEXT[], $4::INT8[]) WITH ORDINALITY AS u(k, n, c, ord)
             ORDER BY ord
             ON CONFLICT (hour, kind, name) DO UPDATE SET count = hourly_counts.count + excluded.count",
        )
        .await?;
    let kinds: Vec<&str> = counts.iter().map(|c| c.kind.as_str()).collect();
    let names: Vec<&str> = counts.iter().map(|c| c.name.as_str()).collect();
    let values: Vec<i64> = counts.iter().map(|c| c.count).collect();
    tx.execute(&stmt, &[&counts[0].hour, &kinds, &names, &values]).await?;
    tx.commit().await?;
    Ok(())
}

/// contact, event, rule, action, field, before, after.
type HistoryRow = (i64, String, Option<String>, Option<&'static str>, &'static str, String, String);

struct NewJob {
    id: String,
    contact_id: i64,
    event_id: String,
    rule_id: String,
    trigger: &'static str,
    action_type: &'static str,
    reaches_person: bool,
    config: String,
    delay: i32,
    due: i64,
    state: &'static str,
    reason: Option<String>,
}
