//! What the planner needs loaded, and its write plans stored, on SQLite. Nothing here
//! decides: the rows come from [`relance_core::plan`] as they are.

use relance_core::plan::{LoadedContact, Planner, StoredEvent, WritePlan};
use relance_core::{ClientCode, Email, InboundEvent, Trigger};
use rusqlite::{Connection, OptionalExtension, params};

use super::contact_cache::ContactCache;
use super::{find_contact_id, load_contact, to_millis};
use crate::store::{ContactKey, StoreError, contact_json, stored_event};

/// Loads every contact the events name (in id order) and the stored events their dedupe
/// keys point to.
pub(crate) fn load_for(
    conn: &Connection,
    cache: &mut ContactCache,
    planner: &mut Planner<'_>,
    events: &[&InboundEvent],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let emails: Vec<Email> = events.iter().filter_map(|e| e.identity.email.clone()).collect();
    let codes: Vec<ClientCode> = events.iter().filter_map(|e| e.identity.client_code.clone()).collect();
    load_identities(conn, cache, planner, &emails, &codes)?;
    let mut seen = conn.prepare_cached(
        "SELECT COALESCE(legacy_id, CAST(id AS TEXT)), contact_id, trigger FROM events WHERE dedupe_key = ?1",
    )?;
    for key in events.iter().filter_map(|e| e.dedupe_key.as_deref()) {
        let stored = seen
            .query_row([key], |r| {
                Ok(StoredEvent {
                    public_id: r.get(0)?,
                    contact_id: r.get(1)?,
                    trigger: r.get::<_, Option<String>>(2)?.and_then(|t| t.parse::<Trigger>().ok()),
                })
            })
            .optional()?;
        if let Some(stored) = stored {
            planner.load_stored_event(key.to_owned(), stored);
        }
    }
    planner.set_paused(super::pause::paused_ids(conn)?);
    super::runs::load(conn, planner)?;
    super::pressure::load(conn, planner, now)
}

/// The next event row id: above every id stored and every id ever stored (the
/// `AUTOINCREMENT` high-water mark), so that an id handed out is never handed out again.
/// Only the single writer inserts events, inside the transaction that asked.
pub(crate) fn next_event_id(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                        COALESCE((SELECT max(id) FROM events), 0)) + 1",
        )?
        .query_row([], |r| r.get(0))?)
}

