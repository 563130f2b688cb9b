//! Named scores through the server: decay materialised by the daily sweep, once however
//! many instances share the database, and shown by the contact API and explain.

use crate::common::*;
use chrono::Duration;
use serde_json::json;

const RULES: &str = r#"
[[score]]
name = "engagement"
range = [0, 100]
decay = { half_life_days = 30 }

[[rule]]
rule_id = "visit"
trigger = "page_visit"
priority = 50
actions = [{ action_type = "update_score", config = { score = "engagement", score_delta = 40 } }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_sweep_materialises_decay_once_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let db = TestDb::fresh();
    let r1 = rules.clone();
    // Two instances on PostgreSQL; SQLite has one writer, so one instance.
    let second = on_postgres().then(|| db.shared());
    let a = spawn_on(db, t0(), move |s| s.rules = Some(r1)).await;
    let b = match second {
        Some(db) => Some(spawn_on(db, t0(), move |s| s.rules = Some(rules)).await),
        None => None,
    };
    for i in 0..20 {
        for n in 0..2 {
            let visit =
                json!({"email": format!("d{i}@example.fr"), "action": "page_visit", "event_id": format!("d{i}-{n}")});
            a.post_ok("/webhook/behavior", &visit).await;
        }
    }
    let contact = a.get_json("/api/contacts/d0@example.fr").await;
    assert_eq!(contact["scores"]["engagement"]["value"], 80, "{contact}");

    // Thirty days on, the 02:00 sweep of that day has run: every contact reads 40.
    for app in std::iter::once(&a).chain(b.as_ref()) {
        app.advance(Duration::days(30));
    }
    a.eventually("the sweep ran", |app| {
        app.count("schedule_runs WHERE rule_id = '__score_decay' AND finished_at IS NOT NULL") == 2
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(a.count("history WHERE action_type = 'decay'"), 20, "one decay row per contact, from one instance");
    let contact = a.get_json("/api/contacts/d7@example.fr").await;
    assert_eq!(contact["scores"]["engagement"]["value"], 40, "{contact}");
    assert_eq!(contact["scores"]["engagement"]["base"], 80, "decay never moves the base");

    // The CSV export has a column per declared score.
    let csv = a.get("/api/contacts.csv").await.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "score_engagement").unwrap_or_else(|| panic!("{header:?}"));
    let row = lines.find(|l| l.starts_with("d7@example.fr,")).unwrap();
    assert_eq!(row.split(',').nth(col), Some("40"), "{csv}");

    // Explain adds the score up from its causes, decay included.
    let explained = a.get_json("/api/contacts/d7@example.fr/explain").await;
    let engagement = explained["scores"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "engagement"))
        .unwrap_or_else(|| panic!("{explained:#}"));
    assert_eq!(engagement["value"], 40);
    let causes: Vec<(String, i64)> = engagement["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["cause"].as_str().unwrap().to_owned(), c["points"].as_i64().unwrap()))
        .collect();
    assert_eq!(causes, [("initial".to_owned(), 0), ("rule visit".to_owned(), 80), ("decay".to_owned(), -40)]);

    // The dashboard's contact page shows the score and why.
    let page = dashboard_html(&a, "", "/ui/contacts/d7@example.fr").await;
    assert!(page.contains("Score engagement"), "{page}");
    assert!(page.contains("<td>decay</td><td class=\"num\">-40</td>"), "{page}");

    a.stop().await;
    if let Some(b) = b {
        b.stop().await;
    }
}
