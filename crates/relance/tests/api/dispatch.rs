//! The dispatcher end to end, against mock Brevo, Power Automate and webhook receivers,
//! with the clock under the test's control (no real sleeps of minutes).

use std::time::Duration as StdDuration;

use crate::common::*;
use chrono::Duration;
use relance::config::{BrevoSettings, ExecutorKind, Secret, Settings};
use relance::dispatch::signing::SigningKey;
use relance_core::ActionType;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn brevo(server: &MockServer) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.dispatch.brevo = Some(BrevoSettings {
            api_key: Secret::new("xkeysib-test"),
            base_url: format!("{}/v3", server.uri()),
            sender_email: Some("cave@domaine.example".into()),
            sender_name: Some("Le domaine".into()),
            sms_sender: "Domaine".into(),
            templates: [("vip_offer".to_owned(), 42)].into_iter().collect(),
            sync: None,
        });
        s.dispatch.retry_schedule = vec![StdDuration::from_secs(60), StdDuration::from_secs(600)];
        s.dispatch.jitter = 0.0;
    }
}

fn purchase(code: &str, amount: f64, event_id: &str) -> Value {
    json!({"client_code": code, "email": format!("{}@exemple.fr", code.to_lowercase()), "action": "purchase",
           "event_id": event_id, "metadata": {"amount": amount, "product_id": "P1"}})
}

