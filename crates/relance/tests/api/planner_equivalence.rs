//! The same random deliveries — both sources, redeliveries, identity linking, opt-outs,
//! purchases crossing the high-score threshold, delayed actions, follow-up runs (goals,
//! re-entry, skips, `in_run`) — given to
//! SQLite, to PostgreSQL (when `RELANCE_TEST_DATABASE_URL` names one) and to the planner's
//! store in memory: contacts (version included), history, jobs, runs and answers come out the
//! same; API edits in between too. Bounded: `RELANCE_PLANNER_CASES` cases (32 by default), each a few seconds at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use relance::live_rules::LiveRules;
use relance::store::jobs::{ClaimRequest, JobFilter};
use relance::store::{Clock, ContactFilter, ContactKey};
use relance_core::contact_update::ContactUpdate;
use relance_core::inbound::Identity;
use relance_core::plan::memory::{MemoryRules, MemoryStore};
use relance_core::{
    ActionType, BounceType, ClientCode, Email, Event, InboundEvent, RuleFormat, RuleSet, Source, Trigger,
};
use serde_json::{Value, json};

use crate::common::{TestDb, on_postgres, open_store_on, t0};

/// The six defaults plus a delayed internal action (a tag 30 minutes after a visit) and a
/// follow-up sequence (goal, re-entry, a skip on a trigger and one on the score).
fn rules() -> RuleSet {
    let mut specs: Vec<Value> = serde_json::from_str(&RuleSet::defaults().to_seed_json()).unwrap();
    specs.push(json!({
        "rule_id": "rule_visit_later", "trigger": "page_visit", "enabled": true, "priority": 5,
        "description": "a tag half an hour after a visit",
        "conditions": {},
        "actions": [{"action_type": "add_tag", "delay_minutes": 30, "config": {"tag": "returning"}}]
    }));
    specs.push(json!({
        "rule_id": "rule_form_follow_up", "trigger": "form_submit", "enabled": true, "priority": 60,
        "goal": {"triggers": ["purchase"]},
        "reentry": {"policy": "once_per", "days": 1},
        "actions": [
            {"action_type": "add_tag", "delay_minutes": 20, "config": {"tag": "followed"},
             "skip_if": {"triggers": ["email_clicked"]}},
            {"action_type": "send_email", "delay_minutes": 45, "config": {"template": "thank_you"},
             "skip_if": {"expression": "contact.score >= 60"}},
            {"action_type": "update_score", "delay_minutes": 70, "config": {"score_delta": 5}}
        ]
    }));
    specs.push(json!({
        "rule_id": "rule_click_in_run", "trigger": "email_clicked", "enabled": true, "priority": 3,
        "conditions": {"in_run": "rule_form_follow_up"},
        "actions": [{"action_type": "update_score", "config": {"score_delta": 7}}]
    }));
    RuleSet::parse(&serde_json::to_string(&specs).unwrap(), RuleFormat::Json).unwrap()
}

#[derive(Debug, Clone)]
struct Gen {
    who: usize,
    what: usize,
    amount: u32,
    key: Option<u8>,
}

#[derive(Debug, Clone)]
enum Step {
    Deliver(Vec<Gen>),
    /// Minutes pass; due delayed actions run.
    Wait(i64),
    /// The API edits a contact (CRM data, or an identity that may belong to another).
    Edit {
        who: usize,
        rfm: u8,
        email_of: Option<usize>,
    },
}

fn edit(who: usize, rfm: u8, email_of: Option<usize>) -> (Identity, ContactUpdate) {
    let (email, code) = WHO[who % WHO.len()];
    let key = match (code, email) {
        (Some(k), _) => Identity { email: None, client_code: Some(ClientCode::parse(k).unwrap()) },
        (None, e) => Identity { email: e.map(|e| Email::parse(e).unwrap()), client_code: None },
    };
    let email = email_of.and_then(|i| WHO[i % WHO.len()].0).map(|e| Email::parse(e).unwrap());
    (key, ContactUpdate { rfm_score: Some(f64::from(rfm) / 2.0), email, ..ContactUpdate::default() })
}

