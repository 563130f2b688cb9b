//! The dashboard on a real server: sign-in and its cookie, CSRF on forms and on the API
//! when a session carries it, the pages' content from real data, the hourly counters,
//! the live feed. (Browser behaviour — charts, editor, phone layout — is driven in
//! Chromium by scripts/browser-test.sh.)

use crate::common::{ADMIN_TOKEN, TestApp, spawn_app, spawn_with, with_tokens};
use chrono::Duration;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Signs in with `token`; returns the `Cookie` header value.
async fn session_cookie(app: &TestApp, token: &str) -> String {
    let resp = no_redirects()
        .post(format!("{}/ui/login", app.base))
        .form(&[("token", token), ("next", "/ui/contacts")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/ui/contacts");
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} missing from {set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// Signs in with the admin token; returns the `Cookie` header value and the page's CSRF token.
pub async fn sign_in(app: &TestApp) -> (String, String) {
    let cookie = session_cookie(app, ADMIN_TOKEN).await;
    let client = no_redirects();
    let page = client.get(format!("{}/", app.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = html.split("data-csrf=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    (cookie, csrf)
}

pub async fn page(app: &TestApp, cookie: &str, path: &str) -> (StatusCode, String) {
    let resp = no_redirects().get(format!("{}{path}", app.base)).header(COOKIE, cookie).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test]
async fn pages_need_a_session_and_the_token_opens_one() {
    let app = spawn_with(with_tokens).await;
    let client = no_redirects();
    let resp = client.get(format!("{}/ui/contacts?segment=VIP", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[LOCATION], "/ui/login?next=%2Fui%2Fcontacts%3Fsegment%3DVIP");

    let wrong =
        client.post(format!("{}/ui/login", app.base)).form(&[("token", "guess"), ("next", "/")]).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    // `next` cannot send the browser to another site.
    let resp = client
        .post(format!("{}/ui/login", app.base))
        .form(&[("token", ADMIN_TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()[LOCATION], "/");

    let (cookie, _) = sign_in(&app).await;
    let (status, html) = page(&app, &cookie, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Overview</h1>"));
    // A forged or expired cookie is no session.
    let (status, _) = page(&app, "relance_session=1.abc.def", "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    app.advance(Duration::hours(13));
    let (status, _) = page(&app, &cookie, "/").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "sessions end after 12 hours");
}

#[tokio::test]
async fn pages_send_a_strict_content_security_policy() {
    let app = spawn_with(with_tokens).await;
    let resp = app.get("/ui/login").await;
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let js = app.get("/ui/assets/chart.umd.min.js").await;
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    assert!(js.text().await.unwrap().contains("Chart.js v4"));
    // Only embedded files are served; a name is looked up, never joined to a path.
    assert_eq!(app.get("/ui/assets/%2e%2e%2fCargo.toml").await.status(), 404);
    assert_eq!(app.get("/ui/assets/app.js.map").await.status(), 404);
}

#[tokio::test]
async fn a_session_reaches_the_api_but_changes_need_its_csrf_token() {
    let app = spawn_with(with_tokens).await;
    let (cookie, csrf) = sign_in(&app).await;
    let client = no_redirects();
    let read = client.get(format!("{}/api/rules", app.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(read.status(), 200);

    let toml = app.client.get(format!("{}/api/rules", app.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(toml.status(), 200);
    let body = "[[rule]]\nrule_id = \"only\"\ntrigger = \"email_opened\"\npriority = 10\n\n[[rule.actions]]\naction_type = \"add_tag\"\nconfig = { tag = \"seen\" }\n";
    let put = |csrf: Option<&str>| {
        let mut req = client
            .put(format!("{}/api/rules", app.base))
            .header(COOKIE, &cookie)
            .header("content-type", "application/toml")
            .body(body);
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    let refused = put(None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(refused.json::<serde_json::Value>().await.unwrap()["error"], "forbidden");
    assert_eq!(put(Some("forged")).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_json_admin("/api/rules").await["rules"].as_array().unwrap().len(), 6, "nothing changed");
    let accepted = put(Some(&csrf)).await.unwrap();
    assert_eq!(accepted.status(), 200);
    assert_eq!(app.get_json_admin("/api/rules").await["rules"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cancel_from_a_page_needs_the_form_token() {
    let app = spawn_with(with_tokens).await;
    let answer = app
        .post_webhook(
            "/webhook/behavior",
            &json!({"email": "buyer@example.com", "action": "purchase", "metadata": {"amount": 90}}),
        )
        .await;
    let job = answer["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action_type"] == "create_task")
        .and_then(|a| a["job_id"].as_str())
        .unwrap()
        .to_owned();
    let (cookie, csrf) = sign_in(&app).await;
    let client = no_redirects();
    let cancel = |token: &str| {
        client
            .post(format!("{}/ui/actions/{job}/cancel", app.base))
            .header(COOKIE, &cookie)
            .form(&[("csrf", token), ("back", "/ui/contacts/buyer%40example.com")])
            .send()
    };
    assert_eq!(cancel("forged").await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(app.job_state(&job), "pending");
    let done = cancel(&csrf).await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers()[LOCATION], "/ui/contacts/buyer%40example.com");
    assert_eq!(app.job_state(&job), "cancelled");
    // Without a session, no form goes through whatever it carries.
    let anonymous = no_redirects()
        .post(format!("{}/ui/actions/{job}/retry", app.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn pages_show_the_seed_scenario() {
    let app = spawn_app().await;
    let who = json!({"client_code": "CL001", "email": "client@example.com"});
    let mut open = who.clone();
    open["action"] = json!("open");
    app.post_ok("/webhook/behavior", &open).await;
    app.post_ok("/webhook/email", &json!({"event": "click", "email": "client@example.com", "message-id": "m1", "ts_epoch": 1772442000000i64, "link": "https://domaine.example"})).await;
    let mut purchase = who.clone();
    purchase["action"] = json!("purchase");
    purchase["metadata"] = json!({"amount": 80});
    app.post_ok("/webhook/behavior", &purchase).await;
    // Delivered twice: counted once.
    app.post_ok("/webhook/email", &json!({"event": "click", "email": "client@example.com", "message-id": "m1", "ts_epoch": 1772442000000i64, "link": "https://domaine.example"})).await;

    // No admin token (loopback): the sign-in takes an empty token.
    let cookie = session_cookie(&app, "").await;

    let (status, overview) = page(&app, &cookie, "/").await;
    assert_eq!(status, 200);
    for expected in ["rule_purchase", "rule_email_clicked", "email_clicked", "client@example.com"] {
        assert!(overview.contains(expected), "overview lacks {expected}");
    }
    let data = overview.split("id=\"events-data\">").nth(1).unwrap().split("</script>").next().unwrap();
    let activity: serde_json::Value = serde_json::from_str(data).unwrap();
    let total: i64 = activity["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["counts"].as_array().unwrap().iter().map(|c| c.as_i64().unwrap()))
        .sum();
    assert_eq!(total, 3, "three events stored, the redelivery not counted: {activity}");

    let (status, contacts) = page(&app, &cookie, "/ui/contacts?search=client%40").await;
    assert_eq!(status, 200);
    assert!(contacts.contains("client@example.com"));
    let (_, none) = page(&app, &cookie, "/ui/contacts?search=nobody").await;
    assert!(none.contains("No contact matches"));
    let (status, bad) = page(&app, &cookie, "/ui/contacts?score_min=300").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.contains("Score from must be a whole number from 0 to 100"), "{bad}");

    let (status, contact) = page(&app, &cookie, "/ui/contacts/client%40example.com").await;
    assert_eq!(status, 200);
    assert!(contact.contains("<strong>100</strong> / 100"));
    assert!(contact.contains("engaged"));
    // Rules by what they do, the id kept as a title.
    assert!(contact.contains(r#"<span class="rule" title="rule_purchase">Purchase completed"#), "{contact}");
    // No phone on record: SMS is not "allowed", there is nobody to text.
    assert!(contact.contains("no phone number"));
    assert!(!contact.contains("received "), "received when it happened: one time");
    assert!(contact.contains("€80.00 spent"));
    // Opened an hour before Brevo's webhook reached us: both times are shown.
    app.post_ok(
        "/webhook/email",
        &json!({"event": "opened", "email": "late@example.com", "message-id": "m9", "ts_epoch": 1772438400000i64}),
    )
    .await;
    let (_, late) = page(&app, &cookie, "/ui/contacts/late%40example.com").await;
    assert!(late.contains(">2 Mar 2026, 09:00</time>") && late.contains("received 2 Mar 2026, 10:00"), "{late}");
    let (status, missing) = page(&app, &cookie, "/ui/contacts/nobody%40example.com").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        missing.contains("No contact \"nobody@example.com\"")
            || missing.contains("No contact &quot;nobody@example.com&quot;")
    );
    assert!(
        missing.contains(r#"name="search" value="nobody@example.com""#),
        "a search to find the right one: {missing}"
    );

    let (status, rules) = page(&app, &cookie, "/ui/rules").await;
    assert_eq!(status, 200);
    assert!(rules.contains("rule_unsubscribe") && rules.contains("[[rule]]"));
    // Conditions and delays as sentences, not JSON and minutes.
    assert!(rules.contains("amount over €50.00"), "{rules}");
    assert!(rules.contains("send the email “thank_you”, after 5\u{a0}min"));
    assert!(rules.contains("none: always") && !rules.contains("{&quot;minimum_amount"));
    let (status, actions) = page(&app, &cookie, "/ui/actions?state=pending").await;
    assert_eq!(status, 200);
    assert!(actions.contains("create the task"), "{actions}");
    let (status, _) = page(&app, &cookie, "/ui/actions?state=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_live_feed_streams_new_events() {
    let app = spawn_app().await;
    let cookie = session_cookie(&app, "").await;
    let mut feed =
        no_redirects().get(format!("{}/ui/feed?after=0", app.base)).header(COOKIE, &cookie).send().await.unwrap();
    assert_eq!(feed.status(), 200);
    assert!(feed.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    app.post_ok("/webhook/behavior", &json!({"email": "live@example.com", "action": "click"})).await;
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("live@example.com") {
        let chunk = tokio::time::timeout_at(deadline, feed.chunk()).await.expect("an event within 10 s").unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
    }
    assert!(seen.contains("event: events"), "{seen}");
    assert!(seen.contains("\"trigger\":\"page visited\""), "triggers in the reader's words: {seen}");
}

pub trait AdminCalls {
    async fn get_json_admin(&self, path: &str) -> serde_json::Value;
    async fn post_webhook(&self, path: &str, body: &serde_json::Value) -> serde_json::Value;
}

impl AdminCalls for TestApp {
    async fn get_json_admin(&self, path: &str) -> serde_json::Value {
        let resp = self.client.get(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    async fn post_webhook(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let resp =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(ADMIN_TOKEN).json(body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

#[tokio::test]
async fn pages_follow_the_readers_language_and_the_estates_zone() {
    let app = spawn_app().await;
    let (cookie, _) = sign_in(&app).await;
    let get = |cookie: String, accept: &'static str| {
        let base = app.base.clone();
        async move {
            let resp = no_redirects()
                .get(format!("{base}/"))
                .header(COOKIE, cookie)
                .header("accept-language", accept)
                .send()
                .await
                .unwrap();
            resp.text().await.unwrap()
        }
    };
    let french = get(cookie.clone(), "fr-CH, en;q=0.5").await;
    assert!(french.contains("<html lang=\"fr\">"), "a French browser gets French");
    assert!(french.contains("Vue d’ensemble") && french.contains("Fil en direct"));
    assert!(french.contains("Heures : Europe/Paris"), "the zone is named once");
    assert!(!french.contains(" UTC<"), "no time is written in UTC on a page");
    assert!(get(cookie.clone(), "en-US").await.contains("<html lang=\"en\">"));

    // The switch remembers the choice and goes back to the page it was used on.
    let switched = no_redirects()
        .get(format!("{}/ui/language?to=en", app.base))
        .header("referer", format!("{}/ui/contacts?search=a", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    assert_eq!(switched.headers()[LOCATION], "/ui/contacts?search=a");
    let set = switched.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.starts_with("relance_lang=en;"), "{set}");
    let chosen = get(format!("{cookie}; relance_lang=en"), "fr").await;
    assert!(chosen.contains("<html lang=\"en\">"), "the reader's choice wins over the browser");
    let elsewhere = no_redirects()
        .get(format!("{}/ui/language?to=fr", app.base))
        .header("referer", "https://evil.example/phish")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.headers()[LOCATION], "/phish", "only a path of this site is followed");
    let bad = no_redirects().get(format!("{}/ui/language?to=de", app.base)).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
