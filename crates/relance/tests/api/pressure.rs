//! Contact pressure on the real server, on either backend, with the test clock: quiet
//! hours in the contact's time zone, caps (defer and skip), transactional messages, and two
//! instances racing for a contact's last slot.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use relance::config::Settings;
use relance_core::pressure::{CapSpec, Channel, Pressure, PressureSpec, QuietHoursSpec};
use serde_json::{Value, json};

use crate::common::{TestApp, TestDb, spawn_on};

const RULES: &str = r#"
[[rule]]
rule_id = "form_welcome"
trigger = "form_submit"
priority = 50
[[rule.actions]]
action_type = "send_email"
config = { subject = "Bienvenue", text_content = "Merci !" }

[[rule]]
rule_id = "form_skip"
trigger = "page_visit"
priority = 40
[[rule.actions]]
action_type = "send_email"
config = { subject = "Vu", text_content = "Vous avez regardé." }
on_cap = "skip"

[[rule]]
rule_id = "open_later"
trigger = "email_opened"
priority = 30
[[rule.actions]]
action_type = "send_email"
config = { subject = "Plus tard", text_content = "…" }
delay_minutes = 10

[[rule]]
rule_id = "order_thanks"
trigger = "purchase"
priority = 90
[[rule.actions]]
action_type = "send_email"
config = { subject = "Merci pour votre commande", text_content = "…" }
transactional = true
"#;

fn governed(s: &mut Settings, max: u32) {
    let spec = PressureSpec {
        timezone: Some("Europe/Paris".into()),
        quiet_hours: Some(QuietHoursSpec { start: "20:30".into(), end: "09:00".into() }),
        quiet_days: vec![],
        cap: vec![CapSpec { channel: Channel::Email, max, per_days: 7 }],
    };
    s.dispatch.pressure = Arc::new(Pressure::parse(&spec).unwrap());
}

/// Noon in Paris on a winter Wednesday.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 14, 11, 0, 0).unwrap()
}

async fn app_at(now: DateTime<Utc>, max: u32) -> TestApp {
    let app = spawn_on(TestDb::fresh(), now, |s| governed(s, max)).await;
    put_rules(&app).await;
    app
}

