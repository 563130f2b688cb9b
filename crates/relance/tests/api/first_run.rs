//! The first run on a real server: the getting-started panel with this server's URLs, a
//! test event through the real ingest path (in the feed, out of the counters, deletable),
//! and the panel gone with the first real event.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use serde_json::json;

use crate::common::{TestApp, spawn_with, with_tokens};
use crate::dashboard::{AdminCalls, no_redirects, page, sign_in};

fn events_charted(overview: &str) -> i64 {
    let data = overview.split("id=\"events-data\">").nth(1).unwrap().split("</script>").next().unwrap();
    let activity: serde_json::Value = serde_json::from_str(data).unwrap();
    activity["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["counts"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()))
        .sum()
}

async fn post_form(app: &TestApp, cookie: &str, path: &str, csrf: &str) -> reqwest::Response {
    no_redirects()
        .post(format!("{}{path}", app.base))
        .header(COOKIE, cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_first_run_guides_then_a_test_event_shows_without_counting() {
    let app = spawn_with(with_tokens).await;
    let (cookie, csrf) = sign_in(&app).await;
    let host = app.base.trim_start_matches("http://");

    let (_, overview) = page(&app, &cookie, "/").await;
    assert!(overview.contains("Getting started"), "{overview}");
    assert!(overview.contains(&format!("http://{host}/webhook/email")), "the URL to paste into Brevo");
    assert!(overview.contains(&format!("http://{host}/webhook/behavior")), "the website's example");
    assert!(overview.contains("RELANCE_WEBHOOK_TOKEN") && overview.contains("Hard bounced"));
    assert!(!overview.contains("delete-test-events"), "nothing to delete yet");

    // A forged form does nothing; the real one stores the event through ingest.
    assert_eq!(post_form(&app, &cookie, "/ui/first-run/test-event", "forged").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.count("events"), 0);
    let sent = post_form(&app, &cookie, "/ui/first-run/test-event", &csrf).await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    assert_eq!(sent.headers()[LOCATION], "/#live");
    assert_eq!(app.query_strings("SELECT source FROM events"), ["test"]);

    let (_, overview) = page(&app, &cookie, "/").await;
    assert!(overview.contains("relance_test") && overview.contains(r#"<span class="badge test">test</span>"#));
    assert!(overview.contains("Getting started"), "a test event is not a real one: the guide stays");
    assert!(overview.contains("delete-test-events"));
    // The charts come from the hourly counters (the page caches them a few seconds).
    assert_eq!(app.count("hourly_counts"), 0, "the test event is left out of the charts and counters");
    assert_eq!(events_charted(&overview), 0);

    // Deleted: gone from the store, the feed and the guide's buttons.
    let deleted = post_form(&app, &cookie, "/ui/first-run/test-events/delete", &csrf).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.count("events"), 0);
    let (_, overview) = page(&app, &cookie, "/").await;
    assert!(!overview.contains("relance_test") && !overview.contains("delete-test-events"));
    let audit = app.query_strings("SELECT action FROM audit_log ORDER BY id");
    assert!(audit.iter().any(|a| a == "delete_test_events"), "{audit:?}");

    // The first real event ends the first run.
    app.post_webhook("/webhook/behavior", &json!({"email": "anne@example.fr", "action": "page_visit"})).await;
    let (_, overview) = page(&app, &cookie, "/").await;
    assert!(!overview.contains("Getting started"));
    assert_eq!(app.query_strings("SELECT name FROM hourly_counts WHERE kind = 'trigger'"), ["page_visit"]);
}

#[tokio::test]
async fn the_guide_uses_the_public_url_and_speaks_french() {
    let app = spawn_with(|s| {
        with_tokens(s);
        s.public_url = Some("https://relance.domaine.fr/".parse().unwrap());
    })
    .await;
    let (cookie, _) = sign_in(&app).await;
    let resp = no_redirects()
        .get(format!("{}/", app.base))
        .header(COOKIE, &cookie)
        .header("accept-language", "fr-FR,fr;q=0.9")
        .send()
        .await
        .unwrap();
    let html = resp.text().await.unwrap();
    assert!(html.contains("Premiers pas") && html.contains("Envoyer un événement de test"), "{html}");
    assert!(html.contains("https://relance.domaine.fr/webhook/email"));
}
