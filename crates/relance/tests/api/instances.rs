//! Several instances on one PostgreSQL database (skipped on SQLite): no lost update, no
//! event twice, every job run once.

use std::collections::HashMap;
use std::sync::Arc;

use crate::common::*;
use chrono::{TimeZone, Utc};
use relance_core::{Contact, Engine, RuleSet};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_database_without_losing_an_update() {
    let Some((a, b)) = two_instances().await else { return };

    // 10,000 events for 100 contacts, in arrays of 10 (several contacts per array, so
    // that lock ordering matters), sent 32 at a time, alternating between the instances.
    let actions = ["open", "page_visit", "purchase", "form_submit", "click"];
    let gate = Arc::new(Semaphore::new(32));
    let mut sends = Vec::new();
    for request in 0..1000usize {
        let events: Vec<Value> = (0..10)
            .map(|i| {
                let n = request * 10 + i;
                let contact = (n * 37) % 100;
                json!({
                    "client_code": format!("C{contact:03}"),
                    "email": format!("c{contact:03}@exemple.fr"),
                    "action": actions[n % actions.len()],
                    "event_id": format!("ev-{n}"),
                    "metadata": {"amount": 30 + (n % 5) * 20},
                })
            })
            .collect();
        let app = if request % 2 == 0 { &a } else { &b };
        let (client, url, gate) = (app.client.clone(), format!("{}/webhook/behavior", app.base), gate.clone());
        sends.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            let r = client.post(url).json(&events).send().await.unwrap();
            r.status().as_u16()
        }));
    }
    for s in sends {
        assert_eq!(s.await.unwrap(), 200);
    }

    let store = a.db();
    assert_eq!(store.count("events"), 10_000);
    assert_eq!(store.count("contacts"), 100);

    // Replaying every contact's events in commit order gives the stored contact.
    let engine = Engine::new(RuleSet::defaults());
    let mut replayed: HashMap<i64, Contact> = HashMap::new();
    for row in store.query_rows(&format!("SELECT contact_id, received_at, {EVENT_COLUMNS} FROM events ORDER BY id")) {
        let id: i64 = row[0].parse().unwrap();
        let event = stored_event(&row[2..]);
        let now = Utc.timestamp_millis_opt(row[1].parse().unwrap()).unwrap();
        let c = replayed.entry(id).or_insert_with(|| Contact::new(None, None, "Standard", now));
        *c = engine.apply(c, &event, now).contact;
    }
    for row in store.query_rows("SELECT id, data FROM contacts") {
        let id: i64 = row[0].parse().unwrap();
        let stored: Contact = serde_json::from_str(&row[1]).unwrap();
        assert_eq!(stored.score, replayed[&id].score, "contact {id}");
        assert_eq!(stored.purchases, replayed[&id].purchases, "contact {id}");
        assert_eq!(stored.engagement, replayed[&id].engagement, "contact {id}");
        assert_eq!(stored.tags, replayed[&id].tags, "contact {id}");
    }

    // Both dispatchers ran the due jobs (the VIP offers); each exactly once.
    a.eventually("due jobs done", |app| {
        app.count(&format!(
            "jobs WHERE due_at <= {} AND state IN ('pending', 'running', 'failed')",
            t0().timestamp_millis()
        )) == 0
    })
    .await;
    let due_done = store.count(&format!("jobs WHERE due_at <= {} AND state = 'done'", t0().timestamp_millis()));
    assert!(due_done > 0);
    assert_eq!(store.count("outbox"), due_done, "one outbox record per job");
    let twice = store.query_strings("SELECT job_id FROM job_attempts GROUP BY job_id HAVING count(*) > 1");
    assert!(twice.is_empty(), "jobs attempted twice: {twice:?}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_based_occurrence_fires_once_across_instances() {
    if !on_postgres() {
        eprintln!("skipped: needs RELANCE_TEST_DATABASE_URL=postgres://… (scripts/with-postgres.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.json");
    std::fs::write(
        &rules,
        r#"[{"rule_id": "dormant", "trigger": "time_based", "priority": 50, "schedule": "daily 09:00", "timezone": "UTC",
             "conditions": {"min_days_since_activity": 30},
             "actions": [{"action_type": "add_tag", "config": {"tag": "dormant"}}]}]"#,
    )
    .unwrap();
    let before = Utc.with_ymd_and_hms(2026, 3, 2, 8, 59, 50).unwrap();
    let db = TestDb::fresh();
    let (r1, r2) = (rules.clone(), rules.clone());
    let a = spawn_on(db.shared(), before, move |s| s.rules = Some(r1)).await;
    let b = spawn_on(db, before, move |s| s.rules = Some(r2)).await;
    for i in 0..50 {
        let url = format!("{}/api/contacts/D{i:02}", a.base);
        assert!(a.client.put(url).json(&json!({"segment": "Standard"})).send().await.unwrap().status().is_success());
    }
    a.advance(chrono::Duration::seconds(11));
    b.advance(chrono::Duration::seconds(11));
    a.eventually("the occurrence ran", |app| app.count("schedule_runs WHERE finished_at IS NOT NULL") == 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(a.count("events WHERE source = 'scheduler'"), 50, "one event per contact, from one instance");
    assert_eq!(a.count("history WHERE field = 'tag'"), 50);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_sent_to_both_instances_at_once_is_stored_once() {
    let Some((a, b)) = two_instances().await else { return };

    // Each array of 5 events goes to both instances at the same moment: one of them
    // stores it, the other finds the first's rows (its batch met the dedupe key's
    // constraint and was planned again) and answers duplicates.
    let mut sends = Vec::new();
    for request in 0..200usize {
        let events: Vec<Value> = (0..5)
            .map(|i| {
                let n = request * 5 + i;
                json!({"client_code": format!("C{:03}", n % 50), "action": "page_visit", "event_id": format!("ev-{n}")})
            })
            .collect();
        for app in [&a, &b] {
            let (client, url, events) = (app.client.clone(), format!("{}/webhook/behavior", app.base), events.clone());
            sends.push(tokio::spawn(async move {
                let r = client.post(url).json(&events).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.json::<Value>().await.unwrap()
            }));
        }
    }
    let mut duplicates = 0;
    for s in sends {
        let answer = s.await.unwrap();
        duplicates += answer["results"].as_array().unwrap().iter().filter(|r| r["duplicate"] == true).count();
    }
    assert_eq!(a.db().count("events"), 1000, "every event once");
    assert_eq!(duplicates, 1000, "and each second copy answered as a duplicate");
    let visits = a.db().query_strings("SELECT data FROM contacts");
    let total: u32 = visits.iter().map(|d| serde_json::from_str::<Contact>(d).unwrap().engagement.page_visits).sum();
    assert_eq!(total, 1000, "each visit counted once");
    a.stop().await;
    b.stop().await;
}