fn contact_key(identity: &Identity) -> ContactKey {
    match (&identity.client_code, &identity.email) {
        (Some(k), _) => ContactKey::ClientCode(k.clone()),
        (None, Some(e)) => ContactKey::Email(e.clone()),
        (None, None) => unreachable!("every identity in WHO has one"),
    }
}

/// Identities that overlap: an email alone, then with a code (linking), a code another
/// contact holds (left unlinked), and so on.
const WHO: &[(Option<&str>, Option<&str>)] = &[
    (Some("anne@example.fr"), None),
    (None, Some("CL1")),
    (Some("anne@example.fr"), Some("CL1")),
    (Some("bob@example.fr"), None),
    (Some("bob@example.fr"), Some("CL2")),
    (Some("carl@example.fr"), Some("CL1")),
    (None, Some("CL2")),
];

fn inbound(g: &Gen, at: DateTime<Utc>) -> InboundEvent {
    let (email, code) = WHO[g.who % WHO.len()];
    let (source, trigger, name) = match g.what % 8 {
        0 => (Source::Brevo, Trigger::EmailOpened, "opened"),
        1 => (Source::Brevo, Trigger::EmailClicked, "click"),
        2 => (Source::Brevo, Trigger::Unsubscribe, "unsubscribed"),
        3 => (Source::Brevo, Trigger::EmailBounce, "hard_bounce"),
        4 | 5 => (Source::Tracking, Trigger::Purchase, "purchase"),
        6 => (Source::Tracking, Trigger::PageVisit, "page_visit"),
        _ => (Source::Tracking, Trigger::FormSubmit, "form_submit"),
    };
    let mut event = Event::new(source, trigger, at);
    event.name = name.into();
    if trigger == Trigger::Purchase {
        event.amount = Some(f64::from(g.amount));
    }
    if trigger == Trigger::EmailBounce {
        event.bounce_type = Some(BounceType::Hard);
    }
    InboundEvent {
        identity: Identity {
            email: email.map(|e| Email::parse(e).unwrap()),
            client_code: code.map(|c| ClientCode::parse(c).unwrap()),
        },
        event,
        dedupe_key: g.key.map(|k| format!("key-{k}")),
        sender_event_id: None,
        recognised: true,
        raw: json!({"n": g.what}),
    }
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    let one = (0..WHO.len(), 0usize..8, 20u32..400, prop::option::weighted(0.4, 0u8..6))
        .prop_map(|(who, what, amount, key)| Gen { who, what, amount, key });
    let step = prop_oneof![
        4 => prop::collection::vec(one, 1..4).prop_map(Step::Deliver),
        1 => (1i64..90).prop_map(Step::Wait),
        1 => (0..WHO.len(), 0u8..9, prop::option::weighted(0.3, 0..WHO.len()))
            .prop_map(|(who, rfm, email_of)| Step::Edit { who, rfm, email_of }),
    ];
    prop::collection::vec(step, 1..14)
}

/// Everything compared, with ids replaced by what is stable across stores.
#[derive(Debug, PartialEq)]
struct Observed {
    answers: Vec<Value>,
    contacts: Vec<Value>,
    history: Vec<Value>,
    jobs: Vec<Value>,
    runs: Vec<Value>,
}

fn answer_json(a: &relance::store::IngestResult, first_seen: &mut Vec<String>) -> Value {
    let original = first_seen.iter().position(|id| *id == a.event_id);
    if original.is_none() {
        first_seen.push(a.event_id.clone());
    }
    let actions: Vec<Value> = a
        .actions
        .iter()
        .map(|r| json!({"fired": serde_json::to_value(&r.fired).unwrap(), "job": r.job_id.is_some()}))
        .collect();
    let runs: Vec<Value> = a.runs.iter().map(|r| json!([r.rule_id, r.change, r.reason])).collect();
    json!({
        "event": original.unwrap_or(first_seen.len() - 1),
        "duplicate": a.duplicate,
        "contact": serde_json::to_value(&a.contact).unwrap(),
        "actions": actions,
        "runs": runs,
    })
}

fn job_json(
    who: (Option<String>, Option<String>),
    rule: &str,
    action: &str,
    state: &str,
    due: DateTime<Utc>,
    error: Option<&str>,
    in_run: bool,
) -> Value {
    json!({"who": [who.0, who.1], "rule": rule, "action": action, "state": state, "due": due, "error": error,
           "in_run": in_run})
}