/// Loads the contacts holding these emails and client codes, in id order: from the
/// writer's cache when it has them, else from the database.
pub(crate) fn load_identities(
    conn: &Connection,
    cache: &mut ContactCache,
    planner: &mut Planner<'_>,
    emails: &[Email],
    codes: &[ClientCode],
) -> Result<(), StoreError> {
    cache.forget_written();
    let mut ids = Vec::new();
    for k in codes {
        match cache.id_of_code(k) {
            Some(id) => ids.push(id),
            None => ids.extend(find_contact_id(conn, &ContactKey::ClientCode(k.clone()))?),
        }
    }
    for m in emails {
        match cache.id_of_email(m) {
            Some(id) => ids.push(id),
            None => ids.extend(find_contact_id(conn, &ContactKey::Email(m.clone()))?),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let loaded = match cache.take(id) {
            Some(cached) => {
                // Every debug build's test checks the cache against the database.
                #[cfg(debug_assertions)]
                assert_eq!(cached, load(conn, id)?, "the writer's cached contact {id} differs from its row");
                cached
            }
            None => load(conn, id)?,
        };
        planner.load_contact(loaded);
    }
    Ok(())
}

pub(crate) fn load(conn: &Connection, id: i64) -> Result<LoadedContact, StoreError> {
    let s = load_contact(conn, id)?;
    Ok(LoadedContact {
        id: s.id,
        contact: s.contact,
        version: s.version,
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(e.into()))
}

/// Stores a plan in the caller's transaction, in the plan's order; returns each slot's
/// contact id.
pub(crate) fn write_plan(
    conn: &Connection,
    plan: &WritePlan,
    inbound: &[&InboundEvent],
) -> Result<Vec<i64>, StoreError> {
    // Statements are prepared only when the plan has rows for them: each lookup in the
    // statement cache hashes the SQL text.
    let mut created = Vec::new();
    if plan.new_contacts().next().is_some() {
        let mut insert_contact = conn.prepare_cached(
            "INSERT INTO contacts (email, client_code, segment, score, data, created_at, updated_at, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
        )?;
        for c in plan.new_contacts() {
            created.push(insert_contact.query_row(
                params![
                    c.contact.email.as_ref().map(Email::as_str),
                    c.contact.client_code.as_ref().map(ClientCode::as_str),
                    c.contact.segment,
                    c.contact.score.value(),
                    contact_json::to_stored(&c.contact)?,
                    to_millis(c.created_at),
                    to_millis(c.updated_at),
                    c.version,
                ],
                |r| r.get::<_, i64>(0),
            )?);
        }
    }
    let ids = plan
        .contact_ids(created.into_iter())
        .ok_or_else(|| StoreError::Unavailable(anyhow::anyhow!("internal: a new contact has no id")))?;

    // Only the columns that change: naming a column in the SET list rewrites every index
    // on it, even to the same value. Email and client code change only when an event
    // links them; the segment rarely, and rewriting its index entry was 16 of a commit's
    // 87 pages when events came for contacts stored in another order than they arrive.
    if plan.changed_contacts().next().is_some() {
        let mut update = conn
            .prepare_cached("UPDATE contacts SET score = ?1, data = ?2, updated_at = ?3, version = ?4 WHERE id = ?5")?;
        for (id, c) in plan.changed_contacts() {
            if c.identities_changed {
                conn.prepare_cached("UPDATE contacts SET email = ?1, client_code = ?2 WHERE id = ?3")?.execute(
                    params![
                        c.contact.email.as_ref().map(Email::as_str),
                        c.contact.client_code.as_ref().map(ClientCode::as_str),
                        id
                    ],
                )?;
            }
            if c.segment_changed() {
                conn.prepare_cached("UPDATE contacts SET segment = ?1 WHERE id = ?2")?
                    .execute(params![c.contact.segment, id])?;
            }
            update.execute(params![
                c.contact.score.value(),
                contact_json::to_stored(&c.contact)?,
                to_millis(c.updated_at),
                c.version,
                id
            ])?;
        }
    }

    if plan.contacts.iter().any(|c| c.brevo_sync.is_some()) {
        // A contact already queued keeps its due time: the burst goes out as one push.
        let mut queue = conn.prepare_cached(
            "INSERT INTO brevo_sync (contact_id, due_at, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (contact_id) DO UPDATE SET
               generation = brevo_sync.generation + 1,
               due_at = CASE WHEN brevo_sync.generation > brevo_sync.synced_generation
                             THEN brevo_sync.due_at ELSE excluded.due_at END,
               updated_at = excluded.updated_at",
        )?;
        for (i, c) in plan.contacts.iter().enumerate() {
            if let Some(due) = c.brevo_sync {
                queue.execute(params![ids[i], to_millis(due), to_millis(c.updated_at)])?;
            }
        }
    }

    if !plan.events.is_empty() {
        let mut insert_event = conn.prepare_cached(
            "INSERT INTO events (id, dedupe_key, sender_event_id, source, name, trigger, contact_id,
                             email, client_code, occurred_at, received_at, event, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )?;
        for e in &plan.events {
            let inbound = inbound[e.input];
            insert_event.execute(params![
                e.id,
                inbound.dedupe_key,
                inbound.sender_event_id,
                inbound.event.source.as_str(),
                inbound.event.name,
                inbound.event.trigger.map(|t| t.as_str()),
                ids[e.contact.0],
                inbound.identity.email.as_ref().map(Email::as_str),
                inbound.identity.client_code.as_ref().map(ClientCode::as_str),
                to_millis(inbound.event.occurred_at),
                to_millis(e.received_at),
                stored_event::to_stored(&inbound.event)?,
                stored_event::raw_to_store(inbound),
            ])?;
        }
    }

    if !plan.cancellations.is_empty() {
        let mut cancel = conn.prepare_cached(
            "UPDATE jobs SET state = 'cancelled', last_error = ?1, updated_at = ?2
         WHERE contact_id = ?3 AND state IN ('pending', 'failed')
           AND action_type IN (SELECT value FROM json_each(?4))",
        )?;
        for c in &plan.cancellations {
            cancel.execute(params![
                c.scope.reason(),
                to_millis(c.at),
                ids[c.contact.0],
                json(&c.scope.action_types())?
            ])?;
        }
    }

    super::runs::write(conn, plan, &ids)?;

    if !plan.history.is_empty() {
        let mut history = conn.prepare_cached(
            "INSERT INTO history (contact_id, event_id, rule_id, action_type, field, before, after, at, rule_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for h in &plan.history {
            let ch = &h.change;
            history.execute(params![
                ids[h.contact.0],
                h.event_id,
                ch.rule_id.as_deref(),
                ch.cause_label(),
                ch.field.as_str(),
                ch.before.to_string(),
                ch.after.to_string(),
                to_millis(h.at),
                h.rule_version,
            ])?;
        }
    }

    if !plan.jobs.is_empty() {
        let mut insert_job = conn.prepare_cached(
            "INSERT INTO jobs (id, contact_id, event_id, rule_id, trigger, action_type, config, delay_minutes,
                           due_at, state, last_error, created_at, updated_at, rule_version,
                           run_id, skip_if, transactional, on_cap, priority, max_per_day)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
        )?;
        for j in &plan.jobs {
            let f = &j.fired;
            insert_job.execute(params![
                j.id,
                ids[j.contact.0],
                j.event_id,
                &*f.rule_id,
                f.trigger.as_str(),
                f.action_type.as_str(),
                f.config.to_string(),
                f.delay_minutes,
                to_millis(j.due_at),
                j.state.as_str(),
                j.last_error,
                to_millis(j.at),
                j.rule_version,
                j.run_id,
                crate::store::runs::skip_if_column(f.skip_if.as_deref())?,
                f.transactional,
                crate::store::jobs::on_cap_column(f.on_cap),
                f.priority,
                f.max_per_day,
            ])?;
        }
        let mut held = conn.prepare_cached(
            "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, response) VALUES (?1, ?2, 0, ?3, ?4)",
        )?;
        for j in &plan.jobs {
            if let Some((status, reason)) = &j.held {
                held.execute(params![j.id, to_millis(j.at), status, reason])?;
            }
        }
    }
    Ok(ids)
}
