//! What the planner needs loaded, and its write plans stored, on PostgreSQL: one
//! statement per table whatever the batch's size (`UNNEST`). Nothing here decides.
//!
//! Contacts are locked as they are loaded, in id order (a stable order across instances:
//! they wait for each other instead of deadlocking or losing an update). What another
//! instance creates meanwhile (a contact, a redelivered event) shows as a conflict when
//! the plan is written: the transaction is then rolled back and planned again.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use relance_core::plan::{LoadedContact, Planner, StoredEvent, WritePlan};
use relance_core::{InboundEvent, Trigger};

use super::pipeline::Pipeline;
use super::{from_millis, to_millis};
use crate::store::{StoreError, contact_json, stored_event};

/// Another instance wrote what this plan assumed absent; planning again will see it.
#[derive(Debug, thiserror::Error)]
#[error("another instance stored {0} meanwhile")]
pub(crate) struct Raced(&'static str);

fn raced(what: &'static str) -> StoreError {
    StoreError::Unavailable(anyhow::Error::new(Raced(what)))
}

/// Opens the batch's transaction, locks and loads every contact the events name, in id
/// order, and the stored events their dedupe keys point to, and reserves a row id from
/// the events' sequence for each event, in one round trip (on a loopback PostgreSQL a
/// round trip, not the disk, is what a batch costs most).
pub(crate) async fn load_for<C: GenericClient>(
    c: &C,
    planner: &mut Planner<'_>,
    events: &[&InboundEvent],
) -> Result<(), StoreError> {
    let mut codes: Vec<&str> =
        events.iter().filter_map(|e| e.identity.client_code.as_ref()).map(|k| k.as_str()).collect();
    let mut emails: Vec<&str> = events.iter().filter_map(|e| e.identity.email.as_ref()).map(|m| m.as_str()).collect();
    let keys: Vec<&str> = events.iter().filter_map(|e| e.dedupe_key.as_deref()).collect();
    codes.sort_unstable();
    codes.dedup();
    emails.sort_unstable();
    emails.dedup();
    // The locking subquery keeps its order: instances lock shared contacts alike.
    let stmt = c
        .prepare_cached(
            "WITH locked AS (
               SELECT id, data, created_at, updated_at, version FROM contacts
               WHERE client_code = ANY($1) OR email = ANY($2) ORDER BY id FOR UPDATE)
             SELECT TRUE, id, data, created_at, updated_at, version, NULL::TEXT, NULL::TEXT FROM locked
             UNION ALL
             SELECT FALSE, contact_id, trigger, NULL::INT8, NULL::INT8, NULL::INT8, dedupe_key, COALESCE(legacy_id, id::TEXT)
             FROM events WHERE dedupe_key = ANY($3)",
        )
        .await?;
    // Generic plans for the rest of this transaction: these statements run for every
    // batch with the same shapes, and planning each anew cost more than running it
    // (measured: 0.74× the throughput of the first batch design). A generic plan is built
    // once per connection, often while the tables are still nearly empty; it then kept a
    // sequential scan of `events` for the dedupe keys, slower with every stored event
    // (2 ms per batch at 2,000 events). Every statement of the ingest transaction is a
    // lookup by key, so sequential scans are ruled out for it. Sent in the same round
    // trip as the load (pipelined), behind the transaction's `BEGIN`.
    let generic =
        c.batch_execute("BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off");
    let runs_stmt = c.prepare_cached(&super::runs::by_identity_sql()).await?;
    // From the sequence, not max(id) + 1: several instances insert at once, and a
    // sequence never hands an id out twice (one a rolled-back batch took stays unused).
    let ids_stmt = c.prepare_cached("SELECT nextval('events_id_seq') FROM generate_series(1, $1::INT8)").await?;
    let count = events.len() as i64;
    let count_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&count];
    let paused_stmt = c.prepare_cached(super::pause::PAUSED_SQL).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&codes, &emails, &keys];
    let run_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&codes, &emails];
    // The runs' query comes after the lock in the pipeline: it reads them locked.
    let (_, rows, run_rows, paused, event_ids) = tokio::try_join!(
        generic,
        c.query(&stmt, &params),
        c.query(&runs_stmt, &run_params),
        c.query(&paused_stmt, &[]),
        c.query(&ids_stmt, &count_param)
    )?;
    planner.reserve_event_ids(event_ids.iter().map(|r| r.get::<_, i64>(0)));
    planner.set_paused(paused.iter().map(|r| r.get::<_, String>(0)).collect());
    for row in rows {
        if row.get::<_, bool>(0) {
            let id: i64 = row.get(1);
            let contact = super::parse_contact(id, row.get(2))?;
            planner.load_contact(LoadedContact {
                id,
                contact,
                created_at: from_millis(row.get(3)),
                updated_at: from_millis(row.get(4)),
                version: row.get(5),
            });
        } else {
            let stored = StoredEvent {
                public_id: row.get(7),
                contact_id: row.get(1),
                trigger: row.get::<_, Option<&str>>(2).and_then(|t| t.parse::<Trigger>().ok()),
            };
            planner.load_stored_event(row.get(6), stored);
        }
    }
    for row in run_rows {
        planner.load_run(super::runs::decode_row(&row)?);
    }
    Ok(())
}

