//! On SQLite the server's Tokio threads run under `SCHED_BATCH`, so that a request
//! arriving does not preempt the writer in the middle of a batch (`src/sched.rs`); on
//! PostgreSQL they keep the default policy. Read from `/proc` of a real `relance serve`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{TestDb, free_port, on_postgres, start_process};

/// The scheduling policy (field 41 of `stat`) of each Tokio thread of `pid` (workers and
/// the blocking pool share the name).
fn runtime_thread_policies(pid: u32) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "tokio-rt-worker" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        policies.push(relance::sched::policy_of(&stat).expect("a policy field"));
    }
    policies
}

#[tokio::test]
async fn the_http_threads_yield_to_the_sqlite_writer_and_not_to_postgresql() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let db = TestDb::fresh();
    let port = free_port();
    let mut server = start_process(&db.url(), port, &[]);
    let client = reqwest::Client::new();
    // Each worker moves itself as it next wakes (requests wake them); threads of the
    // blocking pool as they start, so one started earlier may still be idle.
    let workers = std::thread::available_parallelism().unwrap().get();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let policies = loop {
        for _ in 0..8 {
            n += 1;
            let event = json!({"email": format!("visitor{n}@example.fr"), "action": "page_visit"});
            let sent = client.post(format!("http://127.0.0.1:{port}/webhook/behavior")).json(&event).send().await;
            assert!(sent.unwrap().status().is_success());
        }
        let policies = runtime_thread_policies(server.id());
        let batch = policies.iter().filter(|p| **p == 3).count();
        if on_postgres() || batch >= workers || Instant::now() > deadline {
            break policies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(policies.len() >= workers, "one Tokio thread per core at least: {policies:?}");
    let batch = policies.iter().filter(|p| **p == 3).count();
    if on_postgres() {
        assert_eq!(batch, 0, "PostgreSQL: every Tokio thread keeps the default policy: {policies:?}");
    } else {
        assert!(batch >= workers, "SQLite: every worker under SCHED_BATCH ({workers} workers): {policies:?}");
    }
}