async fn requests_to(server: &MockServer, p: &str) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default().into_iter().filter(|r| r.url.path() == p).collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test]
async fn seed_scenario_email_after_five_minutes_unless_unsubscribed_and_task_next_day() {
    let brevo_mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/smtp/email"))
        .and(header("api-key", "xkeysib-test"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"messageId": "<1@smtp-relay.mailin.fr>"})))
        .mount(&brevo_mock)
        .await;
    let flow = MockServer::start().await;
    Mock::given(method("POST")).and(path("/flow")).respond_with(ResponseTemplate::new(202)).mount(&flow).await;
    let flow_url = format!("{}/flow", flow.uri());
    let app = spawn_with(|s| {
        brevo(&brevo_mock)(s);
        s.dispatch.power_automate_url = Some(Secret::new(flow_url));
    })
    .await;

    // Contact A buys, then unsubscribes at +2 min: the thank-you email (+5 min) never goes.
    app.post_ok("/webhook/behavior", &purchase("CLA", 80.0, "a1")).await;
    // Contact B buys and stays: the thank-you goes at +5 min, not before.
    let b = app.post_ok("/webhook/behavior", &purchase("CLB", 60.0, "b1")).await;
    let thank_you_b = b["actions"][1]["job_id"].as_str().unwrap().to_owned();

    // The VIP offers (due at once) go out; A's and B's thank-yous wait.
    app.eventually("two VIP emails", |a| a.count("job_attempts") >= 2).await;
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    let sent = requests_to(&brevo_mock, "/v3/smtp/email").await;
    assert_eq!(sent.len(), 2, "both crossed 80 (50 + 50): two VIP offers, no thank-you yet");

    app.advance(Duration::minutes(2));
    app.post_ok(
        "/webhook/email",
        &json!({"event": "unsubscribed", "email": "cla@exemple.fr", "ts_epoch": 1772442120000i64}),
    )
    .await;
    app.advance(Duration::minutes(3) + Duration::seconds(1));
    app.eventually("B's thank-you sent", |a| a.job_state(&thank_you_b) == "done").await;

    let emails: Vec<Value> = requests_to(&brevo_mock, "/v3/smtp/email").await.iter().map(body).collect();
    let to = |e: &Value| e["to"][0]["email"].as_str().unwrap().to_owned();
    let thank_yous: Vec<String> =
        emails.iter().filter(|e| e["subject"] == "Merci pour votre commande").map(to).collect();
    assert_eq!(thank_yous, vec!["clb@exemple.fr".to_owned()], "A unsubscribed before its thank-you was due");
    let b_mail = emails.iter().find(|e| to(e) == "clb@exemple.fr" && e["subject"].is_string()).unwrap();
    assert_eq!(b_mail["headers"]["idempotencyKey"], thank_you_b.as_str());
    assert_eq!(b_mail["sender"]["email"], "cave@domaine.example");
    assert_eq!(b_mail["params"]["AMOUNT"], 60.0);
    assert!(
        b_mail["htmlContent"].as_str().unwrap().contains("Merci")
            || b_mail["htmlContent"].as_str().unwrap().contains("remercie")
    );
    let mut vip: Vec<String> = emails.iter().filter(|e| e["templateId"] == 42).map(to).collect();
    vip.sort();
    assert_eq!(vip, ["cla@exemple.fr", "clb@exemple.fr"], "the VIP offer uses the mapped Brevo template");
    let states = app.job_states();
    assert!(states.contains(&"send_email:cancelled".to_owned()), "{states:?}");

    // Opt-out means pause: A's follow-up task and VIP call were cancelled with the email.
    let a_jobs = app.query_strings(
        "SELECT j.action_type || ':' || j.state || ':' || COALESCE(j.last_error, '') FROM jobs j
         JOIN contacts c ON c.id = j.contact_id
         WHERE c.client_code = 'CLA' AND j.action_type IN ('create_task', 'schedule_call') ORDER BY j.action_type",
    );
    assert_eq!(
        a_jobs,
        ["create_task:cancelled:cancelled: unsubscribed", "schedule_call:cancelled:cancelled: unsubscribed"],
        "A opted out: nobody calls or follows up"
    );

    // Nothing reached Power Automate yet; B's follow-up task is due at +24 h, the VIP call at +2 h.
    assert!(requests_to(&flow, "/flow").await.is_empty());
    app.advance(Duration::hours(24));
    app.eventually("B's task and call sent to Power Automate", |a| {
        a.query_strings("SELECT state FROM jobs WHERE action_type IN ('create_task','schedule_call')")
            .iter()
            .all(|s| s == "done" || s == "cancelled")
    })
    .await;
    let flows: Vec<Value> = requests_to(&flow, "/flow").await.iter().map(body).collect();
    assert_eq!(flows.len(), 2, "B's follow-up task and VIP call; none for A");
    assert!(flows.iter().all(|f| f["contact"]["client_code"] == "CLB"), "{flows:?}");
    let task = flows.iter().find(|f| f["action_type"] == "create_task").unwrap();
    assert!(task["idempotency_key"].is_string());
    assert_eq!(task["rule_id"], "rule_purchase");
    assert_eq!(task["event"]["name"], "purchase");
    assert!(task["contact"]["email"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn brevo_answers_decide_the_job_state() {
    let mock = MockServer::start().await;
    let answers: Vec<(&str, ResponseTemplate)> = vec![
        ("ok@x.fr", ResponseTemplate::new(201).set_body_json(json!({"messageId": "<m@x>"}))),
        (
            "bad@x.fr",
            ResponseTemplate::new(400).set_body_json(json!({"code": "invalid_parameter", "message": "bad email"})),
        ),
        (
            "key@x.fr",
            ResponseTemplate::new(401).set_body_json(json!({"code": "unauthorized", "message": "Key not found"})),
        ),
        (
            "poor@x.fr",
            ResponseTemplate::new(402).set_body_json(json!({"code": "not_enough_credits", "message": "No credit"})),
        ),
        (
            "limited@x.fr",
            ResponseTemplate::new(429)
                .insert_header("x-sib-ratelimit-reset", "300")
                .insert_header("x-sib-ratelimit-limit", "10"),
        ),
        ("down@x.fr", ResponseTemplate::new(503).set_body_string("maintenance")),
        ("slow@x.fr", ResponseTemplate::new(201).set_delay(StdDuration::from_secs(3))),
        (
            "dup@x.fr",
            ResponseTemplate::new(400).set_body_json(json!({"code": "duplicate_parameter", "message": "already sent"})),
        ),
    ];
    for (email, response) in answers {
        Mock::given(method("POST"))
            .and(path("/v3/smtp/email"))
            .and(wiremock::matchers::body_partial_json(json!({"to": [{"email": email}]})))
            .respond_with(response)
            .mount(&mock)
            .await;
    }
    let rules = r#"[{"rule_id": "welcome", "trigger": "form_submit", "priority": 50,
        "actions": [{"action_type": "send_email", "config": {"template": "thank_you"}}]}]"#;
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, rules).unwrap();
    let app = spawn_with(|s| {
        brevo(&mock)(s);
        s.rules = Some(rules_path.clone());
        s.dispatch.http_timeout = StdDuration::from_millis(500);
    })
    .await;
    let mut jobs = std::collections::HashMap::new();
    for who in ["ok", "bad", "key", "poor", "limited", "down", "slow", "dup"] {
        let a =
            app.post_ok("/webhook/behavior", &json!({"email": format!("{who}@x.fr"), "action": "form_submit"})).await;
        jobs.insert(who, a["actions"][0]["job_id"].as_str().unwrap().to_owned());
    }
    app.eventually("every job attempted once", |a| a.count("job_attempts") >= 8).await;
    let state = |who: &str| app.job_state(&jobs[who]);
    assert_eq!(state("ok"), "done");
    assert_eq!(state("dup"), "done", "a reused idempotency key means it was sent");
    for final_ in ["bad", "key", "poor"] {
        assert_eq!(state(final_), "dead", "{final_}");
    }
    for retry in ["limited", "down", "slow"] {
        assert_eq!(state(retry), "failed", "{retry} will be retried");
    }
    let detail = app.get_json(&format!("/api/actions/{}", jobs["poor"])).await;
    assert!(detail["action"]["last_error"].as_str().unwrap().contains("not_enough_credits"), "{detail}");
    assert_eq!(detail["attempts"][0]["http_status"], 402);
    let limited = app.get_json(&format!("/api/actions/{}", jobs["limited"])).await;
    let due: chrono::DateTime<chrono::Utc> = limited["action"]["due_at"].as_str().unwrap().parse().unwrap();
    assert!(due >= app.now() + Duration::seconds(299), "x-sib-ratelimit-reset honoured: {due}");
    let down = app.get_json(&format!("/api/actions/{}", jobs["down"])).await;
    let due: chrono::DateTime<chrono::Utc> = down["action"]["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(due, app.now() + Duration::seconds(60), "first retry after the schedule's first delay");
    let slow = app.get_json(&format!("/api/actions/{}", jobs["slow"])).await;
    assert!(slow["action"]["last_error"].as_str().unwrap().contains("timed out"), "{slow}");

    // Past both retries, a job that keeps failing is dead; the schedule has two delays.
    app.advance(Duration::seconds(61));
    let attempts_of = |a: &TestApp, id: &str| {
        a.query_strings(&format!("SELECT status FROM job_attempts WHERE job_id = '{id}'")).len()
    };
    app.eventually("second attempt of down", |a| attempts_of(a, &jobs["down"]) == 2).await;
    assert_eq!(app.job_state(&jobs["down"]), "failed");
    app.advance(Duration::seconds(601));
    app.eventually("down is dead", |a| a.job_state(&jobs["down"]) == "dead").await;
    let attempts = app.get_json(&format!("/api/actions/{}", jobs["down"])).await["attempts"].as_array().unwrap().len();
    assert_eq!(attempts, 3);

    // An operator retries a dead job; the receiver is fixed now.
    mock.reset().await;
    Mock::given(method("POST")).and(path("/v3/smtp/email")).respond_with(ResponseTemplate::new(201)).mount(&mock).await;
    let resp = app.client.post(format!("{}/api/actions/{}/retry", app.base, jobs["down"])).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    app.eventually("retried job done", |a| a.job_state(&jobs["down"]) == "done").await;
    let resp = app.client.post(format!("{}/api/actions/{}/retry", app.base, jobs["ok"])).send().await.unwrap();
    assert_eq!(resp.status(), 409, "a done job cannot be retried");
    app.stop().await;
}

