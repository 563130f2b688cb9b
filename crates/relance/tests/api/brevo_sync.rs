//! Scores pushed to Brevo contact attributes (`[brevo.sync]`), against a mock Brevo, with
//! the clock under the test's control: coalescing, batching, Brevo's rate limit, contacts
//! Brevo does not know, and every body checked against Brevo's official definitions.

use std::time::Duration as StdDuration;

use crate::common::*;
use chrono::Duration;
use relance::config::brevo_sync::{BrevoSyncConfig, BrevoSyncSettings};
use relance::config::{BrevoSettings, Secret, Settings};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const RULES: &str = r#"
[[score]]
name = "engagement"
range = [0, 100]
decay = { half_life_days = 30 }

[[rule]]
rule_id = "visit"
trigger = "page_visit"
priority = 50
actions = [
  { action_type = "update_score", config = { score = "engagement", score_delta = 5 } },
  { action_type = "update_score", config = { score_delta = 2 } },
]
"#;

/// Checks a body against one of Brevo's contacts definitions, unknown keys included (the
/// definitions allow them; Brevo ignores them, so none is sent).
fn assert_valid(definition: &str, body: &Value) {
    let file = format!("{}/../../fixtures/external/brevo-v3-contacts-subset.json", env!("CARGO_MANIFEST_DIR"));
    let api: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let schema = json!({"definitions": api["definitions"], "$ref": format!("#/definitions/{definition}")});
    let v = jsonschema::draft4::options().should_validate_formats(true).build(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{definition}: {errors:#?}\n{body:#}");
    let known = api["definitions"][definition]["properties"].as_object().unwrap();
    for key in body.as_object().unwrap().keys() {
        assert!(known.contains_key(key), "{definition} has no property {key}");
    }
}

fn with_sync(mock: &MockServer, rules: &std::path::Path, create_missing: bool) -> impl FnOnce(&mut Settings) {
    let base_url = format!("{}/v3", mock.uri());
    let rules = rules.to_owned();
    move |s: &mut Settings| {
        let config = BrevoSyncConfig {
            attributes: [("LEAD_SCORE", "score"), ("ENGAGEMENT", "scores.engagement"), ("RELANCE_TAGS", "tags")]
                .into_iter()
                .map(|(a, f)| (a.to_owned(), f.to_owned()))
                .collect(),
            create_missing_contacts: create_missing,
            ..BrevoSyncConfig::default()
        };
        s.dispatch.brevo = Some(BrevoSettings {
            api_key: Secret::new("xkeysib-test"),
            base_url,
            sender_email: None,
            sender_name: None,
            sms_sender: "Domaine".into(),
            templates: Default::default(),
            sync: BrevoSyncSettings::from_config(&config).unwrap(),
        });
        s.dispatch.retry_schedule = vec![StdDuration::from_secs(60), StdDuration::from_secs(600)];
        s.dispatch.jitter = 0.0;
        s.rules = Some(rules);
    }
}

fn rules_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rules.toml");
    std::fs::write(&p, RULES).unwrap();
    (dir, p)
}

fn visit(email: &str, n: usize) -> Value {
    json!({"email": email, "action": "page_visit", "event_id": format!("{email}-{n}")})
}

async fn contact_requests(mock: &MockServer) -> Vec<Request> {
    let all = mock.received_requests().await.unwrap_or_default();
    all.into_iter().filter(|r| r.url.path().starts_with("/v3/contacts")).collect()
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

async fn wait_requests(mock: &MockServer, n: usize) -> Vec<Request> {
    let deadline = std::time::Instant::now() + StdDuration::from_secs(10);
    loop {
        let got = contact_requests(mock).await;
        if got.len() >= n {
            return got;
        }
        assert!(std::time::Instant::now() < deadline, "waited for {n} Brevo requests, got {}", got.len());
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
}

/// Nothing more reaches Brevo for a while (the worker polls every 20 ms here).
async fn quiet(mock: &MockServer, n: usize) {
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    assert_eq!(contact_requests(mock).await.len(), n, "no further Brevo request expected");
}

#[tokio::test]
async fn ten_changes_make_one_update_with_the_latest_values_then_wait_the_interval() {
    let mock = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v3/contacts/"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mock)
        .await;
    let (_dir, rules) = rules_file();
    let app = spawn_with(with_sync(&mock, &rules, false)).await;

    for n in 0..10 {
        app.post_ok("/webhook/behavior", &visit("anne+vin@example.fr", n)).await;
    }
    quiet(&mock, 0).await; // a change waits delay_seconds (5) for the rest of its burst
    app.advance(Duration::seconds(6));
    let sent = wait_requests(&mock, 1).await;
    quiet(&mock, 1).await;
    let put = &sent[0];
    assert_eq!(put.url.path(), "/v3/contacts/anne+vin@example.fr");
    assert_eq!(put.url.query(), Some("identifierType=email_id"));
    assert_eq!(put.headers["api-key"], "xkeysib-test");
    let b = body(put);
    assert_eq!(b, json!({"attributes": {"LEAD_SCORE": 70, "ENGAGEMENT": 50, "RELANCE_TAGS": ""}}));
    assert_valid("updateContact", &b);

    // Another change: pushed no sooner than min_interval_seconds (60) after the last push.
    app.post_ok("/webhook/behavior", &visit("anne+vin@example.fr", 10)).await;
    app.advance(Duration::seconds(30));
    quiet(&mock, 1).await;
    app.advance(Duration::seconds(31));
    let sent = wait_requests(&mock, 2).await;
    assert_eq!(body(&sent[1])["attributes"]["ENGAGEMENT"], 55);
    app.eventually("every request is recorded", |a| a.count("brevo_sync_attempts") == 2).await;
    app.stop().await;
}

#[tokio::test]
async fn contacts_go_in_batches_and_a_429_waits_for_brevos_reset() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/batch"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-sib-ratelimit-limit", "10")
                .insert_header("x-sib-ratelimit-remaining", "0")
                .insert_header("x-sib-ratelimit-reset", "120")
                .set_body_json(json!({"code": "too_many_requests", "message": "Too many requests"})),
        )
        .up_to_n_times(1)
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/batch"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mock)
        .await;
    let (_dir, rules) = rules_file();
    let app = spawn_with(with_sync(&mock, &rules, false)).await;
    let batch: Vec<Value> = (0..3).map(|i| visit(&format!("c{i}@example.fr"), 0)).collect();
    app.post_ok("/webhook/behavior", &Value::Array(batch)).await;
    app.advance(Duration::seconds(6));

    let sent = wait_requests(&mock, 1).await;
    let b = body(&sent[0]);
    assert_valid("updateBatchContacts", &b);
    for item in b["contacts"].as_array().unwrap() {
        assert_valid("updateBatchContacts_contacts", item);
    }
    let emails: Vec<&str> = b["contacts"].as_array().unwrap().iter().map(|c| c["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["c0@example.fr", "c1@example.fr", "c2@example.fr"], "three contacts, one request");

    // 429: nothing before Brevo's window resets (120 s, more than the schedule's 60 s).
    // The wait is counted from when the worker reads the 429: the clock moves only once
    // the attempt is recorded (moved earlier, the reset lands 90 s later than the test's).
    app.eventually("the 429 is recorded", |a| a.count("brevo_sync_attempts") == 1).await;
    app.advance(Duration::seconds(90));
    quiet(&mock, 1).await;
    app.advance(Duration::seconds(31));
    wait_requests(&mock, 2).await;
    app.eventually("all three synced", |a| {
        a.query_strings("SELECT count(*) FROM brevo_sync WHERE last_status = 'done'") == ["3"]
    })
    .await;
    let outcomes =
        app.query_strings("SELECT outcome || ':' || coalesce(http_status, 0) FROM brevo_sync_attempts ORDER BY id");
    assert_eq!(outcomes, ["retry:429", "done:204"]);
    app.stop().await;
}

#[tokio::test]
async fn a_contact_brevo_does_not_know_is_reported_or_created() {
    for create_missing in [false, true] {
        let mock = MockServer::start().await;
        // Brevo refuses the whole batch; each contact is then pushed alone.
        Mock::given(method("POST"))
            .and(path("/v3/contacts/batch"))
            .respond_with(
                ResponseTemplate::new(400)
                    .set_body_json(json!({"code": "document_not_found", "message": "Contact does not exist"})),
            )
            .mount(&mock)
            .await;
        Mock::given(method("PUT"))
            .and(path("/v3/contacts/ghost@example.fr"))
            .respond_with(
                ResponseTemplate::new(404)
                    .set_body_json(json!({"code": "document_not_found", "message": "Contact does not exist"})),
            )
            .mount(&mock)
            .await;
        Mock::given(method("PUT"))
            .and(path("/v3/contacts/known@example.fr"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&mock)
            .await;
        Mock::given(method("POST"))
            .and(path("/v3/contacts"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 21})))
            .mount(&mock)
            .await;
        let (_dir, rules) = rules_file();
        let app = spawn_with(with_sync(&mock, &rules, create_missing)).await;
        app.post_ok("/webhook/behavior", &json!([visit("ghost@example.fr", 0), visit("known@example.fr", 0)])).await;
        app.advance(Duration::seconds(6));

        let expected = if create_missing { 4 } else { 3 };
        let sent = wait_requests(&mock, expected).await;
        quiet(&mock, expected).await;
        let status = |email: &str| {
            app.query_strings(&format!(
                "SELECT s.last_status FROM brevo_sync s JOIN contacts c ON c.id = s.contact_id WHERE c.email = '{email}'"
            ))
        };
        assert_eq!(status("known@example.fr"), ["done"]);
        if create_missing {
            assert_eq!(status("ghost@example.fr"), ["done"]);
            let create = sent.iter().find(|r| r.method.as_str() == "POST" && r.url.path() == "/v3/contacts").unwrap();
            let b = body(create);
            assert_eq!(b["email"], "ghost@example.fr");
            assert_eq!(b["updateEnabled"], true);
            assert_valid("createContact", &b);
        } else {
            assert_eq!(status("ghost@example.fr"), ["not_in_brevo"], "reported, not created");
            assert!(!sent.iter().any(|r| r.url.path() == "/v3/contacts"));
            let reported = app.get_json("/api/brevo/sync").await;
            assert_eq!(reported["status"]["not_in_brevo"], 1, "{reported}");
            assert_eq!(reported["problems"][0]["email"], "ghost@example.fr", "{reported}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn an_unmapped_change_sends_nothing() {
    let mock = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v3/contacts/"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mock)
        .await;
    let (_dir, rules) = rules_file();
    let app = spawn_with(with_sync(&mock, &rules, false)).await;
    app.post_ok("/webhook/behavior", &visit("anne@example.fr", 0)).await;
    app.advance(Duration::seconds(6));
    wait_requests(&mock, 1).await;
    // A Brevo "delivered" event changes no mapped field: no new push, even after the interval.
    let delivered =
        json!({"event": "delivered", "email": "anne@example.fr", "message-id": "<m1@x>", "ts_event": 1772442000});
    app.post_ok("/webhook/email", &delivered).await;
    app.advance(Duration::seconds(120));
    quiet(&mock, 1).await;
    app.stop().await;
}

fn relance_cli(args: Vec<String>) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(args)
        .env_remove("RELANCE_CONFIG")
        .env_remove("RELANCE_DATABASE_URL")
        .output()
        .expect("relance runs")
}

fn config_file(dir: &std::path::Path, mock: &MockServer) -> std::path::PathBuf {
    let p = dir.join("relance.toml");
    let text = format!(
        "[brevo]\napi_key = \"xkeysib-test\"\nbase_url = \"{}/v3\"\n\n[brevo.sync]\nattributes = {{ LEAD_SCORE = \"score\", ENGAGEMENT = \"scores.engagement\", RELANCE_SEGMENT = \"segment\" }}\n",
        mock.uri()
    );
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_the_attributes_and_pushes_every_contact() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/attributes/normal/ENGAGEMENT"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"code": "invalid_parameter", "message": "Attribute name must be unique"})),
        )
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v3/contacts/attributes/normal/"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/batch"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &mock);

    let out = tokio::task::spawn_blocking({
        let config = config.clone();
        move || {
            relance_cli(vec![
                "brevo".into(),
                "attributes".into(),
                "--create".into(),
                "--config".into(),
                config.display().to_string(),
            ])
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("LEAD_SCORE               float    score  created"), "{text}");
    assert!(text.contains("ENGAGEMENT               float    scores.engagement  already in Brevo"), "{text}");
    assert!(text.contains("RELANCE_SEGMENT          text     segment  created"), "{text}");
    for r in contact_requests(&mock).await {
        assert_valid("createAttribute", &body(&r));
    }

    // Contacts made by a server without sync; then every one pushed by the CLI.
    let (_rules_dir, rules) = rules_file();
    let app = spawn_with(move |s| s.rules = Some(rules)).await;
    for i in 0..5 {
        app.post_ok("/webhook/behavior", &visit(&format!("p{i}@example.fr"), 0)).await;
    }
    let db = app.stop().await;
    let url = db.url();
    let out = tokio::task::spawn_blocking(move || {
        relance_cli(vec![
            "brevo".into(),
            "sync".into(),
            "--all".into(),
            "--config".into(),
            config.display().to_string(),
            "--database".into(),
            url,
        ])
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("pushed: 5 done, 0 not in Brevo, 0 without email, 0 failed, 0 still pending"), "{text}");
    let batches: Vec<Value> =
        contact_requests(&mock).await.iter().filter(|r| r.url.path() == "/v3/contacts/batch").map(body).collect();
    assert_eq!(batches.len(), 1, "five contacts, one batch");
    assert_eq!(
        batches[0]["contacts"][0]["attributes"],
        json!({"LEAD_SCORE": 52, "ENGAGEMENT": 5, "RELANCE_SEGMENT": "Standard"})
    );
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_rate_and_never_claim_the_same_contact() {
    if !on_postgres() {
        eprintln!("skipped: several instances share PostgreSQL only (scripts/with-postgres.sh)");
        return;
    }
    // Contacts queued by a server, then two stores on the database, as two instances.
    let mock = MockServer::start().await;
    let (_dir, rules) = rules_file();
    let app = spawn_with(|s| {
        with_sync(&mock, &rules, false)(s);
        s.dispatch.enabled = false; // nothing pushes: the queue stays for the two below
    })
    .await;
    let visits: Vec<Value> = (0..40).map(|i| visit(&format!("r{i}@example.fr"), 0)).collect();
    app.post_ok("/webhook/behavior", &Value::Array(visits)).await;
    let db = app.stop().await;
    let later = t0() + Duration::minutes(5);
    let clock: relance::store::Clock = std::sync::Arc::new(move || later);
    let live = || relance::live_rules::LiveRules::new(relance_core::RuleSet::defaults());
    let a = open_store_on(&db.shared(), live(), clock.clone()).await;
    let b = open_store_on(&db, live(), clock).await;

    let (interval, lease) = (StdDuration::from_secs(60), StdDuration::from_secs(30));
    let (ca, cb) = tokio::join!(a.claim_brevo_sync(25, interval, lease), b.claim_brevo_sync(25, interval, lease));
    let mut claimed: Vec<i64> = ca.unwrap().iter().chain(cb.unwrap().iter()).map(|c| c.contact_id).collect();
    assert_eq!(claimed.len(), 40, "25 + 15: every queued contact once");
    claimed.sort_unstable();
    claimed.dedup();
    assert_eq!(claimed.len(), 40, "no contact claimed by both");

    // Ten requests a second at most, whichever instance sends: slots are 100 ms apart.
    let spacing = StdDuration::from_millis(100);
    let mut slots = Vec::new();
    for _ in 0..5 {
        let (sa, sb) = tokio::join!(a.take_brevo_slot(spacing), b.take_brevo_slot(spacing));
        slots.extend([sa.unwrap(), sb.unwrap()]);
    }
    slots.sort();
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], Duration::milliseconds(100), "{slots:?}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_backtest_shows_each_scores_distribution_and_the_brevo_changes() {
    let mock = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v3/contacts/"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/contacts/batch"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&mock)
        .await;
    let (_dir, rules) = rules_file();
    let app = spawn_with(with_sync(&mock, &rules, false)).await;
    // c0: 1 visit, c1: 2, c2: 3 (engagement 5, 10, 15 under the live rules).
    for i in 0..3 {
        for n in 0..=i {
            app.post_ok("/webhook/behavior", &visit(&format!("h{i}@example.fr"), n)).await;
        }
    }
    let candidate = RULES.replace("score_delta = 5 }", "score_delta = 30 }");
    let out = app.post_ok("/api/simulate", &json!({"rules": candidate})).await;
    let report = &out["report"];
    let dist = report["score_distributions"].as_array().unwrap();
    let engagement = dist.iter().find(|d| d["name"] == "engagement").unwrap();
    assert_eq!(engagement["bucket_starts"][1], 10);
    assert_eq!(engagement["live"], json!([1, 2, 0, 0, 0, 0, 0, 0, 0, 0]), "5 | 10, 15");
    assert_eq!(engagement["candidate"], json!([0, 0, 0, 1, 0, 0, 1, 0, 0, 1]), "30, 60, 90");
    let lead = dist.iter().find(|d| d["name"] == "lead").unwrap();
    assert_eq!(lead["live"], lead["candidate"], "the lead score's rule is the same in both");
    assert_eq!(report["brevo_attribute_changes"], 3, "ENGAGEMENT differs for all three");
    app.stop().await;
}
