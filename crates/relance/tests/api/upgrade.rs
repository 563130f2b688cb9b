//! Upgrades: every fixture in fixtures/upgrade/ (a database written by an earlier release,
//! and what that release read back from it) opens with this build, migrates, reads back
//! the same contacts, history and pending jobs, and serves.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::common::{TestDb, on_postgres, spawn_on};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/upgrade");
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "at least one upgrade fixture");
    dirs
}

/// A fresh database holding the fixture, what the old release read from it on this
/// backend, and when it made it.
fn load(dir: &Path) -> (TestDb, Value, i64) {
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let backend = if on_postgres() { "postgres" } else { "sqlite" };
    let db = TestDb::fresh();
    match &db {
        TestDb::Sqlite { dir: tmp } => {
            std::fs::copy(dir.join("relance.db"), tmp.path().join("relance.db")).unwrap();
        }
        TestDb::Postgres { url } => {
            let out = Command::new("psql")
                .args([url.as_str(), "-q", "-v", "ON_ERROR_STOP=1", "-f"])
                .arg(dir.join("pg.sql"))
                .output()
                .expect("psql runs");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    (db, expected[backend].clone(), expected["made_at_ms"].as_i64().unwrap())
}

fn relance(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relance")).args(args).env("RELANCE_LOG", "warn").output().unwrap()
}

#[tokio::test]
async fn databases_made_by_earlier_releases_open_migrate_and_serve() {
    for dir in fixtures() {
        let (db, expected, made_at_ms) = load(&dir);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let made_at = Utc.timestamp_millis_opt(made_at_ms).unwrap();

        // The dry run names what would run and changes nothing.
        let dry = relance(&["migrate", "--dry-run", "--database", &db.url()]);
        let text = String::from_utf8_lossy(&dry.stdout).into_owned();
        assert!(dry.status.success(), "{name}: {}", String::from_utf8_lossy(&dry.stderr));
        let from = expected["schema"].as_u64().unwrap();
        assert!(text.contains(&format!("has schema {from}; `relance migrate` would run")), "{name}: {text}");
        let again = relance(&["migrate", "--dry-run", "--database", &db.url()]);
        assert_eq!(String::from_utf8_lossy(&again.stdout), text, "{name}: a dry run changes nothing");

        // Opened at the time it was made, dispatcher off: the state reads back unchanged.
        let app = spawn_on(db, made_at + Duration::seconds(5), |s| s.dispatch.enabled = false).await;
        for (email, want) in expected["contacts"].as_object().unwrap() {
            let got = app.get_json(&format!("/api/contacts/{email}")).await;
            let got = got.get("contact").unwrap_or(&got);
            for (field, value) in want.as_object().unwrap() {
                assert_eq!(&got[field], value, "{name}: {email}.{field}");
            }
        }
        assert_eq!(app.count("history"), expected["history_rows"].as_i64().unwrap(), "{name}: history");
        assert_eq!(app.count("events"), expected["events"].as_i64().unwrap(), "{name}: events");
        let jobs = app
            .db()
            .query_rows("SELECT rule_id, action_type, state, due_at FROM jobs ORDER BY due_at, rule_id, action_type");
        let want_jobs: Vec<Vec<String>> = expected["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                j.as_array().unwrap().iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).collect()
            })
            .collect();
        assert_eq!(jobs, want_jobs, "{name}: jobs");

        // It serves: an open scores on top of the old state, a redelivery of an old event
        // is still recognised, and an opted-out contact stays opted out.
        let anne = expected["contacts"]["anne@example.fr"]["score"].as_i64().unwrap();
        let answer = app
            .post_ok(
                "/webhook/email",
                &json!({"event": "opened", "email": "anne@example.fr", "message-id": "<after-upgrade@x>", "ts_event": made_at.timestamp() + 60}),
            )
            .await;
        assert_eq!(answer["contact"]["score"].as_i64().unwrap(), (anne + 5).min(100), "{name}: {answer}");
        let dup = app
            .post_ok(
                "/webhook/behavior",
                &json!({"email": "bruno@example.fr", "client_code": "CL002", "action": "purchase", "event_id": "order-1", "metadata": {"amount": 120}}),
            )
            .await;
        assert_eq!(dup["duplicate"], true, "{name}: {dup}");
        // Events stored by the old release answer to their UUIDs as before; new ones are
        // numbered by row id, and both kinds resolve from history rows and actions.
        assert_eq!(dup["event_id"].as_str().unwrap().len(), 36, "{name}: {dup}");
        let new_id = answer["event_id"].as_str().unwrap();
        assert!(new_id.parse::<i64>().unwrap() > expected["events"].as_i64().unwrap(), "{name}: {answer}");
        for who in ["anne@example.fr", "bruno@example.fr"] {
            let export = app.get_json(&format!("/api/contacts/{who}/export")).await;
            let ids: Vec<&str> =
                export["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
            assert!(!ids.is_empty(), "{name}: {export}");
            for h in export["history"].as_array().unwrap() {
                if let Some(id) = h["event_id"].as_str() {
                    assert!(ids.contains(&id), "{name}: {who}'s history names event {id}, not among {ids:?}");
                }
            }
            if who == "anne@example.fr" {
                assert!(ids.contains(&new_id) && ids.iter().any(|i| i.len() == 36), "{name}: {ids:?}");
            }
        }
        let chloe = app.get_json("/api/contacts/chloe@example.fr").await;
        assert_eq!(chloe["unsubscribed"], true, "{name}: {chloe}");
        let db = app.stop().await;

        // Two days on with the dispatcher: every job pending in the old release runs.
        let app = spawn_on(db, made_at + Duration::days(2), |_| {}).await;
        app.eventually("the old pending jobs ran", |a| a.count("jobs WHERE state = 'pending'") == 0).await;
        let still = relance(&["migrate", "--dry-run", "--database", &app.db().url()]);
        assert!(String::from_utf8_lossy(&still.stdout).contains("is up to date"), "{name}");
        app.stop().await;
    }
}
