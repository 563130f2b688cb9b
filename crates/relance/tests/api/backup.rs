//! `relance backup` / `relance restore` on the embedded database, against a server that
//! keeps ingesting while the copy is taken.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::common::{free_port, on_postgres, start_process};

fn relance(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relance")).args(args).env("RELANCE_LOG", "warn").output().unwrap()
}

fn sqlite_count(path: &std::path::Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_acknowledged_event() {
    if on_postgres() {
        return; // PostgreSQL is backed up with pg_dump (docs/reliability.md)
    }
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.db");
    let url = format!("sqlite://{}", live.display());
    let port = free_port();
    let mut server = start_process(&url, port, &[]);
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (acked, stop) = (acked.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 5_000 {
                let body = json!({"email": format!("c{}@example.fr", i % 200), "action": "page_visit", "event_id": format!("e{i}")});
                let resp = client.post(format!("http://127.0.0.1:{port}/webhook/behavior")).json(&body).send().await;
                if resp.is_ok_and(|r| r.status().is_success()) {
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                i += 1;
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 300 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before = acked.load(Ordering::SeqCst) as i64;
    let backup = dir.path().join("backup.db");
    let out = tokio::task::spawn_blocking({
        let (url, backup) = (url.clone(), backup.clone());
        move || relance(&["backup", "--database", &url, "--output", backup.to_str().unwrap()])
    })
    .await
    .unwrap();
    let during = acked.load(Ordering::SeqCst) as i64;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("events"), "{}", String::from_utf8_lossy(&out.stdout));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let after = acked.load(Ordering::SeqCst) as i64;
    assert!(after > during, "the server kept ingesting during and after the backup ({during} → {after})");

    // A backup never overwrites, and a served database is never restored over.
    let again = relance(&["backup", "--database", &url, "--output", backup.to_str().unwrap()]);
    assert!(!again.status.success());
    let refused = relance(&["restore", backup.to_str().unwrap(), "--database", &url, "--replace"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Restored into a fresh place: every event acknowledged before the backup began.
    let fresh = dir.path().join("restored").join("relance.db");
    std::fs::create_dir_all(fresh.parent().unwrap()).unwrap();
    let fresh_url = format!("sqlite://{}", fresh.display());
    let out = relance(&["restore", backup.to_str().unwrap(), "--database", &fresh_url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let events = sqlite_count(&fresh, "events");
    assert!(events >= before && events <= after, "{before} ≤ {events} ≤ {after}");
    assert_eq!(sqlite_count(&fresh, "contacts"), 200.min(events));
    // It serves: a restored database opens, migrates and answers.
    let port2 = free_port();
    let mut restored = start_process(&fresh_url, port2, &[]);
    let page: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port2}/api/contacts?limit=1")).await.unwrap().json().await.unwrap();
    assert!(page.to_string().contains("example.fr"), "{page}");
    restored.kill().unwrap();
    restored.wait().unwrap();
    // Restoring over an existing database needs --replace and keeps the old one.
    let no = relance(&["restore", backup.to_str().unwrap(), "--database", &fresh_url]);
    assert!(String::from_utf8_lossy(&no.stderr).contains("--replace"), "{}", String::from_utf8_lossy(&no.stderr));
    let yes = relance(&["restore", backup.to_str().unwrap(), "--database", &fresh_url, "--replace"]);
    assert!(yes.status.success(), "{}", String::from_utf8_lossy(&yes.stderr));
    let kept = std::fs::read_dir(fresh.parent().unwrap())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".before-restore-"))
        .count();
    assert_eq!(kept, 1);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test]
async fn serve_takes_scheduled_backups_and_keeps_the_newest() {
    if on_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relance.db");
    let config = dir.path().join("relance.toml");
    // Every 1.8 s, keeping two.
    std::fs::write(&config, "[backup]\nevery_hours = 0.0005\nkeep = 2\n").unwrap();
    let port = free_port();
    let mut server =
        start_process(&format!("sqlite://{}", db.display()), port, &["--config", config.to_str().unwrap()]);
    let body = json!({"email": "anne@example.fr", "action": "page_visit"});
    reqwest::Client::new().post(format!("http://127.0.0.1:{port}/webhook/behavior")).json(&body).send().await.unwrap();
    let backups = dir.path().join("backups");
    let listed = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> =
            std::fs::read_dir(&backups).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
        v.sort();
        v
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "three backups in 20 s: {seen:?}");
        let now = listed();
        // A new backup lands before the oldest is pruned: three for a moment at most.
        assert!(now.len() <= 3, "keep = 2: {now:?}");
        seen.extend(now);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let kept = listed();
    assert!(kept.len() <= 3 && kept.len() >= 2, "keep = 2 (one more if stopped mid-prune): {kept:?}");
    // The oldest kept one is complete (a kill can only interrupt the newest).
    let newest = kept.into_iter().next().unwrap();
    assert_eq!(sqlite_count(&newest, "events"), 1, "{}", newest.display());
}

/// The PostgreSQL commands docs/reliability.md gives: `pg_dump` beside the running server,
/// `pg_restore` into an empty database, and the restored database serves the same state.
#[tokio::test]
async fn pg_dump_and_pg_restore_carry_a_live_database() {
    if !on_postgres() {
        return; // SQLite has relance backup / restore (above)
    }
    let app = crate::common::spawn_app().await;
    for i in 0..20 {
        let body = json!({"email": format!("d{}@example.fr", i % 5), "action": "purchase", "event_id": format!("o{i}"), "metadata": {"amount": 40}});
        app.post_ok("/webhook/behavior", &body).await;
    }
    let before = app.get_json("/api/contacts/d1@example.fr").await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("relance.dump");
    let out = Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(app.db().url())
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (events, jobs) = (app.count("events"), app.count("jobs"));
    app.stop().await;

    let target = crate::common::TestDb::fresh();
    let out = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname"])
        .arg(target.url())
        .arg(&dump)
        .output()
        .expect("pg_restore runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = crate::common::spawn_on(target, crate::common::t0(), |s| s.dispatch.enabled = false).await;
    assert_eq!(restored.count("events"), events);
    assert_eq!(restored.count("jobs"), jobs);
    let after = restored.get_json("/api/contacts/d1@example.fr").await;
    assert_eq!(after["score"], before["score"]);
    assert_eq!(after["purchases"], before["purchases"]);
    // Still recognises what it already took.
    let again = restored
        .post_ok(
            "/webhook/behavior",
            &json!({"email": "d1@example.fr", "action": "purchase", "event_id": "o1", "metadata": {"amount": 40}}),
        )
        .await;
    assert_eq!(again["duplicate"], true, "{again}");
    restored.stop().await;
}