fn run_json(contact: Option<&str>, rule: &str, state: &str, reason: Option<&str>, started: DateTime<Utc>) -> Value {
    json!({"contact": contact, "rule": rule, "state": state, "reason": reason, "started": started})
}

async fn run_on_database(db: TestDb, steps: &[Step]) -> Observed {
    let now_ms = Arc::new(AtomicI64::new(t0().timestamp_millis()));
    let clock: Clock = {
        let now_ms = now_ms.clone();
        Arc::new(move || Utc.timestamp_millis_opt(now_ms.load(Ordering::SeqCst)).unwrap())
    };
    let store = open_store_on(&db, LiveRules::new(rules()), clock.clone()).await;
    let mut answers = Vec::new();
    let mut seen = Vec::new();
    for step in steps {
        match step {
            Step::Deliver(gens) => {
                let events = gens.iter().map(|g| inbound(g, clock())).collect();
                for a in store.ingest(events).await.unwrap() {
                    answers.push(answer_json(&a, &mut seen));
                }
            }
            Step::Wait(minutes) => {
                now_ms.fetch_add(minutes * 60_000, Ordering::SeqCst);
                // Every due job, one at a time in due order: internal ones carried out,
                // the others taken as sent (skips are decided in the claim).
                loop {
                    let all = ActionType::ALL.to_vec();
                    let lease = Duration::from_secs(60);
                    let claim = ClaimRequest { limit: 1, lease, action_types: all.clone(), pressure: None };
                    let Some(job) = store.claim_jobs(claim).await.unwrap().pop() else {
                        // A claim that only skipped answers nothing: more may be due.
                        match store.next_due(all).await.unwrap() {
                            Some(at) if at <= clock() => continue,
                            _ => break,
                        }
                    };
                    if job.action_type.is_internal() {
                        assert!(store.run_internal_job(job.id).await.unwrap());
                    } else {
                        assert!(store.finish_job(job.id, sent(clock())).await.unwrap());
                    }
                }
            }
            Step::Edit { who, rfm, email_of } => {
                let (key, update) = edit(*who, *rfm, *email_of);
                let audit =
                    relance::store::audit::Audit::cli("test", relance::store::audit::AuditKind::Contacts, "put");
                let outcome = match store.upsert_contact(contact_key(&key), update, audit).await {
                    Ok((_, created)) => json!({"created": created}),
                    Err(e) => json!({"refused": e.to_string()}),
                };
                answers.push(outcome);
            }
        }
    }
    let stored = store.list_contacts(ContactFilter { limit: 1000, ..ContactFilter::default() }).await.unwrap();
    let mut contacts = Vec::new();
    let mut history = Vec::new();
    for c in &stored {
        contacts.push(json!({"id": c.id, "version": c.version, "contact": serde_json::to_value(&c.contact).unwrap()}));
        let key = match (&c.contact.email, &c.contact.client_code) {
            (Some(e), _) => ContactKey::Email(e.clone()),
            (None, Some(k)) => ContactKey::ClientCode(k.clone()),
            (None, None) => continue,
        };
        for h in store.history(key, 10_000).await.unwrap() {
            history.push(json!({
                "contact": c.id, "rule": h.rule_id, "action": h.action_type, "field": h.field,
                "before": h.before, "after": h.after, "event": h.event_id.is_some(),
            }));
        }
    }
    let mut jobs: Vec<Value> = store
        .jobs(JobFilter { limit: 10_000, ..JobFilter::default() }, None)
        .await
        .unwrap()
        .iter()
        .map(|j| {
            let who = (j.contact_email.clone(), j.contact_client_code.clone());
            let (state, error) = (j.state.as_str(), j.last_error.as_deref());
            job_json(who, &j.rule_id, &j.action_type, state, j.due_at, error, j.run_id.is_some())
        })
        .collect();
    jobs.sort_by_key(|j| j.to_string());
    let all = relance::store::runs::RunFilter { limit: 10_000, ..Default::default() };
    let mut runs: Vec<Value> = store
        .runs(all, None)
        .await
        .unwrap()
        .iter()
        .map(|r| run_json(r.contact.as_deref(), &r.rule_id, r.state.as_str(), r.reason.as_deref(), r.started_at))
        .collect();
    runs.sort_by_key(|r| r.to_string());
    store.shutdown().await;
    Observed { answers, contacts, history, jobs, runs }
}