async fn put_rules(app: &TestApp) {
    let url = format!("{}/api/rules", app.base);
    let resp = app.client.put(url).header("content-type", "application/toml").body(RULES).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

async fn send(app: &TestApp, email: &str, action: &str) -> String {
    let mut body = json!({"email": email, "action": action});
    if action == "purchase" {
        body["metadata"] = json!({"amount": 30});
    }
    let answer = app.post_ok("/webhook/behavior", &body).await;
    answer["actions"].as_array().unwrap().iter().find_map(|a| a["job_id"].as_str()).unwrap().to_owned()
}

async fn job(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/actions/{id}")).await["action"].clone()
}

async fn settled(app: &TestApp, id: &str, state: &str) -> Value {
    let id = id.to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while app.job_state(&id) != state {
        if std::time::Instant::now() > deadline {
            panic!("job {id} is not {state}: {}", app.get_json(&format!("/api/actions/{id}")).await);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // A deferral leaves the job pending with its reason: wait for that reason too.
    job(app, &id).await
}

async fn deferred(app: &TestApp, id: &str) -> Value {
    let id = id.to_owned();
    app.eventually("the job is deferred", |a| {
        a.query_strings(&format!("SELECT count(*) FROM job_attempts WHERE job_id = '{id}' AND status = 'deferred'"))
            == ["1"]
    })
    .await;
    job(app, &id).await
}

#[tokio::test]
async fn quiet_hours_in_paris_move_an_email_to_the_morning() {
    // 21:00 in Paris.
    let app = app_at(noon() + Duration::hours(9), 5).await;
    let id = send(&app, "anne@example.fr", "form_submit").await;
    let j = deferred(&app, &id).await;
    assert_eq!(j["state"], "pending");
    assert_eq!(j["reason"], "deferred: quiet hours", "{j}");
    assert_eq!(j["due_at"], "2026-01-15T08:00:00Z", "09:00 in Paris");
    app.advance(Duration::hours(12));
    let j = settled(&app, &id, "done").await;
    assert_eq!(j["attempts"], 1, "the deferral gave its attempt back");
}

#[tokio::test]
async fn quiet_hours_follow_the_contacts_time_zone() {
    // 12:00 UTC is noon-ish in Paris but 07:00 in Montreal.
    let app = app_at(noon() + Duration::hours(1), 5).await;
    let resp = app
        .client
        .put(format!("{}/api/contacts/bob@example.fr", app.base))
        .json(&json!({"attributes": {"timezone": "America/Montreal"}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let id = send(&app, "bob@example.fr", "form_submit").await;
    let j = deferred(&app, &id).await;
    assert_eq!(j["due_at"], "2026-01-14T14:00:00Z", "09:00 in Montreal: {j}");
    let paris = send(&app, "anne@example.fr", "form_submit").await;
    settled(&app, &paris, "done").await;
}

#[tokio::test]
async fn a_third_email_in_seven_days_waits_for_the_window_and_a_skip_is_recorded() {
    let app = app_at(noon(), 2).await;
    let first = send(&app, "anne@example.fr", "form_submit").await;
    settled(&app, &first, "done").await;
    app.advance(Duration::hours(1));
    let second = send(&app, "anne@example.fr", "form_submit").await;
    settled(&app, &second, "done").await;
    app.advance(Duration::hours(1));
    let third = send(&app, "anne@example.fr", "form_submit").await;
    let j = deferred(&app, &third).await;
    assert_eq!(j["reason"], "deferred: cap: email 2/7d", "{j}");
    assert_eq!(j["due_at"], "2026-01-21T11:00:00Z", "when the first send leaves the window");
    // on_cap = "skip": ends at once.
    let skipped = send(&app, "anne@example.fr", "page_visit").await;
    let j = settled(&app, &skipped, "skipped").await;
    assert_eq!(j["reason"], "cap: email 2/7d");
    // A transactional message goes through, and is not held by the cap.
    let thanks = send(&app, "anne@example.fr", "purchase").await;
    settled(&app, &thanks, "done").await;
    // The thank-you counts (it was sent): when the first leaves the window the third is
    // checked again and waits for the second to leave too, a week after it.
    app.advance(Duration::days(7) - Duration::hours(2));
    app.eventually("checked again when the first left", |a| {
        a.count(&format!("job_attempts WHERE job_id = '{third}' AND status = 'deferred'")) == 2
    })
    .await;
    assert_eq!(job(&app, &third).await["due_at"], "2026-01-21T12:00:00Z");
    app.advance(Duration::hours(1));
    settled(&app, &third, "done").await;
}

#[tokio::test]
async fn transactional_email_passes_quiet_hours() {
    let app = app_at(noon() + Duration::hours(10), 1).await;
    let thanks = send(&app, "anne@example.fr", "purchase").await;
    settled(&app, &thanks, "done").await;
}

#[tokio::test]
async fn two_instances_racing_for_the_last_slot_send_one_email() {
    if !crate::common::on_postgres() {
        return; // one SQLite file has one server: its single writer orders the claims
    }
    let db = TestDb::fresh();
    // One job per claim, so that the two instances claim different jobs of the contact
    // at the same moment rather than one taking them all.
    let one_at_a_time = |s: &mut Settings| {
        governed(s, 1);
        s.dispatch.concurrency = 1;
    };
    let a = spawn_on(db.shared(), noon(), one_at_a_time).await;
    let b = spawn_on(db, noon(), one_at_a_time).await;
    put_rules(&a).await;
    // Eight jobs for one contact, due at the same moment on both instances' clocks
    // (stored through A: B picks up new rules on its next poll, the race is the claim).
    for _ in 0..8 {
        send(&a, "anne@example.fr", "open").await;
    }
    a.advance(Duration::minutes(10));
    b.advance(Duration::minutes(10));
    a.eventually("every job is done or deferred", |app| {
        let states = app.query_strings("SELECT state || ':' || COALESCE(last_error, '-') FROM jobs ORDER BY id");
        states.len() == 8 && states.iter().all(|s| s.starts_with("done") || s.contains("deferred: cap"))
    })
    .await;
    assert_eq!(a.count("jobs WHERE state = 'done'"), 1, "exactly one email in the window");
    a.eventually("its outbox record", |app| app.count("outbox") == 1).await;
}
