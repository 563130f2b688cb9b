//! On SQLite the server's Tokio threads and the writer run under `SCHED_BATCH`, so that
//! neither preempts the other when a request or a batch arrives (`src/sched.rs`); on
//! PostgreSQL the Tokio threads keep the default policy. Read from `/proc` of a real
//! `relance serve`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{TestDb, free_port, on_postgres, start_process};

/// The scheduling policy (field 41 of `stat`) of each thread of `pid` named `name` (the
/// Tokio workers and the blocking pool share theirs).
fn thread_policies(pid: u32, name: &str) -> Vec<u32> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
        policies.push(relance::sched::policy_of(&stat).expect("a policy field"));
    }
    policies
}

#[tokio::test]
async fn the_http_threads_and_the_sqlite_writer_run_under_batch_and_not_on_postgresql() {
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
        let policies = thread_policies(server.id(), "tokio-rt-worker");
        let batch = policies.iter().filter(|p| **p == 3).count();
        if on_postgres() || batch >= workers || Instant::now() > deadline {
            break policies;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let writer = thread_policies(server.id(), relance::store::sqlite::WRITER_THREAD);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(policies.len() >= workers, "one Tokio thread per core at least: {policies:?}");
    let batch = policies.iter().filter(|p| **p == 3).count();
    if on_postgres() {
        assert_eq!(batch, 0, "PostgreSQL: every Tokio thread keeps the default policy: {policies:?}");
        assert!(writer.is_empty(), "PostgreSQL has no writer thread: {writer:?}");
    } else {
        assert!(batch >= workers, "SQLite: every worker under SCHED_BATCH ({workers} workers): {policies:?}");
        assert_eq!(writer, [3], "SQLite: the one writer thread under SCHED_BATCH");
    }
}