/// Locks and loads the contacts holding these emails and client codes, in id order.
pub(crate) async fn load_identities<C: GenericClient>(
    c: &C,
    planner: &mut Planner<'_>,
    mut emails: Vec<&str>,
    mut codes: Vec<&str>,
) -> Result<(), StoreError> {
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
    for row in c.query(&load, &[&codes, &emails]).await? {
        planner.load_contact(loaded(&row)?);
    }
    Ok(())
}

/// Locks and loads one contact by id.
pub(crate) async fn load_locked<C: GenericClient>(c: &C, id: i64) -> Result<LoadedContact, StoreError> {
    let stmt = c
        .prepare_cached("SELECT id, data, created_at, updated_at, version FROM contacts WHERE id = $1 FOR UPDATE")
        .await?;
    let row = c.query_opt(&stmt, &[&id]).await?.ok_or_else(|| StoreError::NotFound(format!("contact {id}")))?;
    loaded(&row)
}

fn loaded(row: &tokio_postgres::Row) -> Result<LoadedContact, StoreError> {
    let id: i64 = row.get(0);
    let contact = super::parse_contact(id, row.get(1))?;
    Ok(LoadedContact {
        id,
        contact,
        created_at: from_millis(row.get(2)),
        updated_at: from_millis(row.get(3)),
        version: row.get(4),
    })
}

/// Stores a plan in the caller's transaction, in the plan's order; returns each slot's
/// contact id.
pub(crate) async fn write_plan<C: GenericClient + Sync>(
    c: &C,
    plan: &WritePlan,
    inbound: &[&InboundEvent],
) -> Result<Vec<i64>, StoreError> {
    write_plan_then(c, plan, inbound, false).await
}

/// Stores a plan and commits the transaction the caller opened with `BEGIN`, in one
/// round trip once the new contacts have their ids.
pub(crate) async fn write_plan_and_commit<C: GenericClient + Sync>(
    c: &C,
    plan: &WritePlan,
    inbound: &[&InboundEvent],
) -> Result<Vec<i64>, StoreError> {
    write_plan_then(c, plan, inbound, true).await
}

async fn write_plan_then<C: GenericClient + Sync>(
    c: &C,
    plan: &WritePlan,
    inbound: &[&InboundEvent],
    commit: bool,
) -> Result<Vec<i64>, StoreError> {
    // New contacts first, on their own: every other row needs their ids.
    let ids = insert_contacts(c, plan).await?;
    let mut p = Pipeline::default();
    update_contacts(&mut p, plan)?;
    insert_events(&mut p, plan, inbound, &ids)?;
    cancel_jobs(&mut p, plan, &ids);
    super::runs::write(&mut p, plan, &ids)?;
    insert_history(&mut p, plan, &ids);
    insert_jobs(&mut p, plan, &ids)?;
    queue_brevo_sync(&mut p, plan, &ids);
    p.send(c, commit).await?;
    Ok(ids)
}

