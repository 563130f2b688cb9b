//! The seed scenario under contact pressure (documented in `docs/rules.md`, "Contact
//! pressure"): the six default rules, the purchase thank-you marked transactional, two
//! emails and one call a week, quiet hours 20:30–09:00 in Paris. A customer clicks at
//! 18:55 and buys for 80 € at 19:00 on a winter Wednesday, crossing 80.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use relance::config::Settings;
use relance_core::RuleSet;
use relance_core::pressure::{CapSpec, Channel, Pressure, PressureSpec, QuietHoursSpec};
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, spawn_on};

/// 18:55 in Paris, Wednesday 14 January 2026.
fn afternoon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 14, 17, 55, 0).unwrap()
}

async fn seed_app() -> TestApp {
    let app = spawn_on(TestDb::fresh(), afternoon(), |s: &mut Settings| {
        let spec = PressureSpec {
            timezone: Some("Europe/Paris".into()),
            quiet_hours: Some(QuietHoursSpec { start: "20:30".into(), end: "09:00".into() }),
            quiet_days: vec![],
            cap: vec![
                CapSpec { channel: Channel::Email, max: 2, per_days: 7 },
                CapSpec { channel: Channel::Call, max: 1, per_days: 7 },
            ],
        };
        s.dispatch.pressure = Arc::new(Pressure::parse(&spec).unwrap());
    })
    .await;
    let mut specs = RuleSet::defaults().specs();
    let purchase = specs.iter_mut().find(|r| r.rule_id == "rule_purchase").unwrap();
    purchase.actions.iter_mut().find(|a| a.action_type.as_str() == "send_email").unwrap().transactional = true;
    let body = serde_json::to_string(&specs).unwrap();
    let url = format!("{}/api/rules", app.base);
    let resp = app.client.put(url).header("content-type", "application/json").body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    app
}

/// Each job: (rule, action, state, due_at, reason).
fn jobs(app: &TestApp) -> Vec<String> {
    app.query_strings(
        "SELECT rule_id || ' ' || action_type || ' ' || state || ' ' || COALESCE(last_error, '-') FROM jobs
         ORDER BY created_at, rule_id, action_type",
    )
}

async fn job_by(app: &TestApp, rule: &str, action: &str) -> Value {
    let id = app.query_strings(&format!(
        "SELECT id FROM jobs WHERE rule_id = '{rule}' AND action_type = '{action}' ORDER BY created_at LIMIT 1"
    ));
    app.get_json(&format!("/api/actions/{}", id[0])).await["action"].clone()
}

#[tokio::test]
async fn the_seed_afternoon_under_pressure() {
    let app = seed_app().await;
    let click = json!({"event": "click", "email": "claire@example.fr", "ts_epoch": afternoon().timestamp_millis()});
    app.post_ok("/webhook/email", &click).await;
    app.advance(Duration::minutes(5)); // 19:00
    let purchase = json!({"email": "claire@example.fr", "action": "purchase", "metadata": {"amount": 80}});
    let answer = app.post_ok("/webhook/behavior", &purchase).await;
    let status = |rule: &str, action: &str| {
        answer["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["rule_id"] == rule && a["action_type"] == action)
            .map(|a| a["status"].as_str().unwrap().to_owned())
    };
    // 50 + 15 (click) + 50 (purchase) crosses 80: the VIP offer fires at once.
    assert_eq!(answer["contact"]["score"], 100, "{answer}");
    assert_eq!(status("rule_high_score", "send_email").as_deref(), Some("scheduled"), "{answer}");
    assert_eq!(status("rule_purchase", "send_email").as_deref(), Some("scheduled"));
    // The VIP offer goes now; the thank-you at 19:05 (transactional: it passes anything).
    app.eventually("the VIP offer is sent", |a| {
        a.count("jobs WHERE rule_id = 'rule_high_score' AND state = 'done'") == 1
    })
    .await;
    app.advance(Duration::minutes(5));
    app.eventually("the thank-you is sent", |a| {
        a.count("jobs WHERE rule_id = 'rule_purchase' AND action_type = 'send_email' AND state = 'done'") == 1
    })
    .await;
    // The call, due at 21:00, falls in quiet hours: 09:00 the next morning.
    app.advance(Duration::minutes(115)); // 21:00
    app.eventually("the call is deferred", |a| {
        a.count("job_attempts WHERE status = 'deferred' AND response = 'deferred: quiet hours'") == 1
    })
    .await;
    let call = job_by(&app, "rule_high_score", "schedule_call").await;
    assert_eq!((call["state"].as_str(), call["due_at"].as_str()), (Some("pending"), Some("2026-01-15T08:00:00Z")));
    app.advance(Duration::hours(12)); // Thursday 09:00
    app.eventually("the call goes in the morning", |a| {
        a.count("jobs WHERE action_type = 'schedule_call' AND state = 'done'") == 1
    })
    .await;
    // The follow-up task (24 h after the purchase, Thursday 19:00) is the week's second
    // call: it waits until a week after the call.
    app.advance(Duration::hours(10)); // Thursday 19:00
    app.eventually("the task is deferred by the call cap", |a| {
        a.count("job_attempts WHERE status = 'deferred' AND response = 'deferred: cap: call 1/7d'") == 1
    })
    .await;
    let task = job_by(&app, "rule_purchase", "create_task").await;
    assert_eq!((task["state"].as_str(), task["due_at"].as_str()), (Some("pending"), Some("2026-01-22T08:00:00Z")));
    // Friday: a second purchase. Its thank-you goes although two emails went this week.
    app.advance(Duration::hours(22)); // Friday 17:00
    let again = app.post_ok("/webhook/behavior", &purchase).await;
    assert!(again["actions"].as_array().unwrap().iter().all(|a| a["rule_id"] != "rule_high_score"), "no new crossing");
    app.advance(Duration::minutes(5));
    app.eventually("the second thank-you is sent", |a| {
        a.count("jobs WHERE rule_id = 'rule_purchase' AND action_type = 'send_email' AND state = 'done'") == 2
    })
    .await;
    let all = jobs(&app);
    assert_eq!(all.iter().filter(|j| j.contains(" done ")).count(), 4, "{all:#?}");
}
