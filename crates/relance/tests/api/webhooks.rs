//! The webhook server end to end: every Brevo sample, arrays, auth, bad input with
//! nothing stored, duplicates, and the seed scenario.

use crate::common::*;
use serde_json::{Value, json};

const SAMPLES: &[(&str, Option<&str>)] = &[
    ("request", None),
    ("click", Some("email_clicked")),
    ("hard_bounce", Some("email_bounce")),
    ("unique_opened", Some("email_opened")),
    ("unsubscribed", Some("unsubscribe")),
    ("soft_bounce", Some("email_bounce")),
    ("deferred", None),
    ("proxy_open", None),
    ("marketing_spam", Some("unsubscribe")),
    ("marketing_opened", Some("email_opened")),
    ("marketing_unsubscribed", Some("unsubscribe")),
    ("marketing_click", Some("email_clicked")),
    ("marketing_contact_updated", None),
    ("seed_email", Some("email_opened")),
];

#[tokio::test]
async fn every_brevo_sample_is_accepted_with_its_trigger() {
    let app = spawn_app().await;
    for (name, trigger) in SAMPLES {
        let answer = app.post_ok("/webhook/email", &fixture(name)).await;
        assert_eq!(answer["status"], "received", "{name}");
        assert_eq!(answer["duplicate"], false, "{name}");
        assert_eq!(answer["trigger"].as_str(), *trigger, "{name}");
        if trigger.is_none() {
            assert_eq!(answer["actions"], json!([]), "{name}: a known event without trigger fires nothing");
        }
    }
    assert_eq!(app.count("events"), SAMPLES.len() as i64);
    // Hard bounce flagged the address; the spam complaint flagged the marketing contact.
    let c = app.get_json("/api/contacts/example@gmail.com").await;
    assert_eq!(c["email_invalid"], true);
    assert_eq!(c["unsubscribed"], true);
    let m = app.get_json("/api/contacts/example@domain.com").await;
    assert_eq!(m["complained"], true);
    app.stop().await;
}