fn run_in_memory(steps: &[Step]) -> Observed {
    let engine = relance_core::Engine::new(rules());
    let rules = MemoryRules { engine: &engine, rule_version: 0, default_segment: "Standard" };
    let mut store = MemoryStore::default();
    let mut now = t0();
    let mut answers = Vec::new();
    let mut seen = Vec::new();
    for step in steps {
        match step {
            Step::Deliver(gens) => {
                let events: Vec<_> = gens.iter().map(|g| inbound(g, now)).collect();
                for a in store.ingest(&rules, &events, now).unwrap().answers {
                    answers.push(answer_json(&a, &mut seen));
                }
            }
            Step::Wait(minutes) => {
                now += chrono::Duration::minutes(*minutes);
                store.run_due(&rules, now, true).unwrap();
            }
            Step::Edit { who, rfm, email_of } => {
                let (key, update) = edit(*who, *rfm, *email_of);
                let outcome = match store.upsert(&rules, &key, update, now) {
                    Ok(created) => json!({"created": created}),
                    Err(e) => json!({"refused": relance::store::StoreError::from(e).to_string()}),
                };
                answers.push(outcome);
            }
        }
    }
    let contacts = store
        .contacts
        .iter()
        .map(|(id, c)| json!({"id": id, "version": c.version, "contact": serde_json::to_value(&c.contact).unwrap()}))
        .collect();
    // History in the order the database lists it: by contact, then as written.
    let mut history: Vec<(i64, usize, Value)> = store
        .history
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let v = json!({
                "contact": h.contact_id, "rule": h.change.rule_id.as_deref(),
                "action": h.change.cause_label(), "field": h.change.field.as_str(),
                "before": h.change.before, "after": h.change.after, "event": h.event_id.is_some(),
            });
            (h.contact_id, i, v)
        })
        .collect();
    history.sort_by_key(|(c, i, _)| (*c, *i));
    let mut jobs: Vec<Value> = store
        .jobs
        .iter()
        .map(|j| {
            let c = &store.contacts[&j.contact_id].contact;
            let who = (c.email.as_ref().map(|e| e.to_string()), c.client_code.as_ref().map(|k| k.to_string()));
            let (state, error) = (j.state.as_str(), j.last_error.as_deref());
            job_json(who, &j.rule_id, j.action_type.as_str(), state, j.due_at, error, j.run_id.is_some())
        })
        .collect();
    jobs.sort_by_key(|j| j.to_string());
    let mut runs: Vec<Value> = store
        .runs
        .iter()
        .map(|r| {
            let c = &store.contacts[&r.contact_id].contact;
            let who = c.email.as_ref().map(|e| e.to_string()).or_else(|| c.client_code.as_ref().map(|k| k.to_string()));
            run_json(who.as_deref(), &r.rule_id, r.state.as_str(), r.reason.as_deref(), r.started_at)
        })
        .collect();
    runs.sort_by_key(|r| r.to_string());
    let history = history.into_iter().map(|(_, _, v)| v).collect();
    Observed { answers, contacts, history, jobs, runs }
}

/// What the test takes a message job's send to be.
fn sent(at: DateTime<Utc>) -> relance::store::jobs::JobFinish {
    use relance::store::jobs::{Attempt, Finish, JobFinish};
    let attempt = Attempt { started_at: at, duration_ms: 0, status: "done".into(), http_status: None, response: None };
    JobFinish { finish: Finish::Done, error: None, attempt, outbox: None }
}

fn cases() -> u32 {
    std::env::var("RELANCE_PLANNER_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn both_backends_store_what_the_planner_plans(steps in arb_steps()) {
        let expected = run_in_memory(&steps);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let sqlite = rt.block_on(run_on_database(TestDb::Sqlite { dir: tempfile::tempdir().unwrap() }, &steps));
        prop_assert_eq!(&sqlite, &expected, "SQLite differs from the planner in memory");
        if on_postgres() {
            let pg = rt.block_on(run_on_database(TestDb::fresh(), &steps));
            prop_assert_eq!(&pg, &expected, "PostgreSQL differs from the planner in memory");
        }
    }
}
