//! Contact pressure, continued, on either backend with the test clock: the answer at
//! ingest tells the truth, priority decides a cap's last slot, a rule's daily budget.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use relance::config::Settings;
use relance_core::pressure::{CapSpec, Channel, Pressure, PressureSpec, QuietHoursSpec};
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, spawn_on};

const RULES: &str = r#"
[[rule]]
rule_id = "welcome"
trigger = "form_submit"
priority = 50
max_per_day = 2
[[rule.actions]]
action_type = "send_email"
config = { subject = "Bienvenue", text_content = "Merci !" }

[[rule]]
rule_id = "newsletter_nudge"
trigger = "email_opened"
priority = 20
[[rule.actions]]
action_type = "send_email"
config = { subject = "Notre lettre", text_content = "…" }
delay_minutes = 5

[[rule]]
rule_id = "vip_offer"
trigger = "email_opened"
priority = 80
[[rule.actions]]
action_type = "send_email"
config = { subject = "Offre VIP", text_content = "…" }
delay_minutes = 10
"#;

/// Noon in Paris on a winter Wednesday.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 14, 11, 0, 0).unwrap()
}

async fn app_at(now: DateTime<Utc>, caps: Vec<CapSpec>) -> TestApp {
    let app = spawn_on(TestDb::fresh(), now, |s: &mut Settings| {
        let spec = PressureSpec {
            timezone: Some("Europe/Paris".into()),
            quiet_hours: Some(QuietHoursSpec { start: "20:30".into(), end: "09:00".into() }),
            quiet_days: vec![],
            cap: caps,
        };
        s.dispatch.pressure = Arc::new(Pressure::parse(&spec).unwrap());
    })
    .await;
    let url = format!("{}/api/rules", app.base);
    let resp = app.client.put(url).header("content-type", "application/toml").body(RULES).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    app
}

fn email_cap(max: u32) -> Vec<CapSpec> {
    vec![CapSpec { channel: Channel::Email, max, per_days: 7 }]
}

/// The answer's actions of one event.
async fn actions(app: &TestApp, email: &str, action: &str) -> Vec<Value> {
    let answer = app.post_ok("/webhook/behavior", &json!({"email": email, "action": action})).await;
    answer["actions"].as_array().unwrap().clone()
}

async fn job(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/actions/{id}")).await["action"].clone()
}

