//! Retention on the real server, on either backend: raw payloads go after 90 days, finished
//! jobs after 180 with their attempts, rejected items after 90; events, history, pending and
//! held jobs stay; erasure still works on pruned data; `relance db stats` / `db prune`.

use std::process::Command;

use chrono::Duration;
use serde_json::{Value, json};

use crate::common::{TestApp, fixture, spawn_on, t0};

async fn retention_app() -> TestApp {
    spawn_on(crate::common::TestDb::fresh(), t0(), |s| {
        s.retention.every = std::time::Duration::from_millis(100);
        // Small batches: a pass takes several, as it does on a big database.
        s.retention.batch_size = 3;
        s.retention.pause = std::time::Duration::ZERO;
    })
    .await
}

async fn metric(app: &TestApp, line: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn old_data_goes_in_batches_and_what_explains_scores_stays() {
    let app = retention_app().await;
    for i in 0..4 {
        let email = format!("c{i}@example.fr");
        app.post_ok("/webhook/email", &json!({"event": "opened", "email": email, "message-id": format!("<m{i}@x>")}))
            .await;
        app.post_ok(
            "/webhook/behavior",
            &json!({"email": email, "action": "purchase", "event_id": format!("order-{i}"), "metadata": {"amount": 90}}),
        )
        .await;
    }
    let answer = app.post_ok("/webhook/email", &json!([fixture("soft_bounce"), {"event": "opened"}])).await;
    assert_eq!(answer["results"][1]["status"], "rejected");
    let (events, history) = (app.count("events"), app.count("history"));
    assert_eq!(events, 9);

    // Two days on every follow-up has run: finished jobs with attempts and outbox records.
    app.advance(Duration::days(2));
    app.eventually("every job ran", |a| a.count("jobs WHERE state IN ('pending', 'running', 'failed')") == 0).await;
    let finished = app.count("jobs");
    assert!(
        finished >= 8 && app.count("job_attempts") >= 8 && app.count("outbox") >= 4,
        "{finished} jobs: {:?}",
        app.job_states()
    );

    // A request to Brevo's contacts API, logged now, goes with the finished jobs.
    let now_ms = app.now().timestamp_millis();
    app.db().execute(&format!(
        "INSERT INTO brevo_sync_attempts (at, request, contacts, outcome, duration_ms)
         VALUES ({now_ms}, 'POST /contacts/batch', 3, 'done', 12)"
    ));

    // Day 91: raw payloads and the rejected item go; events, jobs and history stay.
    app.advance(Duration::days(89));
    app.eventually("raw payloads pruned", |a| a.count("events WHERE raw = 'null'") == events).await;
    app.eventually("rejected item pruned", |a| a.count("rejected_deliveries") == 0).await;
    assert_eq!(app.count("events"), events);
    assert_eq!(app.count("history"), history);
    assert_eq!(app.count("jobs"), finished);
    let page = app.get_json("/api/events?limit=3").await;
    let first = &page["events"][0];
    assert_eq!(first["raw"], Value::Null, "{first}");
    assert!(first["event_type"].is_string(), "the parsed event stays: {first}");
    assert!(metric(&app, "relance_retention_pruned_total{kind=\"raw_payloads\"}").await >= events as f64);

    // A new event keeps its payload; its follow-ups, held by a paused rule, never finish.
    app.post_ok(
        "/webhook/behavior",
        &json!({"email": "c0@example.fr", "action": "purchase", "event_id": "order-late", "metadata": {"amount": 90}}),
    )
    .await;
    let paused = app.client.post(format!("{}/api/rules/rule_purchase/pause", app.base)).send().await.unwrap();
    assert_eq!(paused.status(), 200);
    let held = app.count("jobs WHERE state = 'held'");
    assert!(held >= 1);
    let late_jobs = app.count("jobs") - finished;

    // Day 183: the finished jobs go with their attempts and outbox records; the held ones,
    // the events, their history and the new payload stay.
    app.advance(Duration::days(92));
    app.eventually("finished jobs pruned", |a| a.count("jobs") == late_jobs).await;
    assert_eq!(app.count("jobs WHERE state = 'held'"), held);
    assert_eq!(app.count("job_attempts WHERE job_id NOT IN (SELECT id FROM jobs)"), 0);
    assert_eq!(app.count("outbox WHERE job_id NOT IN (SELECT id FROM jobs)"), 0);
    assert_eq!(app.count("brevo_sync_attempts"), 0, "the Brevo request log is pruned like job attempts");
    assert_eq!(app.count("history"), app.count("history WHERE at > 0"));
    assert!(app.count("history") > history);
    assert_eq!(app.count("events"), events + 1);
    // The late purchase is now older than 90 days too.
    app.eventually("late payload pruned", |a| a.count("events WHERE raw = 'null'") == events + 1).await;

    // Erasure works on pruned data.
    let resp = app.client.delete(format!("{}/api/contacts/c1@example.fr", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["report"]["events_anonymised"], 2, "{report}");
    assert_eq!(app.count("events WHERE email = 'c1@example.fr'"), 0);
    app.stop().await;
}

fn relance(args: &[&str], config: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relance"));
    cmd.args(args).env("RELANCE_LOG", "warn").env_remove("RELANCE_CONFIG");
    if let Some(c) = config {
        cmd.env("RELANCE_CONFIG", c);
    }
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn db_stats_and_db_prune_from_the_command_line() {
    let app = spawn_on(crate::common::TestDb::fresh(), t0(), |s| s.dispatch.enabled = false).await;
    for i in 0..5 {
        app.post_ok("/webhook/behavior", &json!({"email": format!("s{i}@example.fr"), "action": "page_visit"})).await;
    }
    let db = app.stop().await;
    let url = db.url();

    let (ok, text) = relance(&["db", "stats", "--database", &url], None);
    assert!(ok, "{text}");
    let events = text.lines().find(|l| l.starts_with("events ")).unwrap_or_else(|| panic!("{text}"));
    assert!(events.contains(" 5 ") && events.contains("2026-03-02"), "{events}");
    assert!(text.contains("bytes per stored event"), "{text}");
    let (ok, json_text) = relance(&["db", "stats", "--database", &url, "--json"], None);
    assert!(ok, "{json_text}");
    let tables: Value = serde_json::from_str(&json_text).unwrap();
    let contacts = tables.as_array().unwrap().iter().find(|t| t["table"] == "contacts").unwrap();
    assert!(contacts["rows"] == 5 && contacts["bytes"].as_i64().unwrap() > 0, "{contacts}");

    // The events were received at t0 (March 2026); the command's clock is today's.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relance.toml");
    std::fs::write(&config, "[retention]\nraw_payload_days = 30\nevents_days = \"keep\"\n").unwrap();
    let (ok, text) = relance(&["db", "prune", "--database", &url], Some(&config));
    assert!(ok, "{text}");
    assert!(text.contains("raw_payloads: 5 pruned"), "{text}");
    assert_eq!(db.count("events WHERE raw = 'null'"), 5);
    assert_eq!(db.count("events"), 5);
    std::fs::write(&config, "[retention]\nevents_days = 0\n").unwrap();
    let (ok, text) = relance(&["db", "prune", "--database", &url], Some(&config));
    assert!(!ok && text.contains("events_days = 0"), "{text}");
}
