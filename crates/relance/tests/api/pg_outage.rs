//! PostgreSQL stops in the middle of the load: no 5xx, no acknowledged event lost, and
//! the server recovers by itself when the database is back. It stops the shared test
//! cluster, so it is ignored by default and run alone by `scripts/test.sh`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

fn cluster(var: &str) {
    let cmd = std::env::var(var).unwrap_or_else(|_| panic!("{var} is set by scripts/with-postgres.sh"));
    let status = std::process::Command::new("sh").arg("-c").arg(&cmd).status().unwrap();
    assert!(status.success(), "{cmd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops the PostgreSQL test cluster; run alone by scripts/test.sh"]
async fn a_database_outage_is_429_then_recovery() {
    if !on_postgres() {
        eprintln!("skipped: needs scripts/with-postgres.sh");
        return;
    }
    let app = spawn_with(|s| s.dispatch.enabled = false).await;
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let statuses = Arc::new(Mutex::new(HashMap::<u16, usize>::new()));
    // Load runs until told to stop: three seconds after the database is back, however long
    // its restart took.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, url) = (app.client.clone(), format!("{}/webhook/behavior", app.base));
        let (acked, statuses, stop) = (acked.clone(), statuses.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let id = format!("o-{w}-{n}");
                let body = json!({"client_code": format!("C{}", n % 20), "action": "page_visit", "event_id": id});
                let status = client.post(&url).json(&body).send().await.unwrap().status().as_u16();
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                if status == 200 {
                    acked.lock().unwrap().push((id, Instant::now()));
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster("RELANCE_TEST_PG_STOP");
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster("RELANCE_TEST_PG_START");
    let restarted = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let statuses = statuses.lock().unwrap().clone();
    assert!(statuses.keys().all(|s| *s == 200 || *s == 429), "only 200 and 429: {statuses:?}");
    assert!(statuses.get(&429).copied().unwrap_or(0) > 0, "the outage was seen: {statuses:?}");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.iter().any(|(_, at)| *at < stopped), "load before the outage");
    assert!(
        acked.iter().any(|(_, at)| *at > restarted + Duration::from_millis(500)),
        "recovered after it: {statuses:?}"
    );
    let stored: HashMap<String, usize> =
        app.query_strings("SELECT sender_event_id FROM events").into_iter().fold(HashMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        });
    for (id, _) in &acked {
        assert_eq!(stored.get(id), Some(&1), "acknowledged {id} stored once");
    }
    eprintln!("outage test: {statuses:?}, {} acknowledged, all stored", acked.len());
    app.stop().await;
}