#[tokio::test]
async fn brevo_items_stand_alone_and_behaviour_arrays_are_all_or_nothing() {
    let app = spawn_app().await;
    let batch = json!([fixture("click"), fixture("unique_opened"), fixture("request")]);
    let answer = app.post_ok("/webhook/email", &batch).await;
    assert_eq!(answer["status"], "received");
    assert_eq!(answer["results"].as_array().unwrap().len(), 3);
    assert_eq!(answer["results"][1]["trigger"], "email_opened");
    assert_eq!(app.count("events"), 3);

    // Brevo drops a delivery answered 4xx: the good item is stored, the bad one answered
    // and kept for a person to see.
    let mixed = json!([fixture("soft_bounce"), {"event": "opened"}]);
    let answer = app.post_ok("/webhook/email", &mixed).await;
    assert_eq!(answer["results"][0]["trigger"], "email_bounce");
    assert_eq!(answer["results"][1]["status"], "rejected");
    assert_eq!(answer["results"][1]["field"], "email");
    assert_eq!(app.count("events"), 4);
    let kept = app.get_json("/api/deliveries/rejected").await;
    assert_eq!(kept["rejected"][0]["field"], "email");
    assert_eq!(kept["rejected"][0]["payload"], r#"{"event":"opened"}"#);

    // The website can fix and resend: its arrays are all or nothing, the 400 names the item.
    let bad = json!([{"client_code": "CL1", "action": "page_visit"}, {"client_code": "CL1", "action": "fly"}]);
    let resp = app.post("/webhook/behavior", &bad).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["field"], "[1].action");
    assert_eq!(app.count("events"), 4, "nothing of the bad behaviour batch is stored");

    let behaviour = json!([
        {"client_code": "CL1", "action": "page_visit", "metadata": {"page": "vins.html"}},
        {"client_code": "CL1", "action": "form_submit"}
    ]);
    let answer = app.post_ok("/webhook/behavior", &behaviour).await;
    assert_eq!(answer["results"][0]["trigger"], "page_visit");
    assert_eq!(answer["results"][1]["trigger"], "form_submit");
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_name_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let cases = [
        ("/webhook/email", json!({"email": "a@b.fr"}), "event"),
        ("/webhook/email", json!({"event": "opened"}), "email"),
        ("/webhook/behavior", json!({"action": "open"}), "client_code"),
        ("/webhook/behavior", json!({"client_code": "CL1", "action": "fly"}), "action"),
        (
            "/webhook/behavior",
            json!({"client_code": "CL1", "action": "purchase", "metadata": {"amount": -1}}),
            "metadata.amount",
        ),
        ("/webhook/behavior", json!([]), "body"),
        ("/webhook/behavior", json!(42), "body"),
    ];
    for (path, body, field) in cases {
        let resp = app.post(path, &body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_event", "{body}");
        assert_eq!(answer["field"], field, "{body}");
        assert!(answer["detail"].as_str().unwrap().contains(field.trim_start_matches("metadata.")), "{answer}");
    }
    let nameless: Value = app.post("/webhook/email", &json!({"email": "a@b.fr"})).await.json().await.unwrap();
    assert!(nameless["accepted"].as_array().unwrap().contains(&json!("hard_bounce")));

    let resp = app.client.post(format!("{}/webhook/email", app.base)).body("{not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_json");

    let huge = format!(r#"{{"event":"opened","email":"a@b.fr","pad":"{}"}}"#, "x".repeat(1024 * 1024 + 10));
    let resp = app.client.post(format!("{}/webhook/email", app.base)).body(huge).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "payload_too_large");

    assert_eq!(app.count("events"), 0);
    assert_eq!(app.count("contacts"), 0);
    app.stop().await;
}

#[tokio::test]
async fn tokens_are_required_when_set() {
    let app = spawn_with(with_tokens).await;
    let url = format!("{}/webhook/email", app.base);
    let body = fixture("click");

    let none = app.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = app.client.post(&url).bearer_auth("nope").json(&body).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    // The webhook token opens only the webhooks; the admin token opens everything (one
    // Power Automate connection holds one key).
    let webhook_token_on_admin =
        app.client.get(format!("{}/api/rules", app.base)).bearer_auth(WEBHOOK_TOKEN).send().await.unwrap();
    assert_eq!(webhook_token_on_admin.status(), 401);
    assert_eq!(app.count("events"), 0);
    let admin_token_on_webhook =
        app.client.post(&url).bearer_auth(ADMIN_TOKEN).json(&fixture("deferred")).send().await.unwrap();
    assert_eq!(admin_token_on_webhook.status(), 200);

    let bearer = app.client.post(&url).bearer_auth(WEBHOOK_TOKEN).json(&body).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let basic =
        app.client.post(&url).basic_auth("brevo", Some(WEBHOOK_TOKEN)).json(&fixture("request")).send().await.unwrap();
    assert_eq!(basic.status(), 200);
    assert_eq!(app.count("events"), 3);

    let api = format!("{}/api/contacts/example@gmail.com", app.base);
    assert_eq!(app.client.get(&api).send().await.unwrap().status(), 401);
    assert_eq!(app.client.get(&api).bearer_auth(WEBHOOK_TOKEN).send().await.unwrap().status(), 401);
    assert_eq!(app.client.get(&api).bearer_auth(ADMIN_TOKEN).send().await.unwrap().status(), 200);
    // Health stays open for load balancers.
    assert_eq!(app.get("/webhook/health").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn refusals_say_what_is_expected_and_are_counted_and_shown() {
    let app = spawn_with(with_tokens).await;
    let url = format!("{}/webhook/email", app.base);
    let detail = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "unauthorized");
        body["detail"].as_str().unwrap().to_owned()
    };
    let missing = detail(app.client.post(&url).json(&fixture("click")).send().await.unwrap()).await;
    assert!(
        missing.starts_with("missing credentials") && missing.contains("Bearer <RELANCE_WEBHOOK_TOKEN>"),
        "{missing}"
    );
    let bare = detail(app.client.post(&url).header("authorization", WEBHOOK_TOKEN).send().await.unwrap()).await;
    assert!(bare.contains("not in the expected form"), "{bare}");
    for _ in 0..14 {
        let wrong =
            detail(app.client.post(&url).bearer_auth("nope").json(&fixture("click")).send().await.unwrap()).await;
        assert!(wrong.starts_with("wrong token") && !wrong.contains("nope"), "{wrong}");
    }
    let api = format!("{}/api/rules", app.base);
    let on_admin = detail(app.client.get(&api).bearer_auth(WEBHOOK_TOKEN).send().await.unwrap()).await;
    assert!(on_admin.contains("webhook token") && on_admin.contains("Bearer <RELANCE_ADMIN_TOKEN>"), "{on_admin}");
    assert!(!on_admin.contains(WEBHOOK_TOKEN) && !on_admin.contains(ADMIN_TOKEN), "never a token's value");

    let metrics = app.client.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    for line in [
        r#"relance_auth_refused_total{route="webhook_email",reason="wrong_token"} 14"#,
        r#"relance_auth_refused_total{route="webhook_email",reason="missing"} 1"#,
        r#"relance_auth_refused_total{route="api",reason="webhook_token_on_admin_route"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    // The dashboard's "needing attention" names them.
    let html = dashboard_html(&app, ADMIN_TOKEN, "/").await;
    assert!(
        html.contains("Brevo webhook (/webhook/email)</strong> refused 14 times in the last hour: wrong token"),
        "{html}"
    );
    app.stop().await;
}

#[tokio::test]
async fn duplicates_change_nothing() {
    let app = spawn_app().await;
    let first = app.post_ok("/webhook/email", &fixture("click")).await;
    let again = app.post_ok("/webhook/email", &fixture("click")).await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(again["actions"], json!([]));
    assert_eq!(again["contact"]["score"], first["contact"]["score"]);
    assert_eq!(app.count("events"), 1);

    // Behaviour: the sender's event_id.
    let purchase =
        json!({"client_code": "CL7", "action": "purchase", "event_id": "order-1", "metadata": {"amount": 120}});
    let a = app.post_ok("/webhook/behavior", &purchase).await;
    let b = app.post_ok("/webhook/behavior", &purchase).await;
    assert_eq!((a["duplicate"].clone(), b["duplicate"].clone()), (json!(false), json!(true)));
    assert_eq!(b["contact"]["purchases"], 1);
    assert_eq!(app.count("jobs"), 4, "thank-you, task, VIP email, call: once");

    // Idempotency-Key for senders without ids.
    let visit = json!({"client_code": "CL7", "action": "page_visit"});
    for _ in 0..3 {
        let resp = app
            .client
            .post(format!("{}/webhook/behavior", app.base))
            .header("Idempotency-Key", "visit-42")
            .json(&visit)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(app.count("events"), 3);
    // Duplicates inside one array are caught too.
    let answer = app.post_ok("/webhook/email", &json!([fixture("request"), fixture("request")])).await;
    assert_eq!(answer["results"][1]["duplicate"], true);
    assert_eq!(app.count("events"), 4);
    app.stop().await;
}

#[tokio::test]
async fn seed_scenario_open_click_purchase_high_score_unsubscribe() {
    let app = spawn_app().await;
    let who = json!({"client_code": "CL001", "email": "client@example.com"});
    let event = |action: &str, extra: Value| {
        let mut e = who.clone();
        e["action"] = json!(action);
        if let Value::Object(m) = extra {
            e.as_object_mut().unwrap().extend(m);
        }
        e
    };

    let open = app.post_ok("/webhook/behavior", &event("open", json!({}))).await;
    assert_eq!(open["contact"]["score"], 55);
    let click = app
        .post_ok("/webhook/email", &json!({"event": "click", "email": "client@example.com", "message-id": "m1", "ts_epoch": 1772442000000i64, "link": "https://domaine.example"}))
        .await;
    assert_eq!(click["contact"]["score"], 70);
    assert_eq!(click["contact"]["client_code"], "CL001", "email and client code were linked");
    assert_eq!(click["contact"]["tags"], json!(["engaged"]));

    let purchase = app.post_ok("/webhook/behavior", &event("purchase", json!({"metadata": {"amount": 80}}))).await;
    assert_eq!(purchase["contact"]["score"], 100);
    let actions = purchase["actions"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = actions
        .iter()
        .map(|a| {
            (
                a["rule_id"].as_str().unwrap().into(),
                a["action_type"].as_str().unwrap().into(),
                a["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        summary,
        vec![
            s("rule_purchase", "update_score", "applied"),
            s("rule_purchase", "send_email", "scheduled"),
            s("rule_purchase", "create_task", "scheduled"),
            s("rule_high_score", "send_email", "scheduled"),
            s("rule_high_score", "schedule_call", "scheduled"),
        ]
    );
    assert_eq!(actions[1]["due_at"].as_str().unwrap(), "2026-03-02T09:05:00Z");
    assert_eq!(actions[2]["due_at"].as_str().unwrap(), "2026-03-03T09:00:00Z");
    assert!(actions[1]["job_id"].is_string());
    assert!(actions[0]["job_id"].is_null());

    // Still high: a second purchase does not fire the VIP workflow again.
    let again = app.post_ok("/webhook/behavior", &event("purchase", json!({"metadata": {"amount": 60}}))).await;
    assert!(again["actions"].as_array().unwrap().iter().all(|a| a["rule_id"] != "rule_high_score"));

    app.advance(chrono::Duration::minutes(2));
    let unsub = app
        .post_ok(
            "/webhook/email",
            &json!({"event": "unsubscribed", "email": "client@example.com", "ts_epoch": 1772442120000i64}),
        )
        .await;
    assert_eq!(unsub["contact"]["score"], 0);
    assert_eq!(unsub["contact"]["unsubscribed"], true);
    assert!(unsub["contact"]["tags"].as_array().unwrap().contains(&json!("unsubscribed")));

    // After the opt-out, a purchase's thank-you email comes out suppressed.
    let after = app.post_ok("/webhook/behavior", &event("purchase", json!({"metadata": {"amount": 90}}))).await;
    let email = after["actions"].as_array().unwrap().iter().find(|a| a["action_type"] == "send_email").unwrap().clone();
    assert_eq!(email["status"], "suppressed");
    assert_eq!(email["reason"], "unsubscribed");
    // Opt-out means pause: every pending job that contacts the person (the thank-you, the
    // follow-up task, the VIP call) was cancelled by the unsubscribe with that reason, and
    // the new purchase's task is suppressed like its email.
    let task = after["actions"].as_array().unwrap().iter().find(|a| a["action_type"] == "create_task").unwrap().clone();
    assert_eq!((task["status"].as_str(), task["reason"].as_str()), (Some("suppressed"), Some("unsubscribed")));
    let states = app.query_strings(
        "SELECT action_type || ':' || state || ':' || COALESCE(last_error, '') FROM jobs ORDER BY created_at, id",
    );
    for cancelled in ["send_email", "create_task", "schedule_call"] {
        assert!(states.contains(&format!("{cancelled}:cancelled:cancelled: unsubscribed")), "{states:?}");
    }
    assert!(states.iter().any(|s| s.starts_with("send_email:suppressed")), "{states:?}");
    assert!(!states.iter().any(|s| s.contains(":pending")), "nothing left to contact them: {states:?}");

    let history = app.get_json("/api/contacts/CL001/history").await;
    let rows = history["history"].as_array().unwrap();
    let score_rows: Vec<(i64, i64)> = rows
        .iter()
        .filter(|r| r["field"] == "score")
        .map(|r| (r["before"].as_i64().unwrap(), r["after"].as_i64().unwrap()))
        .collect();
    // The last purchase still counts: opting out of email is not leaving the shop.
    assert_eq!(score_rows, vec![(50, 55), (55, 70), (70, 100), (100, 0), (0, 50)]);
    assert!(rows.iter().any(|r| r["field"] == "unsubscribed" && r["rule_id"].is_null()));
    app.stop().await;
}

#[tokio::test]
async fn contacts_can_be_read_and_fixed() {
    let app = spawn_app().await;
    let put = |key: &str, body: Value| {
        let client = app.client.clone();
        let url = format!("{}/api/contacts/{key}", app.base);
        async move { client.put(url).json(&body).send().await.unwrap() }
    };
    let created = put("CL010", json!({"email": "Marie@Exemple.fr", "segment": "VIP", "rfm_score": 3.5, "purchases": 3, "phone": "+33600000000"})).await;
    assert_eq!(created.status(), 201);
    let c: Value = created.json().await.unwrap();
    assert_eq!(c["email"], "marie@exemple.fr");
    assert_eq!(c["score"], 100, "created at the formula's score (50 + 35 + 15)");

    let updated = put("marie@exemple.fr", json!({"segment": "Standard", "attributes": {"cave": "Bordeaux"}})).await;
    assert_eq!(updated.status(), 200);
    let c: Value = updated.json().await.unwrap();
    assert_eq!(
        (c["segment"].clone(), c["client_code"].clone(), c["attributes"]["cave"].clone()),
        (json!("Standard"), json!("CL010"), json!("Bordeaux"))
    );

    // Events for the email find the same contact.
    app.post_ok("/webhook/behavior", &json!({"email": "marie@exemple.fr", "action": "open"})).await;
    assert_eq!(app.count("contacts"), 1);

    assert_eq!(put("CL011", json!({"email": "marie@exemple.fr"})).await.status(), 409);
    let bad = put("CL012", json!({"rfm_score": 9})).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["field"], "rfm_score");
    assert_eq!(put("CL012", json!({"colour": "red"})).await.status(), 400);
    assert_eq!(app.get("/api/contacts/nobody@nowhere.fr").await.status(), 404);
    assert_eq!(app.get("/api/contacts/bad%20code").await.status(), 400);

    let events = app.get_json("/api/events?contact=CL010&limit=10").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["event_type"], "open");
    assert_eq!(events["events"][0]["source"], "tracking");
    let none = app.get_json("/api/events?since=2030-01-01").await;
    assert_eq!(none["events"], json!([]));
    assert_eq!(app.get("/api/events?since=yesterday").await.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn a_public_bind_without_tokens_refuses_to_start() {
    let settings = relance::config::Settings { bind: "0.0.0.0:0".parse().unwrap(), ..Default::default() };
    let err = relance::server::Server::build(settings, relance::store::system_clock()).await.err().unwrap();
    assert!(err.to_string().contains("RELANCE_WEBHOOK_TOKEN"), "{err}");
}

#[tokio::test]
async fn graceful_shutdown_commits_what_was_accepted() {
    let app = spawn_app().await;
    let mut handles = Vec::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/webhook/behavior", app.base);
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"client_code": format!("C{i}"), "action": "page_visit", "event_id": format!("e{i}")}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut ok = 0;
    for h in handles {
        if h.await.unwrap().ok() == Some(200) {
            ok += 1;
        }
    }
    let db = app.stop().await;
    assert_eq!(db.count("events"), ok);
}

#[tokio::test]
async fn events_export_has_the_seed_fields_and_ours() {
    let app = spawn_app().await;
    app.post_ok("/webhook/email", &fixture("click")).await;
    app.post_ok(
        "/webhook/behavior",
        &json!({"client_code": "CL3", "action": "purchase", "event_id": "o-3", "metadata": {"amount": 12}}),
    )
    .await;
    let db = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.json");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["events", "export", "--database", &db.url(), "--output", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(rows.len(), 2);
    let click = &rows[0];
    for field in
        ["timestamp", "event_type", "email", "message_id", "link", "source", "id", "trigger", "dedupe_key", "raw"]
    {
        assert!(click.get(field).is_some(), "missing {field}: {click}");
    }
    assert_eq!(click["event_type"], "click");
    assert_eq!(click["link"], "https://www.google.com");
    assert_eq!(click["timestamp"], "2023-05-31T14:08:28.462Z");
    assert_eq!(rows[1]["event_id"], "o-3");
    assert_eq!(rows[1]["client_code"], "CL3");
    assert_eq!(rows[1]["raw"]["metadata"]["amount"], 12);
    let ndjson = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["events", "export", "--database", &db.url(), "--format", "ndjson", "--since", "2030-01-01"])
        .output()
        .unwrap();
    assert!(ndjson.status.success() && ndjson.stdout.is_empty(), "nothing received since 2030");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_events_cannot_be_stored_the_answer_is_429_never_5xx() {
    if on_postgres() {
        return; // holds SQLite's write lock; PostgreSQL outages have their own test
    }
    let app = spawn_with(|s| {
        s.ingest_queue_capacity = 2;
        s.ingest_max_batch = 1;
        s.dispatch.enabled = false;
    })
    .await;
    app.post_ok("/webhook/behavior", &json!({"client_code": "W0", "action": "open", "event_id": "w0"})).await;

    // Another process holds the write lock: the writer waits (busy timeout), the queue
    // fills, and senders are told to come back later.
    let blocker = rusqlite::Connection::open(app.db().sqlite_path().unwrap()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut sends = Vec::new();
    for i in 1..=12 {
        let (client, url) = (app.client.clone(), format!("{}/webhook/behavior", app.base));
        sends.push(tokio::spawn(async move {
            let body = json!({"client_code": format!("W{i}"), "action": "open", "event_id": format!("w{i}")});
            let r = client.post(url).json(&body).send().await.unwrap();
            let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            (i, r.status().as_u16(), retry_after, r.json::<Value>().await.unwrap())
        }));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for s in sends {
        let (i, status, retry_after, body) = s.await.unwrap();
        match status {
            200 => accepted.push(format!("w{i}")),
            429 => {
                refused += 1;
                assert!(retry_after.is_some(), "{body}");
                assert_eq!(body["error"], "retry_later");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(refused >= 5, "a full queue refuses: {refused} refused");
    let stored = app.query_strings("SELECT sender_event_id FROM events ORDER BY id");
    assert_eq!(stored.len(), 1 + accepted.len(), "every 200 is stored, no 429 is");
    for id in &accepted {
        assert!(stored.contains(id));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_error_is_a_429_and_the_server_recovers() {
    if on_postgres() {
        return; // holds SQLite's write lock; PostgreSQL outages have their own test
    }
    let app = spawn_with(|s| s.dispatch.enabled = false).await;
    // Held past the writer's busy timeout: the write fails as a database error would.
    let blocker = rusqlite::Connection::open(app.db().sqlite_path().unwrap()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let resp = app.post("/webhook/email", &fixture("click")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "5");
    blocker.execute_batch("ROLLBACK").unwrap();
    // Brevo's retry then goes through, once.
    let again = app.post_ok("/webhook/email", &fixture("click")).await;
    assert_eq!(again["duplicate"], false);
    assert_eq!(app.count("events"), 1);
    app.stop().await;
}

/// A website payload that the row says again is stored once (its JSON `raw` empty) and
/// reads back exactly; one with anything more keeps its own copy. The job a purchase
/// schedules still carries the whole event (its JSON stored without the columns).
#[tokio::test]
async fn payloads_read_back_exactly_whether_or_not_they_are_stored_twice() {
    let app = spawn_app().await;
    let plain = json!({"client_code": "CL7", "email": "paul@example.com", "action": "purchase", "event_id": "p-1",
                       "metadata": {"amount": 80, "page": "vins.html", "product_id": "P7"}});
    let stated = json!({"email": "anne@example.com", "action": "page_visit", "event_id": "p-2",
                        "timestamp": "2026-03-02T08:00:00Z", "metadata": {"page": "accueil"}});
    app.post_ok("/webhook/behavior", &plain).await;
    app.post_ok("/webhook/behavior", &stated).await;
    app.post_ok("/webhook/email", &fixture("click")).await;

    let stored = app.query_strings("SELECT raw FROM events ORDER BY id");
    assert_eq!(stored[0], "", "the plain payload is rebuilt from its row");
    assert!(stored[1].contains("timestamp") && stored[2].contains("click"), "{stored:?}");

    let page = app.get_json("/api/events?limit=10").await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events[0]["raw"], plain);
    assert_eq!(events[1]["raw"], stated);
    assert_eq!(events[2]["raw"], fixture("click"));
    assert_eq!(events[1]["timestamp"], "2026-03-02T08:00:00Z");

    // The purchase's emails (the thank-you is due in 5 minutes): sent, they carry the event.
    let purchase = app.get_json("/api/events?contact=CL7").await["events"][0].clone();
    let jobs = app.query_strings(&format!(
        "SELECT id FROM jobs WHERE event_id = '{}' AND action_type = 'send_email'",
        purchase["id"].as_str().unwrap()
    ));
    assert!(!jobs.is_empty(), "{purchase}");
    app.advance(chrono::Duration::minutes(6));
    app.eventually("the emails are sent to the outbox", |a| jobs.iter().all(|j| a.job_state(j) == "done")).await;
    for job in &jobs {
        let payload = app.query_strings(&format!("SELECT payload FROM outbox WHERE job_id = '{job}'"));
        let payload: Value = serde_json::from_str(&payload[0]).unwrap();
        assert_eq!(payload["params"]["AMOUNT"], 80.0, "{payload}");
        assert_eq!(payload["params"]["PRODUCT_ID"], "P7", "{payload}");
    }
}
