//! The first run on a real server: the getting-started panel with this server's URLs, a
//! test event through the real ingest path (in the feed, out of the counters, deletable),
//! and the panel gone with the first real event; the CSV import from the contacts page.

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
    // PostgreSQL writes the counters a quarter of a second after the answer at most.
    app.eventually("the real event counted under its trigger", |app| {
        app.query_strings("SELECT name FROM hourly_counts WHERE kind = 'trigger'") == ["page_visit"]
    })
    .await;
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

fn multipart(csrf: &str, csv: &[u8]) -> (String, Vec<u8>) {
    let boundary = "relance-test-boundary";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n").as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"crm.csv\"\r\nContent-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(csv);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn a_csv_import_is_checked_line_by_line_then_confirmed() {
    let app = spawn_with(with_tokens).await;
    let (cookie, csrf) = sign_in(&app).await;
    let (_, contacts) = page(&app, &cookie, "/ui/contacts").await;
    assert!(contacts.contains(r#"action="/ui/contacts/import" enctype="multipart/form-data""#));
    // A French Excel export: semicolons, Windows-1252, one bad email on line 3.
    let csv = b"client_code;email;segment\nCL1;anne@example.fr;VIP\nCL2;pas-un-email;Standard\nCL3;b\xe9a@example.fr;Standard\n";
    let upload = |csrf: String| {
        let (kind, body) = multipart(&csrf, csv);
        no_redirects()
            .post(format!("{}/ui/contacts/import", app.base))
            .header(COOKIE, &cookie)
            .header("content-type", kind)
            .body(body)
            .send()
    };
    assert_eq!(upload("forged".into()).await.unwrap().status(), StatusCode::FORBIDDEN);
    let checked = upload(csrf.clone()).await.unwrap();
    assert_eq!(checked.status(), StatusCode::OK);
    let html = checked.text().await.unwrap();
    assert!(html.contains("Read as windows-1252, separator “;”. Ready to import: 2; rejected: 1."), "{html}");
    assert!(html.contains("<td class=\"num\">3</td>"), "the bad row is named by its line");
    assert!(html.contains("béa@example.fr"), "the preview decoded the file");
    assert_eq!(app.count("contacts"), 0, "checking writes nothing");

    let data = html.split("name=\"data\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let confirm = |skip: bool| {
        let mut form = vec![("csrf", csrf.clone()), ("data", data.clone())];
        if skip {
            form.push(("skip_invalid", "true".into()));
        }
        no_redirects()
            .post(format!("{}/ui/contacts/import/confirm", app.base))
            .header(COOKIE, &cookie)
            .form(&form)
            .send()
    };
    // Without leaving the bad line out, nothing goes in.
    let refused = confirm(false).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("Nothing was imported"));
    assert_eq!(app.count("contacts"), 0);
    let done = confirm(true).await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(done.text().await.unwrap().contains("Imported. Created: 2; updated: 0; left out: 1."));
    assert_eq!(app.count("contacts"), 2);
    let audit = app.query_strings("SELECT action FROM audit_log WHERE kind = 'contacts' ORDER BY id");
    assert!(audit.iter().filter(|a| *a == "import").count() >= 2, "{audit:?}");
}