/// The plan's cancellations (an opt-out, `pause_campaign`) in one statement, one row per
/// contact and action type; the first cancellation of a job gives its reason, as when
/// they ran one by one.
fn cancel_jobs(p: &mut Pipeline<'_>, plan: &WritePlan, ids: &[i64]) {
    let rows: Vec<(i64, &'static str, &'static str, i64)> = (plan.cancellations.iter())
        .flat_map(|c| {
            let (contact, reason, at) = (ids[c.contact.0], c.scope.reason(), to_millis(c.at));
            c.scope.action_types().into_iter().map(move |a| (contact, a, reason, at))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let contacts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let actions: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let reasons: Vec<&str> = rows.iter().map(|r| r.2).collect();
    let at: Vec<i64> = rows.iter().map(|r| r.3).collect();
    p.push(
        "UPDATE jobs SET state = 'cancelled', last_error = u.r, updated_at = u.at
         FROM (SELECT DISTINCT ON (c, a) c, a, r, at
               FROM UNNEST($1::INT8[], $2::TEXT[], $3::TEXT[], $4::INT8[]) WITH ORDINALITY AS x(c, a, r, at, ord)
               ORDER BY c, a, ord) AS u
         WHERE jobs.contact_id = u.c AND jobs.action_type = u.a AND jobs.state IN ('pending', 'failed')",
        vec![Box::new(contacts), Box::new(actions), Box::new(reasons), Box::new(at)],
    );
}

/// Queues contacts whose Brevo-mapped fields changed; one already queued keeps its due
/// time, so a burst of changes goes out as one push.
fn queue_brevo_sync(p: &mut Pipeline<'_>, plan: &WritePlan, ids: &[i64]) {
    let queued: Vec<(i64, i64, i64)> = (plan.contacts.iter().enumerate())
        .filter_map(|(i, p)| p.brevo_sync.map(|due| (ids[i], to_millis(due), to_millis(p.updated_at))))
        .collect();
    if queued.is_empty() {
        return;
    }
    let contacts: Vec<i64> = queued.iter().map(|q| q.0).collect();
    let due: Vec<i64> = queued.iter().map(|q| q.1).collect();
    let at: Vec<i64> = queued.iter().map(|q| q.2).collect();
    p.push(
        "INSERT INTO brevo_sync (contact_id, due_at, updated_at)
         SELECT * FROM UNNEST($1::INT8[], $2::INT8[], $3::INT8[])
         ON CONFLICT (contact_id) DO UPDATE SET
           generation = brevo_sync.generation + 1,
           due_at = CASE WHEN brevo_sync.generation > brevo_sync.synced_generation
                         THEN brevo_sync.due_at ELSE excluded.due_at END,
           updated_at = excluded.updated_at",
        vec![Box::new(contacts), Box::new(due), Box::new(at)],
    );
}

async fn insert_contacts<C: GenericClient>(c: &C, plan: &WritePlan) -> Result<Vec<i64>, StoreError> {
    let new: Vec<_> = plan.new_contacts().collect();
    let mut created: HashMap<(Option<String>, Option<String>), i64> = HashMap::new();
    if !new.is_empty() {
        let stmt = c
            .prepare_cached(
                "INSERT INTO contacts (email, client_code, segment, score, data, created_at, updated_at, version)
                 SELECT e, k, s, sc, d, ca, ua, v
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::INT4[], $5::TEXT[], $6::INT8[], $7::INT8[], $8::INT8[])
                      AS u(e, k, s, sc, d, ca, ua, v)
                 ON CONFLICT DO NOTHING RETURNING id, email, client_code",
            )
            .await?;
        let emails: Vec<Option<&str>> = new.iter().map(|n| n.contact.email.as_ref().map(|m| m.as_str())).collect();
        let codes: Vec<Option<&str>> = new.iter().map(|n| n.contact.client_code.as_ref().map(|k| k.as_str())).collect();
        let segments: Vec<&str> = new.iter().map(|n| n.contact.segment.as_str()).collect();
        let scores: Vec<i32> = new.iter().map(|n| i32::from(n.contact.score.value())).collect();
        let data = new.iter().map(|n| contact_json::to_stored(&n.contact)).collect::<Result<Vec<_>, _>>()?;
        let created_at: Vec<i64> = new.iter().map(|n| to_millis(n.created_at)).collect();
        let updated_at: Vec<i64> = new.iter().map(|n| to_millis(n.updated_at)).collect();
        let versions: Vec<i64> = new.iter().map(|n| n.version).collect();
        for r in
            c.query(&stmt, &[&emails, &codes, &segments, &scores, &data, &created_at, &updated_at, &versions]).await?
        {
            created.insert((r.get(1), r.get(2)), r.get(0));
        }
        if created.len() < new.len() {
            return Err(raced("a contact"));
        }
    }
    plan.contacts
        .iter()
        .map(|p| match p.id {
            Some(id) => Ok(id),
            None => {
                let key = (
                    p.contact.email.as_ref().map(|m| m.to_string()),
                    p.contact.client_code.as_ref().map(|k| k.to_string()),
                );
                created.get(&key).copied().ok_or_else(|| raced("a contact"))
            }
        })
        .collect()
}

fn update_contacts<'a>(p: &mut Pipeline<'a>, plan: &'a WritePlan) -> Result<(), StoreError> {
    let changed: Vec<_> = plan.changed_contacts().collect();
    if changed.is_empty() {
        return Ok(());
    }
    let linked: Vec<_> = changed.iter().filter(|(_, p)| p.identities_changed).collect();
    if !linked.is_empty() {
        let ids: Vec<i64> = linked.iter().map(|(id, _)| *id).collect();
        let emails: Vec<Option<&str>> =
            linked.iter().map(|(_, p)| p.contact.email.as_ref().map(|m| m.as_str())).collect();
        let codes: Vec<Option<&str>> =
            linked.iter().map(|(_, p)| p.contact.client_code.as_ref().map(|k| k.as_str())).collect();
        p.push(
            "UPDATE contacts SET email = u.e, client_code = u.k
             FROM UNNEST($1::INT8[], $2::TEXT[], $3::TEXT[]) AS u(id, e, k) WHERE contacts.id = u.id",
            vec![Box::new(ids), Box::new(emails), Box::new(codes)],
        );
    }
    let ids: Vec<i64> = changed.iter().map(|(id, _)| *id).collect();
    let segments: Vec<&str> = changed.iter().map(|(_, p)| p.contact.segment.as_str()).collect();
    let scores: Vec<i32> = changed.iter().map(|(_, p)| i32::from(p.contact.score.value())).collect();
    let data = changed.iter().map(|(_, p)| contact_json::to_stored(&p.contact)).collect::<Result<Vec<_>, _>>()?;
    let updated_at: Vec<i64> = changed.iter().map(|(_, p)| to_millis(p.updated_at)).collect();
    let versions: Vec<i64> = changed.iter().map(|(_, p)| p.version).collect();
    p.push(
        "UPDATE contacts SET segment = u.s, score = u.sc, data = u.d, updated_at = u.ua, version = u.v
         FROM UNNEST($1::INT8[], $2::TEXT[], $3::INT4[], $4::TEXT[], $5::INT8[], $6::INT8[])
              AS u(id, s, sc, d, ua, v) WHERE contacts.id = u.id",
        vec![
            Box::new(ids),
            Box::new(segments),
            Box::new(scores),
            Box::new(data),
            Box::new(updated_at),
            Box::new(versions),
        ],
    );
    Ok(())
}

