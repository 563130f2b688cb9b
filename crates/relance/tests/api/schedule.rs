//! Time-based rules: once per occurrence per matching contact, across restarts.

use crate::common::*;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

const RULES: &str = r#"[
  {"rule_id": "winback_churn", "trigger": "time_based", "priority": 50, "schedule": "daily 09:00",
   "timezone": "Europe/Paris",
   "description": "Win back Churn contacts with no purchase for 180 days",
   "conditions": {"segment": ["Churn"], "min_days_since_purchase": 180},
   "actions": [{"action_type": "send_email", "config": {"template": "thank_you", "subject": "Vous nous manquez"}},
               {"action_type": "add_tag", "config": {"tag": "winback"}}]}
]"#;

#[tokio::test]
async fn winback_fires_once_per_occurrence_for_matching_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, RULES).unwrap();
    // 08:00 UTC on 2 March 2026 is 09:00 in Paris; start 30 s before it.
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 7, 59, 30).unwrap();
    let rp = rules_path.clone();
    let app = spawn_on(TestDb::fresh(), start, move |s| s.rules = Some(rp)).await;
    let put = |key: &str, body: serde_json::Value| {
        let (client, url) = (app.client.clone(), format!("{}/api/contacts/{key}", app.base));
        async move { assert!(client.put(url).json(&body).send().await.unwrap().status().is_success()) }
    };
    let long_ago = (start - Duration::days(200)).to_rfc3339();
    let recently = (start - Duration::days(20)).to_rfc3339();
    put("CH1", json!({"email": "ch1@x.fr", "segment": "Churn", "purchases": 2, "last_purchase_at": long_ago})).await;
    put("CH2", json!({"email": "ch2@x.fr", "segment": "Churn", "purchases": 1, "last_purchase_at": recently})).await;
    put("ST1", json!({"email": "st1@x.fr", "segment": "Standard", "purchases": 4, "last_purchase_at": long_ago})).await;
    put("CH3", json!({"email": "ch3@x.fr", "segment": "Churn"})).await;

    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(app.count("schedule_runs"), 0, "not 09:00 in Paris yet");
    app.advance(Duration::seconds(31));
    app.eventually("the 09:00 run finished", |a| {
        a.query_strings("SELECT rule_id FROM schedule_runs WHERE finished_at IS NOT NULL").len() == 1
    })
    .await;
    let fired = app.query_strings("SELECT client_code FROM events WHERE source = 'scheduler' ORDER BY client_code");
    assert_eq!(fired, ["CH1"], "only the Churn contact without purchase for 180 days");
    let c = app.get_json("/api/contacts/CH1").await;
    assert!(c["tags"].as_array().unwrap().contains(&json!("winback")));
    let job = app.query_strings("SELECT rule_id || ':' || action_type || ':' || state FROM jobs");
    assert_eq!(job.len(), 1, "{job:?}");
    assert!(job[0].starts_with("winback_churn:send_email:"), "{job:?}");

    // Later the same day: nothing more. After a restart: nothing more.
    app.advance(Duration::minutes(20));
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let now = app.now();
    let db = app.stop().await;
    let rp = rules_path.clone();
    let app = spawn_on(db, now, move |s| s.rules = Some(rp)).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.count("events WHERE source = 'scheduler'"), 1);

    // The next day's occurrence fires again for whoever still matches.
    app.advance(Duration::days(1));
    app.eventually("second occurrence", |a| {
        a.query_strings("SELECT rule_id FROM schedule_runs WHERE finished_at IS NOT NULL").len() == 2
    })
    .await;
    assert_eq!(app.count("events WHERE source = 'scheduler'"), 2);
    let keys = app.query_strings("SELECT dedupe_key FROM events WHERE source = 'scheduler' ORDER BY id");
    assert!(keys[0].starts_with("time:winback_churn:") && keys[0] != keys[1]);
    app.stop().await;
}

#[tokio::test]
async fn occurrences_missed_by_more_than_an_hour_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, RULES).unwrap();
    // 17:00 in Paris: this morning's 09:00 is long gone.
    let start = Utc.with_ymd_and_hms(2026, 3, 2, 16, 0, 0).unwrap();
    let rp = rules_path.clone();
    let app = spawn_on(TestDb::fresh(), start, move |s| s.rules = Some(rp)).await;
    let (client, url) = (app.client.clone(), format!("{}/api/contacts/CH9", app.base));
    let body =
        json!({"segment": "Churn", "purchases": 1, "last_purchase_at": (start - Duration::days(365)).to_rfc3339()});
    assert!(client.put(url).json(&body).send().await.unwrap().status().is_success());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.count("schedule_runs"), 0);
    app.stop().await;
}