async fn settled(app: &TestApp, id: &str, state: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.job_state(id) != state {
        if std::time::Instant::now() > deadline {
            panic!("job {id} is not {state}: {}", app.get_json(&format!("/api/actions/{id}")).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    job(app, id).await
}

fn job_id(action: &Value) -> String {
    action["job_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_answer_at_ingest_says_a_message_waits_for_quiet_hours_to_end() {
    // 21:00 in Paris: the welcome email cannot go now, and Power Automate is told so.
    let app = app_at(noon() + Duration::hours(9), email_cap(5)).await;
    let a = actions(&app, "anne@example.fr", "form_submit").await;
    assert_eq!(a[0]["status"], "deferred", "{a:?}");
    assert_eq!(a[0]["pressure"], "deferred: quiet hours");
    assert_eq!(a[0]["due_at"], "2026-01-15T08:00:00Z", "09:00 in Paris");
    let id = job_id(&a[0]);
    let j = job(&app, &id).await;
    assert_eq!((j["state"].as_str(), j["reason"].as_str()), (Some("pending"), Some("deferred: quiet hours")), "{j}");
    assert_eq!(app.count(&format!("job_attempts WHERE job_id = '{id}' AND status = 'deferred'")), 1);
    app.advance(Duration::hours(12));
    settled(&app, &id, "done").await;
}

#[tokio::test]
async fn the_higher_priority_rule_takes_the_last_slot() {
    let app = app_at(noon(), email_cap(1)).await;
    // Both rules fire on one open; the low-priority nudge is due first (5 minutes), the
    // VIP offer at 10. Both are due when the dispatcher next looks.
    let a = actions(&app, "anne@example.fr", "open").await;
    let id_of = |rule: &str| job_id(a.iter().find(|x| x["rule_id"] == rule).unwrap());
    let (vip, nudge) = (id_of("vip_offer"), id_of("newsletter_nudge"));
    app.advance(Duration::minutes(10));
    settled(&app, &vip, "done").await;
    // The nudge gives way: within one claim it is looked at after the offer (and meets
    // the full cap); in a claim of its own it yields the slot for a minute, then meets it.
    app.eventually("the nudge gave way", |a| {
        a.count(&format!("job_attempts WHERE job_id = '{nudge}' AND status = 'deferred'")) >= 1
    })
    .await;
    let first = app.query_strings(&format!(
        "SELECT response FROM job_attempts WHERE job_id = '{nudge}' AND status = 'deferred' ORDER BY id LIMIT 1"
    ));
    assert!(first[0].starts_with("deferred: cap: email 1/7d"), "{first:?}");
    app.advance(Duration::minutes(1));
    app.eventually("the nudge waits for the week", |a| {
        a.query_strings(&format!("SELECT last_error FROM jobs WHERE id = '{nudge}'")) == ["deferred: cap: email 1/7d"]
    })
    .await;
    let j = job(&app, &nudge).await;
    assert_eq!(j["state"], "pending", "{j}");
    assert_eq!(j["due_at"], "2026-01-21T11:10:00Z", "a week after the offer was sent");
    assert_eq!(app.count("jobs WHERE state = 'done'"), 1, "one email in the window");
}

#[tokio::test]
async fn a_rule_over_its_daily_budget_waits_for_the_next_morning() {
    let app = app_at(noon(), Vec::new()).await;
    let mut ids = Vec::new();
    for who in ["a", "b"] {
        let a = actions(&app, &format!("{who}@example.fr"), "form_submit").await;
        assert_eq!(a[0]["status"], "scheduled", "{a:?}");
        ids.push(job_id(&a[0]));
    }
    for id in &ids {
        settled(&app, id, "done").await;
    }
    // The third welcome of the day: the rule's budget is 2.
    let a = actions(&app, "c@example.fr", "form_submit").await;
    assert_eq!(a[0]["status"], "deferred", "{a:?}");
    assert_eq!(a[0]["pressure"], "deferred: budget: 2/day for the rule");
    assert_eq!(a[0]["due_at"], "2026-01-15T08:00:00Z", "the next day's quiet_hours.end in Paris");
    let third = job_id(&a[0]);
    app.advance(Duration::hours(21));
    settled(&app, &third, "done").await;
}

#[tokio::test]
async fn the_budget_is_checked_again_in_the_claim() {
    // Budget 2, three welcomes planned before any was sent: the answer says "scheduled"
    // for the first two and "deferred" for the third, counting the batch's own.
    let app = app_at(noon(), Vec::new()).await;
    let statuses: Vec<String> = {
        let mut out = Vec::new();
        for who in ["a", "b", "c"] {
            let a = actions(&app, &format!("{who}@example.fr"), "form_submit").await;
            out.push(a[0]["status"].as_str().unwrap().to_owned());
        }
        out
    };
    // Each answer counts what was sent, claimed or due when it was planned: the third
    // says it waits, whether or not the first two went yet.
    assert_eq!(statuses, ["scheduled", "scheduled", "deferred"]);
    app.eventually("two sent, one waits for tomorrow", |a| {
        a.count("jobs WHERE state = 'done'") == 2
            && a.query_strings("SELECT last_error FROM jobs WHERE state = 'pending'")
                == ["deferred: budget: 2/day for the rule"]
    })
    .await;
    let due = app.query_strings("SELECT due_at FROM jobs WHERE state = 'pending'");
    assert_eq!(due.len(), 1);
}

#[tokio::test]
async fn held_back_messages_show_on_the_dashboard_in_metrics_and_in_explain() {
    // 21:00 in Paris, one email a week: a welcome deferred by quiet hours at ingest, and
    // (once the first is sent) a nudge over the cap in the claim.
    let app = app_at(noon() + Duration::hours(9), email_cap(1)).await;
    let welcome = job_id(&actions(&app, "anne@example.fr", "form_submit").await[0]);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"relance_pressure_held{outcome="deferred",reason="quiet hours"} 1"#), "{metrics}");
    let e = app.get_json("/api/contacts/anne@example.fr/explain").await;
    let pending = &e["pending_actions"][0];
    assert_eq!((pending["id"].as_str(), pending["reason"].as_str()), (Some(&*welcome), Some("deferred: quiet hours")));
    // The morning: the welcome goes, and fills the week.
    app.advance(Duration::hours(12));
    settled(&app, &welcome, "done").await;
    let nudge = actions(&app, "anne@example.fr", "open").await;
    assert!(nudge.iter().all(|a| a["status"] == "scheduled"), "delayed steps are checked when due: {nudge:?}");
    app.advance(Duration::minutes(10));
    app.eventually("both opens' emails met the cap", |a| {
        a.count("job_attempts WHERE status = 'deferred' AND response LIKE 'deferred: cap%'") >= 2
    })
    .await;
    let page = crate::common::dashboard_html(&app, "", "/").await;
    assert!(page.contains("Messages held back by contact pressure"), "{page}");
    assert!(page.contains("quiet hours") && page.contains("cap: email 1/7d"), "{page}");
    let deferred = crate::common::dashboard_html(&app, "", "/ui/actions?state=deferred").await;
    assert_eq!(deferred.matches("deferred: cap: email 1/7d").count(), 2, "{deferred}");
    assert!(!deferred.contains(&welcome), "a job sent is not listed as deferred");
    let contact = crate::common::dashboard_html(&app, "", "/ui/contacts/anne@example.fr").await;
    assert!(contact.contains("email: <strong>1 of 1</strong> in 7 days"), "{contact}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"relance_pressure_held{outcome="deferred",reason="cap: email 1/7d"}"#), "{metrics}");
}

#[tokio::test]
async fn the_backtest_reports_what_pressure_would_hold_back() {
    let app = app_at(noon(), email_cap(1)).await;
    for _ in 0..3 {
        actions(&app, "anne@example.fr", "form_submit").await;
    }
    // The candidate skips over the cap instead of deferring.
    let candidate = RULES.replacen(
        "config = { subject = \"Bienvenue\", text_content = \"Merci !\" }",
        "config = { subject = \"Bienvenue\", text_content = \"Merci !\" }\non_cap = \"skip\"",
        1,
    );
    let r = app.client.post(format!("{}/api/simulate", app.base)).json(&json!({"rules": candidate})).send().await;
    let out: Value = r.unwrap().json().await.unwrap();
    let (live, cand) = (&out["report"]["live"]["pressure"], &out["report"]["candidate"]["pressure"]);
    assert_eq!((live["deferred"].as_i64(), live["skipped"].as_i64()), (Some(2), Some(0)), "{out}");
    assert_eq!(live["by_reason"]["deferred: cap: email 1/7d"], 2);
    assert_eq!((cand["deferred"].as_i64(), cand["skipped"].as_i64()), (Some(0), Some(2)), "{out}");
    assert_eq!(cand["by_reason"]["skipped: cap: email 1/7d"], 2);
}

#[tokio::test]
async fn quiet_hours_across_the_spring_change_and_the_deferred_filter() {
    // Saturday 28 March 2026, 21:00 CET; Paris moves to CEST that night: 09:00 CEST is 07:00 UTC.
    let app = app_at(Utc.with_ymd_and_hms(2026, 3, 28, 20, 0, 0).unwrap(), Vec::new()).await;
    let a = actions(&app, "anne@example.fr", "form_submit").await;
    assert_eq!(a[0]["due_at"], "2026-03-29T07:00:00Z", "{a:?}");
    let listed = app.get_json("/api/actions?state=deferred").await;
    assert_eq!(listed["actions"][0]["id"], a[0]["job_id"], "{listed}");
    assert_eq!(app.get_json("/api/actions?state=done").await["actions"].as_array().unwrap().len(), 0);
    let bad = app.get("/api/actions?state=later").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.json::<Value>().await.unwrap()["accepted"].as_array().unwrap().contains(&json!("deferred")));
    app.advance(Duration::hours(11)); // 07:00 UTC
    settled(&app, &job_id(&a[0]), "done").await;
}