fn insert_events<'a>(
    p: &mut Pipeline<'a>,
    plan: &'a WritePlan,
    inbound: &[&'a InboundEvent],
    ids: &[i64],
) -> Result<(), StoreError> {
    if plan.events.is_empty() {
        return Ok(());
    }
    let events: Vec<&InboundEvent> = plan.events.iter().map(|e| inbound[e.input]).collect();
    let row_ids: Vec<i64> = plan.events.iter().map(|e| e.id).collect();
    let dedupe: Vec<Option<&str>> = events.iter().map(|e| e.dedupe_key.as_deref()).collect();
    let senders: Vec<Option<&str>> = events.iter().map(|e| e.sender_event_id.as_deref()).collect();
    let sources: Vec<&str> = events.iter().map(|e| e.event.source.as_str()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event.name.as_str()).collect();
    let triggers: Vec<Option<&str>> = events.iter().map(|e| e.event.trigger.map(Trigger::as_str)).collect();
    let contact_ids: Vec<i64> = plan.events.iter().map(|e| ids[e.contact.0]).collect();
    let emails: Vec<Option<&str>> = events.iter().map(|e| e.identity.email.as_ref().map(|m| m.as_str())).collect();
    let codes: Vec<Option<&str>> = events.iter().map(|e| e.identity.client_code.as_ref().map(|k| k.as_str())).collect();
    let occurred: Vec<i64> = events.iter().map(|e| to_millis(e.event.occurred_at)).collect();
    let received: Vec<i64> = plan.events.iter().map(|e| to_millis(e.received_at)).collect();
    let bodies = events.iter().map(|e| stored_event::to_stored(&e.event)).collect::<Result<Vec<_>, _>>()?;
    let raws: Vec<String> = events.iter().map(|e| stored_event::raw_to_store(e)).collect();
    // No `ON CONFLICT`: a dedupe key another instance stored meanwhile is a unique
    // violation, which aborts the transaction (its `COMMIT` may already be on the wire)
    // and has the batch planned again, when it shows as a duplicate.
    p.push(
        "INSERT INTO events (id, dedupe_key, sender_event_id, source, name, trigger, contact_id,
                             email, client_code, occurred_at, received_at, event, raw)
         SELECT p, d, s, src, n, t, cid, em, cc, oc, ra, ev, raw
         FROM UNNEST($1::INT8[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::INT8[],
                     $8::TEXT[], $9::TEXT[], $10::INT8[], $11::INT8[], $12::TEXT[], $13::TEXT[])
              WITH ORDINALITY AS u(p, d, s, src, n, t, cid, em, cc, oc, ra, ev, raw, ord)
         ORDER BY ord",
        vec![
            Box::new(row_ids),
            Box::new(dedupe),
            Box::new(senders),
            Box::new(sources),
            Box::new(names),
            Box::new(triggers),
            Box::new(contact_ids),
            Box::new(emails),
            Box::new(codes),
            Box::new(occurred),
            Box::new(received),
            Box::new(bodies),
            Box::new(raws),
        ],
    );
    Ok(())
}