#[tokio::test]
async fn sms_needs_a_phone_emails_an_address_and_a_known_template() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/transactionalSMS/send"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"messageId": 1511882900176220u64})))
        .mount(&mock)
        .await;
    let rules = r#"[{"rule_id": "sms", "trigger": "form_submit", "priority": 50,
        "actions": [{"action_type": "send_sms", "config": {"content": "Merci ! Le domaine"}},
                    {"action_type": "send_email", "config": {"template": "newsletter_janvier"}}]}]"#;
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, rules).unwrap();
    let app = spawn_with(|s| {
        brevo(&mock)(s);
        s.rules = Some(rules_path.clone());
    })
    .await;
    let client = app.client.clone();
    let put = client
        .put(format!("{}/api/contacts/CL5", app.base))
        .json(&json!({"phone": "+33 6 12 34 56 78", "email": "tel@x.fr"}));
    assert_eq!(put.send().await.unwrap().status(), 201);
    let with_phone = app.post_ok("/webhook/behavior", &json!({"client_code": "CL5", "action": "form_submit"})).await;
    let without = app.post_ok("/webhook/behavior", &json!({"email": "nophone@x.fr", "action": "form_submit"})).await;
    let code_only = app.post_ok("/webhook/behavior", &json!({"client_code": "CL6", "action": "form_submit"})).await;
    app.eventually("six attempts", |a| a.count("job_attempts") >= 6).await;

    assert_eq!(app.job_state(with_phone["actions"][0]["job_id"].as_str().unwrap()), "done");
    let sms = requests_to(&mock, "/v3/transactionalSMS/send").await;
    assert_eq!(sms.len(), 1);
    let b = body(&sms[0]);
    assert_eq!(
        (b["recipient"].clone(), b["sender"].clone(), b["type"].clone()),
        (json!("33612345678"), json!("Domaine"), json!("transactional"))
    );

    let no_phone = app.get_json(&format!("/api/actions/{}", without["actions"][0]["job_id"].as_str().unwrap())).await;
    // No address to send to is not a failure to look into: suppressed, with the reason.
    assert_eq!(no_phone["action"]["state"], "suppressed");
    assert_eq!(no_phone["action"]["last_error"], "suppressed: the contact has no phone number");
    let no_email = app.get_json(&format!("/api/actions/{}", code_only["actions"][1]["job_id"].as_str().unwrap())).await;
    assert_eq!(no_email["action"]["state"], "suppressed");
    assert_eq!(no_email["action"]["last_error"], "suppressed: the contact has no email address");
    let unknown = app.get_json(&format!("/api/actions/{}", without["actions"][1]["job_id"].as_str().unwrap())).await;
    assert_eq!(unknown["action"]["state"], "dead");
    assert!(unknown["action"]["last_error"].as_str().unwrap().contains("unknown template \"newsletter_janvier\""));
    assert!(requests_to(&mock, "/v3/smtp/email").await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn webhooks_are_signed_with_a_stable_id_and_internal_targets_are_refused() {
    let receiver = MockServer::start().await;
    // First delivery fails, the retry succeeds.
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(200)).mount(&receiver).await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let rules = format!(
        r#"[{{"rule_id": "crm_sync", "trigger": "purchase", "priority": 50,
            "actions": [{{"action_type": "trigger_webhook", "config": {{"url": "{}/hook"}}}}]}}]"#,
        receiver.uri()
    );
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, rules).unwrap();
    let app = spawn_with(|s| {
        s.rules = Some(rules_path.clone());
        s.dispatch.webhook_signing_secret = Some(Secret::new(secret));
        s.dispatch.retry_schedule = vec![StdDuration::from_secs(5)];
        s.dispatch.jitter = 0.0;
    })
    .await;
    let a = app.post_ok("/webhook/behavior", &purchase("CLW", 99.0, "w1")).await;
    let job = a["actions"][0]["job_id"].as_str().unwrap().to_owned();
    app.eventually("first attempt", |a| a.job_state(&job) == "failed").await;
    app.advance(Duration::seconds(6));
    app.eventually("retry delivered", |a| a.job_state(&job) == "done").await;

    let hits = requests_to(&receiver, "/hook").await;
    assert_eq!(hits.len(), 2);
    let key = SigningKey::parse(secret).unwrap();
    let mut ids = Vec::new();
    for r in &hits {
        let h = |n: &str| r.headers.get(n).unwrap().to_str().unwrap().to_owned();
        let ts: i64 = h("webhook-timestamp").parse().unwrap();
        assert_eq!(h("webhook-signature"), key.sign(&h("webhook-id"), ts, &r.body), "signature verifies");
        ids.push(h("webhook-id"));
    }
    assert_eq!(ids[0], ids[1], "webhook-id is stable across retries");
    assert_eq!(ids[0], job);
    assert_eq!(body(&hits[1])["rule_id"], "crm_sync");
    app.stop().await;

    // The same rule with the SSRF guard on: 127.0.0.1 is refused, the job dies with the reason.
    let app = spawn_with(|s| {
        s.rules = Some(rules_path.clone());
        s.dispatch.allow_private_targets = false;
    })
    .await;
    let a = app.post_ok("/webhook/behavior", &purchase("CLX", 99.0, "x1")).await;
    let job = a["actions"][0]["job_id"].as_str().unwrap().to_owned();
    app.eventually("refused", |a| a.job_state(&job) == "dead").await;
    let detail = app.get_json(&format!("/api/actions/{job}")).await;
    assert!(detail["action"]["last_error"].as_str().unwrap().contains("internal address"), "{detail}");
    assert_eq!(requests_to(&receiver, "/hook").await.len(), 2, "nothing more reached the receiver");
    app.stop().await;
}

