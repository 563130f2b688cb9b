//! Crash test: the server as a child process under concurrent load, SIGKILL mid-way,
//! restart on the same file. Every event that got a 200 is there exactly once, and every
//! contact equals a replay of the stored events in commit order.
//!
//! Ignored by default (it builds and kills real processes); `scripts/test.sh` runs it, on
//! SQLite and on PostgreSQL.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use relance_core::{Contact, Engine, Event, RuleSet};
use serde_json::json;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(db: &str, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", db])
        .env("RELANCE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relance starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Sends events from `workers` tasks until `stop_after` elapses or the server dies;
/// returns the event ids that were acknowledged with 200.
async fn load(port: u16, round: usize, workers: usize, stop_after: Duration) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, acked) = (client.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while start.elapsed() < stop_after {
                n += 1;
                let id = format!("r{round}-w{w}-n{n}");
                let contact = format!("C{:03}", (w * 7919 + n * 31) % 40);
                let (action, amount) = match n % 5 {
                    0 => ("purchase", json!(40 + (n % 3) * 30)),
                    1 => ("open", json!(null)),
                    2 => ("page_visit", json!(null)),
                    3 => ("form_submit", json!(null)),
                    _ => ("click", json!(null)),
                };
                let body =
                    json!({"client_code": contact, "action": action, "event_id": id, "metadata": {"amount": amount}});
                match client.post(format!("http://127.0.0.1:{port}/webhook/behavior")).json(&body).send().await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                    Ok(r) => assert_eq!(r.status(), 429, "only 200 or 429 are acceptable answers"),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "spawns and kills server processes; run by scripts/test.sh"]
async fn sigkill_under_load_loses_nothing_acknowledged() {
    let test_db = common::TestDb::fresh();
    let url = test_db.url();
    let db = url.as_str();
    let mut acked = Vec::new();
    let cycles = std::env::var("RELANCE_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(3usize);
    for round in 0..cycles {
        let port = free_port();
        let mut child = start(db, port);
        let killer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300 + 97 * round as u64 % 400)).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        });
        acked.extend(load(port, round, 16, Duration::from_secs(5)).await);
        killer.await.unwrap();
    }
    // A last clean run proves the file opens and serves after the crashes.
    let port = free_port();
    let mut child = start(db, port);
    acked.extend(load(port, cycles, 4, Duration::from_millis(300)).await);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked.len() > 100, "the load was too light to mean anything: {}", acked.len());

    let mut stored: HashMap<String, i64> = HashMap::new();
    for id in test_db.query_strings("SELECT sender_event_id FROM events") {
        *stored.entry(id).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(stored.get(id), Some(&1), "acknowledged event {id} must be stored exactly once");
    }
    assert!(stored.values().all(|n| *n == 1), "no event is stored twice");
    assert_eq!(acked.iter().collect::<HashSet<_>>().len(), acked.len());

    // Replay in commit order (per contact, event ids follow commit order) and compare.
    let engine = Engine::new(RuleSet::defaults());
    let mut replayed: HashMap<i64, Contact> = HashMap::new();
    for row in test_db.query_rows("SELECT contact_id, event, received_at FROM events ORDER BY id") {
        let contact_id: i64 = row[0].parse().unwrap();
        let event: Event = serde_json::from_str(&row[1]).unwrap();
        let now = Utc.timestamp_millis_opt(row[2].parse().unwrap()).unwrap();
        let contact = replayed.entry(contact_id).or_insert_with(|| Contact::new(None, None, "Standard", now));
        *contact = engine.apply(contact, &event, now).contact;
    }
    let mut checked = 0;
    for row in test_db.query_rows("SELECT id, data FROM contacts") {
        let id: i64 = row[0].parse().unwrap();
        let stored: Contact = serde_json::from_str(&row[1]).unwrap();
        let replay = &replayed[&id];
        assert_eq!(stored.score, replay.score, "contact {id} score");
        assert_eq!(stored.tags, replay.tags, "contact {id} tags");
        assert_eq!(stored.purchases, replay.purchases, "contact {id} purchases");
        assert_eq!(stored.engagement, replay.engagement, "contact {id} engagement");
        checked += 1;
    }
    assert_eq!(checked, replayed.len());
    eprintln!("crash test: {cycles} SIGKILL cycles, {} acknowledged events, {checked} contacts replayed", acked.len());
}