fn insert_history<'a>(p: &mut Pipeline<'a>, plan: &'a WritePlan, ids: &[i64]) {
    if plan.history.is_empty() {
        return;
    }
    let h = &plan.history;
    let contacts: Vec<i64> = h.iter().map(|h| ids[h.contact.0]).collect();
    let events: Vec<Option<&str>> = h.iter().map(|h| h.event_id.as_deref()).collect();
    let rules: Vec<Option<&str>> = h.iter().map(|h| h.change.rule_id.as_deref()).collect();
    let actions: Vec<Option<&str>> = h.iter().map(|h| h.change.cause_label()).collect();
    let fields: Vec<&str> = h.iter().map(|h| h.change.field.as_str()).collect();
    let befores: Vec<String> = h.iter().map(|h| h.change.before.to_string()).collect();
    let afters: Vec<String> = h.iter().map(|h| h.change.after.to_string()).collect();
    let at: Vec<i64> = h.iter().map(|h| to_millis(h.at)).collect();
    let versions: Vec<i64> = h.iter().map(|h| h.rule_version).collect();
    p.push(
        "INSERT INTO history (contact_id, event_id, rule_id, action_type, field, before, after, at, rule_version)
         SELECT c, e, r, a, f, b, af, at, v
         FROM UNNEST($1::INT8[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
                     $8::INT8[], $9::INT8[])
              WITH ORDINALITY AS t(c, e, r, a, f, b, af, at, v, ord)
         ORDER BY ord",
        vec![
            Box::new(contacts),
            Box::new(events),
            Box::new(rules),
            Box::new(actions),
            Box::new(fields),
            Box::new(befores),
            Box::new(afters),
            Box::new(at),
            Box::new(versions),
        ],
    );
}

