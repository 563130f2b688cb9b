//! The kill switch on the real server, on either backend: a paused rule fires nothing,
//! its pending jobs are held across a restart, and resume or cancel ends the hold.

use chrono::Duration;
use serde_json::{Value, json};

use crate::common::{TestApp, dashboard_html, spawn_app, spawn_on};

const RULES: &str = r#"
[[rule]]
rule_id = "form_later"
trigger = "form_submit"
priority = 50
[[rule.actions]]
action_type = "send_email"
config = { subject = "Merci", text_content = "À bientôt." }
delay_minutes = 60

[[rule]]
rule_id = "form_score"
trigger = "form_submit"
priority = 40
[[rule.actions]]
action_type = "update_score"
config = { score_delta = 5 }
"#;

async fn rules_app() -> TestApp {
    let app = spawn_app().await;
    let url = format!("{}/api/rules", app.base);
    let resp = app.client.put(url).header("content-type", "application/toml").body(RULES).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app
}

async fn form(app: &TestApp) -> Value {
    app.post_ok("/webhook/behavior", &json!({"email": "anne@example.fr", "action": "form_submit"})).await
}

async fn switch(app: &TestApp, rule: &str, what: &str) -> reqwest::Response {
    app.client.post(format!("{}/api/rules/{rule}/{what}", app.base)).send().await.unwrap()
}

#[tokio::test]
async fn a_paused_rule_fires_nothing_and_its_jobs_wait_through_a_restart() {
    let app = rules_app().await;
    let first = form(&app).await;
    let job_id = first["actions"][0]["job_id"].as_str().unwrap().to_owned();
    let paused: Value = switch(&app, "form_later", "pause").await.json().await.unwrap();
    assert_eq!(paused, json!({"rule_id": "form_later", "paused": true, "jobs": 1}));
    assert_eq!(app.job_state(&job_id), "held");
    let job = app.get_json(&format!("/api/actions/{job_id}")).await;
    assert_eq!(job["action"]["reason"], "held: rule paused", "{job}");

    // A firing of the paused rule creates nothing; the other rule still fires.
    let second = form(&app).await;
    assert_eq!(second["paused"], json!([{"rule_id": "form_later", "status": "paused"}]), "{second}");
    let fired: Vec<&str> =
        second["actions"].as_array().unwrap().iter().map(|a| a["rule_id"].as_str().unwrap()).collect();
    assert_eq!(fired, ["form_score"]);
    assert_eq!(app.count("jobs"), 1);

    // Due, but held; still held after a restart.
    app.advance(Duration::hours(2));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.job_state(&job_id), "held");
    let page = dashboard_html(&app, "", "/ui/rules").await;
    assert!(page.contains("paused since"), "the rules page shows the pause");
    let now = app.now();
    let db = app.stop().await;
    let app = spawn_on(db, now, |_| {}).await;
    let again = form(&app).await;
    assert_eq!(again["paused"][0]["rule_id"], "form_later", "the pause survives a restart");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.job_state(&job_id), "held");

    // Resume: the held job runs (it is past due), and the rule fires again.
    let resumed: Value = switch(&app, "form_later", "resume").await.json().await.unwrap();
    assert_eq!(resumed["jobs"], 1);
    app.eventually("the held job runs", |a| a.job_state(&job_id) == "done").await;
    let after = form(&app).await;
    assert!(after.get("paused").is_none(), "{after}");
    assert_eq!(after["actions"][0]["rule_id"], "form_later");
}

#[tokio::test]
async fn a_held_job_can_be_cancelled_and_an_unknown_rule_is_refused() {
    let app = rules_app().await;
    let first = form(&app).await;
    let job_id = first["actions"][0]["job_id"].as_str().unwrap().to_owned();
    assert_eq!(switch(&app, "form_later", "pause").await.status(), 200);
    let cancel = app.client.post(format!("{}/api/actions/{job_id}/cancel", app.base)).send().await.unwrap();
    assert_eq!(cancel.status(), 200, "{}", cancel.text().await.unwrap());
    assert_eq!(app.job_state(&job_id), "cancelled");
    let resumed: Value = switch(&app, "form_later", "resume").await.json().await.unwrap();
    assert_eq!(resumed["jobs"], 0, "a cancelled job stays cancelled");
    assert_eq!(switch(&app, "no_such_rule", "pause").await.status(), 404);
}