#[tokio::test]
async fn with_nothing_configured_the_outbox_records_what_would_be_sent() {
    let app = spawn_app().await;
    app.post_ok("/webhook/behavior", &purchase("CLO", 120.0, "o1")).await;
    app.eventually("VIP offer in the outbox", |a| a.count("outbox") >= 1).await;
    let outbox = app.get_json("/api/outbox").await;
    let first = &outbox["outbox"][0];
    assert_eq!(first["channel"], "send_email");
    assert_eq!(first["payload"]["to"][0]["email"], "clo@exemple.fr");
    assert_eq!(first["payload"]["subject"], "Une offre réservée à nos meilleurs clients");
    assert_eq!(app.count("outbox"), 1, "the thank-you (+5 min) and task (+24 h) are not due yet");
    app.advance(Duration::hours(25));
    app.eventually("everything due is in the outbox", |a| a.count("outbox") == 4).await;
    let mut channels = app.query_strings("SELECT channel FROM outbox");
    channels.sort();
    assert_eq!(channels, ["create_task", "schedule_call", "send_email", "send_email"]);
    let stats = app.get_json("/api/actions/stats").await;
    assert_eq!(stats["executors"]["send_email"], "outbox");
    assert_eq!(stats["executors"]["update_score"], "internal");
    app.stop().await;
}