fn insert_jobs<'a>(p: &mut Pipeline<'a>, plan: &'a WritePlan, ids: &[i64]) -> Result<(), StoreError> {
    if plan.jobs.is_empty() {
        return Ok(());
    }
    let j = &plan.jobs;
    let job_ids: Vec<&str> = j.iter().map(|j| j.id.as_str()).collect();
    let contacts: Vec<i64> = j.iter().map(|j| ids[j.contact.0]).collect();
    let events: Vec<Option<&str>> = j.iter().map(|j| j.event_id.as_deref()).collect();
    let rules: Vec<&str> = j.iter().map(|j| &*j.fired.rule_id).collect();
    let triggers: Vec<&str> = j.iter().map(|j| j.fired.trigger.as_str()).collect();
    let actions: Vec<&str> = j.iter().map(|j| j.fired.action_type.as_str()).collect();
    let configs: Vec<String> = j.iter().map(|j| j.fired.config.to_string()).collect();
    let delays: Vec<i32> = j.iter().map(|j| j.fired.delay_minutes as i32).collect();
    let dues: Vec<i64> = j.iter().map(|j| to_millis(j.due_at)).collect();
    let states: Vec<&str> = j.iter().map(|j| j.state.as_str()).collect();
    let errors: Vec<Option<&str>> = j.iter().map(|j| j.last_error.as_deref()).collect();
    let at: Vec<i64> = j.iter().map(|j| to_millis(j.at)).collect();
    let versions: Vec<i64> = j.iter().map(|j| j.rule_version).collect();
    let run_ids: Vec<Option<&str>> = j.iter().map(|j| j.run_id.as_deref()).collect();
    let transactional: Vec<bool> = j.iter().map(|j| j.fired.transactional).collect();
    let on_cap: Vec<Option<&str>> = j.iter().map(|j| crate::store::jobs::on_cap_column(j.fired.on_cap)).collect();
    let priorities: Vec<i32> = j.iter().map(|j| i32::from(j.fired.priority)).collect();
    let budgets: Vec<Option<i32>> = j.iter().map(|j| j.fired.max_per_day.and_then(|n| i32::try_from(n).ok())).collect();
    let skips = j
        .iter()
        .map(|j| crate::store::runs::skip_if_column(j.fired.skip_if.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    p.push(
        "INSERT INTO jobs (id, contact_id, event_id, rule_id, trigger, action_type, config, delay_minutes,
                           due_at, state, last_error, created_at, updated_at, rule_version,
                           run_id, skip_if, transactional, on_cap, priority, max_per_day)
         SELECT id, c, e, r, t, a, cfg, d, due, st, err, at, at, v, run, skip, tr, oc, pr, mpd
         FROM UNNEST($1::TEXT[], $2::INT8[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
                     $8::INT4[], $9::INT8[], $10::TEXT[], $11::TEXT[], $12::INT8[], $13::INT8[], $14::TEXT[],
                     $15::TEXT[], $16::BOOL[], $17::TEXT[], $18::INT4[], $19::INT4[])
              AS u(id, c, e, r, t, a, cfg, d, due, st, err, at, v, run, skip, tr, oc, pr, mpd)",
        vec![
            Box::new(job_ids),
            Box::new(contacts),
            Box::new(events),
            Box::new(rules),
            Box::new(triggers),
            Box::new(actions),
            Box::new(configs),
            Box::new(delays),
            Box::new(dues),
            Box::new(states),
            Box::new(errors),
            Box::new(at),
            Box::new(versions),
            Box::new(run_ids),
            Box::new(skips),
            Box::new(transactional),
            Box::new(on_cap),
            Box::new(priorities),
            Box::new(budgets),
        ],
    );
    let held: Vec<(&str, i64, &str, &str)> = j
        .iter()
        .filter_map(|j| {
            j.held.as_ref().map(|(status, reason)| (j.id.as_str(), to_millis(j.at), *status, reason.as_str()))
        })
        .collect();
    if !held.is_empty() {
        let ids: Vec<&str> = held.iter().map(|h| h.0).collect();
        let at: Vec<i64> = held.iter().map(|h| h.1).collect();
        let statuses: Vec<&str> = held.iter().map(|h| h.2).collect();
        let reasons: Vec<&str> = held.iter().map(|h| h.3).collect();
        p.push(
            "INSERT INTO job_attempts (job_id, started_at, duration_ms, status, response)
             SELECT id, at, 0, s, r FROM UNNEST($1::TEXT[], $2::INT8[], $3::TEXT[], $4::TEXT[]) AS u(id, at, s, r)",
            vec![Box::new(ids), Box::new(at), Box::new(statuses), Box::new(reasons)],
        );
    }
    Ok(())
}
