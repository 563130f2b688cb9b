//! Follow-up sequences on the real server, on either backend, with the test clock: the
//! tasting follow-up of docs/rules.md ("Follow-up sequences"), its emails written out
//! rather than Brevo templates so that the outbox can send them.

use chrono::Duration;
use serde_json::{Value, json};

use crate::common::{TestApp, dashboard_html, spawn_app, spawn_on};

const TASTING: &str = r#"
[[rule]]
rule_id = "tasting_follow_up"
trigger = "form_submit"
priority = 70
[rule.conditions]
expression = "event.attributes.form == 'degustation'"
[rule.goal]
triggers = ["purchase"]
[rule.reentry]
policy = "once_per"
days = 30
[[rule.actions]]
action_type = "send_email"
config = { subject = "Notre dégustation", text_content = "Vous êtes invité." }
[[rule.actions]]
action_type = "send_email"
config = { subject = "Rappel", text_content = "Il reste des places." }
delay_minutes = 4320
skip_if = { triggers = ["email_clicked"] }
[[rule.actions]]
action_type = "create_task"
config = { task = "Appeler pour la dégustation" }
delay_minutes = 10080
skip_if = { expression = "contact.score >= 80" }

[[rule]]
rule_id = "click_in_tasting"
trigger = "email_clicked"
priority = 10
[rule.conditions]
in_run = "tasting_follow_up"
[[rule.actions]]
action_type = "add_tag"
config = { tag = "tasting_clicker" }
"#;

const EMAIL: &str = "anne@example.fr";