#[tokio::test]
async fn delayed_internal_actions_apply_when_due_with_history() {
    let rules = r#"[{"rule_id": "cool_down", "trigger": "form_submit", "priority": 50,
        "actions": [{"action_type": "update_score", "config": {"score_delta": 35}, "delay_minutes": 60},
                    {"action_type": "add_tag", "config": {"tag": "nurtured"}, "delay_minutes": 60}]}]"#;
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, rules).unwrap();
    let mut with_defaults: Vec<Value> =
        serde_json::from_str(&relance_core::RuleSet::defaults().to_seed_json()).unwrap();
    with_defaults.extend(serde_json::from_str::<Vec<Value>>(rules).unwrap());
    std::fs::write(&rules_path, serde_json::to_string(&with_defaults).unwrap()).unwrap();
    let app = spawn_with(|s| s.rules = Some(rules_path.clone())).await;
    let a = app.post_ok("/webhook/behavior", &json!({"client_code": "CLI", "action": "form_submit"})).await;
    assert_eq!(a["contact"]["score"], 50);
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    assert_eq!(app.get_json("/api/contacts/CLI").await["score"], 50, "not yet");
    app.advance(Duration::minutes(61));
    app.eventually("delayed actions applied", |a| {
        a.query_strings("SELECT state FROM jobs WHERE rule_id = 'cool_down'").iter().all(|s| s == "done")
    })
    .await;
    let c = app.get_json("/api/contacts/CLI").await;
    assert_eq!(c["score"], 85);
    assert!(c["tags"].as_array().unwrap().contains(&json!("nurtured")));
    // 50 → 85 crossed 80: the VIP workflow fired from the delayed action.
    let states = app.job_states();
    assert!(states.iter().filter(|s| s.starts_with("send_email")).count() == 1, "{states:?}");
    let history = app.get_json("/api/contacts/CLI/history").await;
    let row = history["history"].as_array().unwrap().iter().find(|r| r["field"] == "score").unwrap().clone();
    assert_eq!(
        (row["before"].clone(), row["after"].clone(), row["rule_id"].clone()),
        (json!(50), json!(85), json!("cool_down"))
    );
    app.stop().await;
}

