//! Rules as versioned data through the API: validation, new versions, rollback, export,
//! and a change made on one instance reaching another.

use crate::common::*;
use serde_json::{Value, json};

const TOML_RULES: &str = r#"
[[rule]]
rule_id = "open_bonus"
trigger = "email_opened"
priority = 50
[[rule.actions]]
action_type = "update_score"
config = { score_delta = 20 }
"#;

#[tokio::test]
async fn rules_are_replaced_validated_versioned_and_rolled_back() {
    let app = spawn_app().await;
    let current = app.get_json("/api/rules").await;
    assert_eq!(current["version"], 1, "the defaults are stored as version 1");
    assert_eq!(current["rules"].as_array().unwrap().len(), 6);

    let put = |body: &'static str, content_type: &'static str| {
        let (client, url) = (app.client.clone(), format!("{}/api/rules", app.base));
        async move {
            let r = client.put(url).header("content-type", content_type).body(body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, bad) =
        put(r#"[{"rule_id": "x", "trigger": "opened", "priority": 0, "actions": []}]"#, "application/json").await;
    assert_eq!(status, 400);
    assert_eq!(bad["error"], "invalid_rules");
    let paths: Vec<&str> = bad["errors"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert!(paths.contains(&"trigger") && paths.contains(&"priority"), "{bad}");
    assert_eq!(app.get_json("/api/rules").await["version"], 1, "nothing changed");

    let (status, v2) = put(TOML_RULES, "application/toml").await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    let opened = app.post_ok("/webhook/behavior", &json!({"client_code": "R1", "action": "open"})).await;
    assert_eq!(opened["contact"]["score"], 70, "the new rule applies at once");
    assert_eq!(opened["actions"][0]["rule_id"], "open_bonus");
    let version: Vec<String> = app.query_strings("SELECT rule_version FROM history WHERE field = 'score'");
    assert_eq!(version, ["2"], "history records the rule-set version");

    let versions = app.get_json("/api/rules/versions").await;
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(
        (list[0]["version"].clone(), list[0]["active"].clone(), list[1]["active"].clone()),
        (json!(2), json!(true), json!(false))
    );

    let back = app.client.post(format!("{}/api/rules/versions/1/activate", app.base)).send().await.unwrap();
    assert_eq!(back.status(), 200);
    let opened = app.post_ok("/webhook/behavior", &json!({"client_code": "R2", "action": "open"})).await;
    assert_eq!(opened["contact"]["score"], 55, "rolled back to the seed rules");
    assert_eq!(
        app.client.post(format!("{}/api/rules/versions/99/activate", app.base)).send().await.unwrap().status(),
        404
    );

    let export: Value = app.get("/api/rules/export").await.json().await.unwrap();
    assert_eq!(export.as_array().unwrap().len(), 6);
    assert_eq!(export[0]["rule_id"], "rule_email_opened");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_change_reaches_another_instance() {
    let Some((a, b)) = two_instances().await else { return };
    let r = a
        .client
        .put(format!("{}/api/rules", a.base))
        .header("content-type", "application/toml")
        .body(TOML_RULES)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    b.eventually("instance B uses version 2", |app| {
        let (client, url) = (app.client.clone(), format!("{}/api/rules", app.base));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async { client.get(url).send().await.unwrap().json::<Value>().await.unwrap()["version"] == 2 })
        })
        .join()
        .unwrap()
    })
    .await;
    let opened = b.post_ok("/webhook/behavior", &json!({"client_code": "R9", "action": "open"})).await;
    assert_eq!(opened["contact"]["score"], 70);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn candidate_rules_are_backtested_against_history() {
    let app = spawn_app().await;
    for (i, amount) in [60, 150, 80, 70, 300].iter().enumerate() {
        let body = json!({"client_code": format!("B{}", i % 3), "email": format!("b{}@x.fr", i % 3), "action": "purchase",
                          "event_id": format!("b-{i}"), "metadata": {"amount": amount}});
        app.post_ok("/webhook/behavior", &body).await;
    }
    let stricter = RULES_STRICTER;
    let r =
        app.client.post(format!("{}/api/simulate", app.base)).json(&json!({"rules": stricter})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.unwrap();
    let report = &out["report"];
    assert_eq!(report["events"], 5);
    assert_eq!(report["live"]["actions"]["rule_purchase"]["send_email"], 5);
    assert_eq!(report["candidate"]["actions"]["rule_purchase"]["send_email"], 2, "only 150 and 300 pass > 100");
    assert!(report["emails_no_longer_sent"].as_i64().unwrap() >= 3, "{report}");
    assert!(report["contacts_ending_differently"].as_i64().unwrap() >= 1);
    assert_eq!(app.count("events"), 5, "no side effects");
    assert_eq!(app.get_json("/api/rules").await["version"], 1, "the live rules are untouched");

    let bad = app
        .client
        .post(format!("{}/api/simulate", app.base))
        .json(&json!({"rules": "[{\"rule_id\": 1}]"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"], "invalid_rules");

    let db = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stricter.json");
    std::fs::write(&file, stricter).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["simulate", "--against-history", "--rules", file.to_str().unwrap(), "--database", &db.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5 events, 3 contacts"), "{text}");
    assert!(text.contains("rule_purchase: 15 → 6 actions"), "{text}");
}

/// The seed rules with the purchase threshold at 100 instead of 50.
const RULES_STRICTER: &str = r#"[
 {"rule_id": "rule_email_opened", "trigger": "email_opened", "conditions": {"segment": ["Standard", "VIP"]},
  "actions": [{"action_type": "update_score", "config": {"score_delta": 5}, "delay_minutes": 0}], "enabled": true, "priority": 40},
 {"rule_id": "rule_purchase", "trigger": "purchase", "conditions": {"minimum_amount": 100},
  "actions": [{"action_type": "update_score", "config": {"score_delta": 50}, "delay_minutes": 0},
              {"action_type": "send_email", "config": {"template": "thank_you"}, "delay_minutes": 5},
              {"action_type": "create_task", "config": {"title": "Suivi"}, "delay_minutes": 1440}],
  "enabled": true, "priority": 90}
]"#;

/// The seed rules with the open bonus changed to `delta`, as a seed-JSON rules file.
fn seed_rules_with_open_bonus(delta: i64) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["rules", "export", "--defaults"])
        .output()
        .unwrap();
    let mut rules: Value = serde_json::from_slice(&out.stdout).unwrap();
    rules[0]["actions"][0]["config"]["score_delta"] = json!(delta);
    rules.to_string()
}

fn export(db: &TestDb, extra: &[&str]) -> (Value, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["rules", "export", "--database", &db.url()])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (serde_json::from_slice(&out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn rules_export_prints_the_rules_in_force_not_the_defaults() {
    let app = spawn_app().await;
    let resp = app
        .client
        .put(format!("{}/api/rules", app.base))
        .header("content-type", "application/json")
        .body(seed_rules_with_open_bonus(7))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Beside the running server: the active version, as the API exports it.
    let (printed, note) = export(app.db(), &[]);
    let api: Value = app.get("/api/rules/export").await.json().await.unwrap();
    assert_eq!(printed, api);
    assert_eq!(printed[0]["actions"][0]["config"]["score_delta"], 7);
    assert!(note.contains("version 2"), "{note}");
    let (defaults, _) = export(app.db(), &["--defaults"]);
    assert_eq!(defaults[0]["actions"][0]["config"]["score_delta"], 5);
    app.stop().await;

    // No database yet: the defaults, said so, and nothing created.
    if !on_postgres() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing.db");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
            .args(["rules", "export", "--database", &format!("sqlite://{}", missing.display())])
            .output()
            .unwrap();
        assert!(out.status.success());
        let rules: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rules.as_array().unwrap().len(), 6);
        assert!(String::from_utf8_lossy(&out.stderr).contains("built-in defaults"));
        assert!(!missing.exists(), "export must not create a database");
    }
}

async fn admin(app: &TestApp, path: &str) -> Value {
    let resp = app.client.get(format!("{}{path}", app.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    resp.json().await.unwrap()
}

async fn rules_page(app: &TestApp) -> String {
    dashboard_html(app, ADMIN_TOKEN, "/ui/rules").await
}

#[tokio::test]
async fn a_restart_with_an_unchanged_rules_file_keeps_the_dashboard_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.json");
    std::fs::write(&file, seed_rules_with_open_bonus(5)).unwrap();
    let with_file = |s: &mut relance::config::Settings| {
        with_tokens(s);
        s.rules = Some(file.clone());
    };
    let app = spawn_on(TestDb::fresh(), t0(), with_file).await;
    assert_eq!(admin(&app, "/api/rules").await["version"], 1);
    // The marketer changes the rules (through the API, as the dashboard's editor does).
    let resp = app
        .client
        .put(format!("{}/api/rules", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(seed_rules_with_open_bonus(7))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let db = app.stop().await;

    // Restart, same file: version 2 stays in force.
    let app = spawn_on(db, t0(), with_file).await;
    let rules = admin(&app, "/api/rules").await;
    assert_eq!(rules["version"], 2, "{rules}");
    assert!(!rules_page(&app).await.contains("rules-replaced"), "no banner: nothing was replaced");
    let db = app.stop().await;

    // The file changes: it is imported (v3), says it replaced v2, and the page offers to roll back.
    std::fs::write(&file, seed_rules_with_open_bonus(9)).unwrap();
    let app = spawn_on(db, t0(), with_file).await;
    let versions = admin(&app, "/api/rules/versions").await;
    let v3 = &versions["versions"][0];
    assert_eq!((v3["version"].as_i64(), v3["active"].as_bool()), (Some(3), Some(true)));
    assert_eq!(v3["replaced_version"], 2);
    assert!(v3["source"].as_str().unwrap().starts_with("file:"), "{v3}");
    assert_eq!(versions["versions"][1]["activated_via"], "api");
    let html = rules_page(&app).await;
    assert!(html.contains("rules-replaced") && html.contains("Roll back to version 2"), "{html}");
    let db = app.stop().await;

    // And the next restart, file unchanged, imports nothing more.
    let app = spawn_on(db, t0(), with_file).await;
    assert_eq!(admin(&app, "/api/rules").await["version"], 3);
    app.stop().await;
}

#[tokio::test]
async fn activation_is_monotonic_against_the_reloader() {
    // The reloader polls every few milliseconds; each PUT and rollback must stay in force
    // (a reload that read the database just before cannot put the older rules back).
    let app = spawn_with(|s| s.dispatch.poll_interval = std::time::Duration::from_millis(3)).await;
    let bodies = [seed_rules_with_open_bonus(7), seed_rules_with_open_bonus(9)];
    for round in 0..40 {
        let body = bodies[round % 2].clone();
        let resp = app
            .client
            .put(format!("{}/api/rules", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let saved: Value = resp.json().await.unwrap();
        let version = saved["version"].as_i64().unwrap();
        let expected = if round % 5 == 4 {
            let back = app.client.post(format!("{}/api/rules/versions/1/activate", app.base)).send().await.unwrap();
            assert_eq!(back.status(), 200);
            1
        } else {
            version
        };
        for pause_ms in [0, 4, 9] {
            tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
            assert_eq!(app.get_json("/api/rules").await["version"], expected, "round {round}, after {pause_ms} ms");
        }
    }
    app.stop().await;
}