async fn put_rules(app: &TestApp, text: &str, query: &str) -> Value {
    let resp = app
        .client
        .put(format!("{}/api/rules{query}", app.base))
        .header("content-type", "application/toml")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn tasting_app() -> TestApp {
    let app = spawn_app().await;
    put_rules(&app, TASTING, "").await;
    app
}

async fn form(app: &TestApp) -> Value {
    let body = json!({"email": EMAIL, "action": "form_submit", "metadata": {"form": "degustation"}});
    app.post_ok("/webhook/behavior", &body).await
}

async fn brevo(app: &TestApp, event: &str) -> Value {
    let id = app.now().timestamp_millis();
    app.post_ok("/webhook/email", &json!({"event": event, "email": EMAIL, "message-id": format!("<m{id}@x>")})).await
}

async fn purchase(app: &TestApp) -> Value {
    app.post_ok("/webhook/behavior", &json!({"email": EMAIL, "action": "purchase", "metadata": {"amount": 40}})).await
}

/// `action_type:state` of the runs' steps, in due order.
fn steps(app: &TestApp) -> Vec<String> {
    app.query_strings(
        "SELECT action_type || ':' || state FROM jobs WHERE run_id IS NOT NULL ORDER BY due_at, action_type",
    )
}

fn reasons(app: &TestApp) -> Vec<String> {
    app.query_strings(
        "SELECT COALESCE(last_error, '-') FROM jobs WHERE run_id IS NOT NULL ORDER BY due_at, action_type",
    )
}

fn run_states(app: &TestApp) -> Vec<String> {
    app.query_strings("SELECT state || ':' || COALESCE(reason, '-') FROM runs ORDER BY started_at")
}

async fn settle(app: &TestApp, what: &str, want: &[&str]) {
    app.eventually(what, |a| steps(a) == want).await;
}

#[tokio::test]
async fn no_click_no_purchase_the_reminder_and_the_task_run() {
    let app = tasting_app().await;
    let answer = form(&app).await;
    assert_eq!(answer["runs"][0]["change"], "started", "{answer}");
    assert_eq!(answer["runs"][0]["rule_id"], "tasting_follow_up");
    let run_id = answer["runs"][0]["run_id"].as_str().unwrap().to_owned();
    assert!(answer["actions"].as_array().unwrap().iter().all(|a| a["run_id"] == run_id.as_str()));
    settle(&app, "the invite goes", &["send_email:done", "send_email:pending", "create_task:pending"]).await;
    app.advance(Duration::minutes(4321));
    settle(&app, "the reminder goes", &["send_email:done", "send_email:done", "create_task:pending"]).await;
    app.advance(Duration::days(4));
    settle(&app, "the task is created", &["send_email:done", "send_email:done", "create_task:done"]).await;
    app.eventually("the run completes", |a| run_states(a) == ["completed:every step ended"]).await;
    let contact = app.get_json(&format!("/api/contacts/{EMAIL}")).await;
    assert_eq!(contact["runs"][0]["state"], "completed", "{contact}");
    assert_eq!(contact["runs"][0]["steps"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_click_on_day_one_skips_the_reminder_and_the_task_still_runs() {
    let app = tasting_app().await;
    form(&app).await;
    app.advance(Duration::days(1));
    let click = brevo(&app, "click").await;
    let tagged = click["contact"]["tags"].as_array().unwrap().contains(&json!("tasting_clicker"));
    assert!(tagged, "in_run holds for a contact in the tasting run: {click}");
    app.advance(Duration::days(2) + Duration::minutes(1));
    settle(&app, "the reminder is skipped", &["send_email:done", "send_email:skipped", "create_task:pending"]).await;
    assert_eq!(reasons(&app)[1], "skip_if: email_clicked since the run started");
    let job_id = app.query_strings("SELECT id FROM jobs WHERE state = 'skipped'").remove(0);
    let job = app.get_json(&format!("/api/actions/{job_id}")).await;
    assert_eq!(job["action"]["reason"], "skip_if: email_clicked since the run started", "{job}");
    assert_eq!(job["action"]["state"], "skipped");
    assert_eq!(job["attempts"][0]["status"], "skipped", "the skip is recorded as an attempt");
    assert_eq!(run_states(&app), ["active:-"], "a skip does not end the run");
    app.advance(Duration::days(4));
    settle(&app, "the task is created", &["send_email:done", "send_email:skipped", "create_task:done"]).await;
    app.eventually("the run completes", |a| run_states(a) == ["completed:every step ended"]).await;
}

#[tokio::test]
async fn a_purchase_on_day_two_reaches_the_goal() {
    let app = tasting_app().await;
    form(&app).await;
    settle(&app, "the invite goes", &["send_email:done", "send_email:pending", "create_task:pending"]).await;
    app.advance(Duration::days(2));
    let bought = purchase(&app).await;
    assert_eq!(bought["runs"][0]["change"], "goal_reached", "{bought}");
    assert_eq!(bought["runs"][0]["reason"], "goal: purchase");
    assert_eq!(steps(&app), ["send_email:done", "send_email:cancelled", "create_task:cancelled"]);
    assert_eq!(reasons(&app)[1..], ["goal: purchase", "goal: purchase"]);
    assert_eq!(run_states(&app), ["goal_reached:goal: purchase"]);
    let runs = app.get_json("/api/rules/tasting_follow_up/runs?state=goal_reached").await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["steps"][1]["reason"], "goal: purchase");
    assert_eq!(app.get_json("/api/rules/tasting_follow_up/runs?state=active").await, json!([]));
    assert_eq!(app.get("/api/rules/tasting_follow_up/runs?state=done").await.status(), 400);
    // Nothing runs later.
    app.advance(Duration::days(8));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(steps(&app), ["send_email:done", "send_email:cancelled", "create_task:cancelled"]);
    let explained = app.get_json(&format!("/api/contacts/{EMAIL}/explain")).await;
    assert_eq!(explained["runs"][0]["reason"], "goal: purchase", "{explained}");
    // The dashboard: the rule's runs over 7 and 30 days, the contact's run with its steps.
    let rules = dashboard_html(&app, "", "/ui/rules").await;
    let table = &rules[rules.find("id=\"rule-runs-table\"").expect("the runs table")..];
    let row = &table[table.find("tasting_follow_up").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    assert!(row.contains("100 %"), "goal rate 1/1: {row}");
    let page = dashboard_html(&app, "", &format!("/ui/contacts/{EMAIL}")).await;
    let runs = &page[page.find("id=\"runs\"").expect("the runs card")..];
    assert!(runs.contains("goal_reached") && runs.contains("goal: purchase"), "{runs}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("relance_runs{rule_id=\"tasting_follow_up\",state=\"goal_reached\"} 1"), "{metrics}");
    assert!(metrics.contains("relance_run_changes_total{rule_id=\"tasting_follow_up\",change=\"goal_reached\"} 1"));
}

#[tokio::test]
async fn reentry_once_per_thirty_days() {
    let app = tasting_app().await;
    form(&app).await;
    app.advance(Duration::days(10));
    let again = form(&app).await;
    assert_eq!(again["runs"][0]["change"], "not_entered", "{again}");
    assert!(again["runs"][0]["reason"].as_str().unwrap().starts_with("reentry once_per 30 days"));
    assert_eq!(again["actions"], json!([]), "a refused firing writes nothing else");
    assert_eq!(app.count("runs"), 1);
    app.advance(Duration::days(21));
    let later = form(&app).await;
    assert_eq!(later["runs"][0]["change"], "started", "{later}");
    assert_eq!(app.count("runs"), 2);
}

#[tokio::test]
async fn an_unsubscribe_during_a_run_cancels_it() {
    let app = tasting_app().await;
    form(&app).await;
    settle(&app, "the invite goes", &["send_email:done", "send_email:pending", "create_task:pending"]).await;
    let out = brevo(&app, "unsubscribed").await;
    assert_eq!(out["runs"][0]["change"], "cancelled", "{out}");
    assert_eq!(run_states(&app), ["cancelled:unsubscribed"]);
    assert_eq!(steps(&app), ["send_email:done", "send_email:cancelled", "create_task:cancelled"]);
    app.advance(Duration::days(8));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.count("outbox"), 1, "only the invite was ever sent");
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_run_loses_nothing_and_runs_nothing_twice() {
    let app = tasting_app().await;
    form(&app).await;
    settle(&app, "the invite goes", &["send_email:done", "send_email:pending", "create_task:pending"]).await;
    app.advance(Duration::days(1));
    brevo(&app, "click").await;
    let now = app.now();
    let db = app.stop().await;
    let app = spawn_on(db, now, |_| {}).await;
    app.advance(Duration::days(7));
    settle(&app, "the rest of the run", &["send_email:done", "send_email:skipped", "create_task:done"]).await;
    app.eventually("the run completes", |a| run_states(a) == ["completed:every step ended"]).await;
    assert_eq!(app.count("outbox"), 2, "the invite and the task, once each");
}

#[tokio::test]
async fn removing_a_rule_leaves_its_runs_unless_asked() {
    let app = tasting_app().await;
    form(&app).await;
    let without = TASTING
        .split("[[rule]]\nrule_id = \"click_in_tasting\"")
        .next()
        .unwrap()
        .replace("rule_id = \"tasting_follow_up\"", "rule_id = \"other\"");
    let kept = put_rules(&app, &without, "").await;
    assert!(kept.get("runs_cancelled").is_none());
    assert_eq!(run_states(&app), ["active:-"], "the run goes on");
    let again = put_rules(&app, &without.replace("rule_id = \"other\"", "rule_id = \"another\""), "").await;
    assert!(again.get("runs_cancelled").is_none());
    put_rules(&app, TASTING, "").await;
    put_rules(&app, &without, "?cancel_removed_runs=true").await;
    assert_eq!(run_states(&app), ["cancelled:rule removed"]);
    let pending = app.count("jobs WHERE state = 'pending'");
    assert_eq!(pending, 0, "its steps are cancelled too");
}

#[tokio::test]
async fn sequence_errors_are_located_in_the_editor_too() {
    let app = spawn_app().await;
    let bad = TASTING.replace("days = 30\n", "").replace("delay_minutes = 4320\n", "");
    let resp = app
        .client
        .post(format!("{}/api/rules/validate", app.base))
        .header("content-type", "application/toml")
        .body(bad.clone())
        .send()
        .await
        .unwrap();
    let verdict: Value = resp.json().await.unwrap();
    assert_eq!(verdict["valid"], false);
    let errors = verdict["errors"].as_array().unwrap();
    let find = |path: &str| errors.iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("{path}: {verdict}"));
    let days = find("reentry.days");
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert_eq!(days["line"], line_of("[rule.reentry]"), "{days}");
    let skip = find("actions[1].skip_if");
    assert_eq!(skip["line"], line_of("skip_if = { triggers"), "{skip}");
    let unknown = TASTING.replace("triggers = [\"purchase\"]", "triggers = [\"purchased\"]");
    let resp = app
        .client
        .put(format!("{}/api/rules", app.base))
        .header("content-type", "application/toml")
        .body(unknown)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("goal.triggers[0]"), "{body}");
}