#[tokio::test]
async fn external_workers_claim_complete_and_fail_jobs() {
    let app = spawn_with(|s| {
        s.dispatch.routes.insert(ActionType::CreateTask, ExecutorKind::External);
        s.dispatch.routes.insert(ActionType::ScheduleCall, ExecutorKind::External);
        s.dispatch.retry_schedule = vec![StdDuration::from_secs(30)];
        s.dispatch.jitter = 0.0;
    })
    .await;
    app.post_ok("/webhook/behavior", &purchase("CLE", 120.0, "e1")).await;
    let claim = |limit: u32| {
        let (client, url) = (app.client.clone(), format!("{}/api/actions/claim", app.base));
        async move {
            client
                .post(url)
                .json(&json!({"executor": "external", "limit": limit, "lease_seconds": 60}))
                .send()
                .await
                .unwrap()
        }
    };
    let none: Value = claim(10).await.json().await.unwrap();
    assert_eq!(none["actions"], json!([]), "nothing due yet (call +2 h, task +24 h)");
    app.advance(Duration::hours(25));
    let got: Value = claim(10).await.json().await.unwrap();
    let actions = got["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2);
    assert!(actions.iter().all(|a| a["contact"]["client_code"] == "CLE"));
    let again: Value = claim(10).await.json().await.unwrap();
    assert_eq!(again["actions"], json!([]), "leased jobs are not handed out twice");

    let call =
        actions.iter().find(|a| a["action_type"] == "schedule_call").unwrap()["job_id"].as_str().unwrap().to_owned();
    let task =
        actions.iter().find(|a| a["action_type"] == "create_task").unwrap()["job_id"].as_str().unwrap().to_owned();
    let done = app
        .client
        .post(format!("{}/api/actions/{call}/complete", app.base))
        .json(&json!({"result": "appel planifié"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(app.job_state(&call), "done");
    let failed = app
        .client
        .post(format!("{}/api/actions/{task}/fail", app.base))
        .json(&json!({"reason": "Outlook indisponible"}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    assert_eq!(app.job_state(&task), "failed");
    let twice = app.client.post(format!("{}/api/actions/{call}/complete", app.base)).send().await.unwrap();
    assert_eq!(twice.status(), 409);
    let bad = app
        .client
        .post(format!("{}/api/actions/claim", app.base))
        .json(&json!({"executor": "brevo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    // The failed task comes back after its backoff, and a lease that runs out frees a job.
    app.advance(Duration::seconds(31));
    let back: Value = claim(10).await.json().await.unwrap();
    assert_eq!(back["actions"].as_array().unwrap().len(), 1);
    app.advance(Duration::seconds(61));
    let released: Value = claim(10).await.json().await.unwrap();
    assert_eq!(released["actions"][0]["job_id"], task.as_str(), "an expired lease makes the job claimable again");
    let dead = app
        .client
        .post(format!("{}/api/actions/{task}/fail", app.base))
        .json(&json!({"reason": "no such mailbox", "retry": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(dead.status(), 200);
    assert_eq!(app.job_state(&task), "dead");
    app.stop().await;
}

#[tokio::test]
async fn operators_list_and_cancel_pending_actions() {
    let app = spawn_app().await;
    app.post_ok("/webhook/behavior", &purchase("CLC", 75.0, "c1")).await;
    let pending = app.get_json("/api/actions?state=pending&contact=CLC").await;
    let list = pending["actions"].as_array().unwrap();
    assert!(list.len() >= 3, "{pending}");
    let task = list.iter().find(|j| j["action_type"] == "create_task").unwrap()["id"].as_str().unwrap().to_owned();
    let resp = app.client.post(format!("{}/api/actions/{task}/cancel", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.job_state(&task), "cancelled");
    let again = app.client.post(format!("{}/api/actions/{task}/cancel", app.base)).send().await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(app.get("/api/actions?state=sleeping").await.status(), 400);
    assert_eq!(app.get("/api/actions/no-such-job").await.status(), 404);
    let by_type = app.get_json("/api/actions?action_type=create_task").await;
    assert_eq!(by_type["actions"].as_array().unwrap().len(), 1);
    // The VIP offer (due at once) first: a clock that jumped while it ran would expire its
    // lease, and a second claim would run it again (at least once, by design), so the
    // outbox could reach 4 rows between two looks and never be seen at 3.
    app.eventually("the VIP offer ran", |a| a.count("outbox") == 1).await;
    app.advance(Duration::hours(25));
    app.eventually("all others ran", |a| a.count("outbox") == 3).await;
    assert_eq!(app.job_state(&task), "cancelled", "a cancelled job never runs");
    app.stop().await;
}

#[tokio::test]
async fn jobs_pending_at_a_crash_run_once_after_restart_and_expired_leases_are_retried() {
    let mock = MockServer::start().await;
    Mock::given(method("POST")).and(path("/v3/smtp/email")).respond_with(ResponseTemplate::new(201)).mount(&mock).await;
    // First life: the dispatcher is off, as if the process died before running anything.
    let app = spawn_with(|s| {
        brevo(&mock)(s);
        s.dispatch.enabled = false;
    })
    .await;
    for i in 0..5 {
        app.post_ok("/webhook/behavior", &purchase(&format!("CLR{i}"), 90.0, &format!("r{i}"))).await;
    }
    let now = app.now();
    let db = app.stop().await;
    // A job leased by a dispatcher that then crashed: running, lease expired.
    db.execute(&format!(
        "UPDATE jobs SET state = 'running', attempts = 1, lease_until = {}
         WHERE id = (SELECT id FROM jobs WHERE action_type = 'send_email' AND state = 'pending' ORDER BY id LIMIT 1)",
        now.timestamp_millis() - 1000
    ));
    assert_eq!(db.count("jobs WHERE state = 'running'"), 1);
    assert!(requests_to(&mock, "/v3/smtp/email").await.is_empty());

    let app = spawn_on(db, now + Duration::minutes(6), brevo(&mock)).await;
    app.eventually("all due emails sent", |a| {
        a.query_strings("SELECT state FROM jobs WHERE action_type = 'send_email'").iter().all(|s| s == "done")
    })
    .await;
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    let sent = requests_to(&mock, "/v3/smtp/email").await;
    assert_eq!(sent.len(), 10, "5 VIP offers + 5 thank-yous, each exactly once");
    let mut keys: Vec<String> =
        sent.iter().map(|r| body(r)["headers"]["idempotencyKey"].as_str().unwrap().to_owned()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 10);
    app.stop().await;
}
