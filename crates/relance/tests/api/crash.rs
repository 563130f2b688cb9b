//! Crash loop: the server as a child process under concurrent load with its dispatcher
//! busy, SIGKILL at a random moment, restart on the same database; 20 cycles by default
//! (`RELANCE_CRASH_CYCLES`). Afterwards:
//! - every event that got a 200 is stored exactly once, and no event twice;
//! - every contact equals a replay of the stored events in commit order;
//! - every job ran (done), and the mock receivers (Brevo and a webhook endpoint) saw each
//!   job's idempotency key; a key seen twice is a redelivery of an attempt cut by a kill
//!   (at most `concurrency` per kill), which the receiver deduplicates by that key.
//!
//! Ignored by default (it builds and kills real processes); `scripts/test.sh` runs it, on
//! SQLite and on PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use relance_core::{Contact, Engine, RuleSet};
use serde_json::json;

use crate::common::{EVENT_COLUMNS, stored_event};

/// Sends events from `workers` tasks until `stop_after` elapses or the server dies;
/// returns the event ids that were acknowledged with 200.
async fn load(port: u16, round: usize, workers: usize, stop_after: Duration) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, acked) = (client.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while start.elapsed() < stop_after {
                n += 1;
                let id = format!("r{round}-w{w}-n{n}");
                let contact = format!("C{:03}", (w * 7919 + n * 31) % 40);
                let (action, amount) = match n % 5 {
                    0 => ("purchase", json!(40 + (n % 3) * 30)),
                    1 => ("open", json!(null)),
                    2 => ("page_visit", json!(null)),
                    3 => ("form_submit", json!(null)),
                    _ => ("click", json!(null)),
                };
                let email = format!("{}@example.fr", contact.to_lowercase());
                let body = json!({"client_code": contact, "email": email, "action": action, "event_id": id,
                                  "metadata": {"amount": amount}});
                match client.post(format!("http://127.0.0.1:{port}/webhook/behavior")).json(&body).send().await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(id),
                    Ok(r) => assert_eq!(r.status(), 429, "only 200 or 429 are acceptable answers"),
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// Rules whose actions run at once, so that the dispatcher works during the load.
fn rules(hook_url: &str) -> String {
    format!(
        r#"
[[rule]]
rule_id = "thanks"
trigger = "purchase"
priority = 90
[[rule.actions]]
action_type = "update_score"
config = {{ score_delta = 20 }}
[[rule.actions]]
action_type = "send_email"
config = {{ template = "thank_you" }}

[[rule]]
rule_id = "visit_hook"
trigger = "page_visit"
priority = 50
[[rule.actions]]
action_type = "update_score"
config = {{ score_delta = 2 }}
[[rule.actions]]
action_type = "trigger_webhook"
config = {{ url = "{hook_url}" }}

[[rule]]
rule_id = "opened"
trigger = "email_opened"
priority = 40
[[rule.actions]]
action_type = "update_score"
config = {{ score_delta = 5 }}

[[rule]]
rule_id = "form"
trigger = "form_submit"
priority = 40
[[rule.actions]]
action_type = "add_tag"
config = {{ tag = "lead" }}

[[rule]]
rule_id = "clicked"
trigger = "email_clicked"
priority = 60
[[rule.actions]]
action_type = "update_score"
config = {{ score_delta = 15 }}
[[rule.actions]]
action_type = "add_tag"
config = {{ tag = "engaged" }}
"#
    )
}

/// Jobs not finished yet (pending, running, failed awaiting a retry).
fn unfinished(db: &crate::common::TestDb) -> i64 {
    db.count("jobs WHERE state IN ('pending', 'running', 'failed')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "spawns and kills server processes; run by scripts/test.sh"]
async fn crash_loop_loses_nothing_and_runs_every_job() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let brevo = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/smtp/email"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"messageId": "<m@relay>"})))
        .mount(&brevo)
        .await;
    let hooks = MockServer::start().await;
    Mock::given(method("POST")).and(path("/hook")).respond_with(ResponseTemplate::new(204)).mount(&hooks).await;

    let dir = tempfile::tempdir().unwrap();
    let rules_text = rules(&format!("{}/hook", hooks.uri()));
    std::fs::write(dir.path().join("rules.toml"), &rules_text).unwrap();
    let concurrency = 8usize;
    let config = dir.path().join("relance.toml");
    std::fs::write(
        &config,
        format!(
            r#"
rules = "{rules}"
[dispatch]
allow_private_targets = true
concurrency = {concurrency}
lease_seconds = 2
poll_interval_ms = 50
retry_schedule_seconds = [1, 1, 2, 2, 3]
jitter = 0.0
[brevo]
api_key = "crash-test"
base_url = "{brevo}"
sender_email = "cave@example.fr"
"#,
            rules = dir.path().join("rules.toml").display(),
            brevo = brevo.uri(),
        ),
    )
    .unwrap();

    let config_arg = config.to_str().unwrap();
    let test_db = crate::common::TestDb::fresh();
    let url = test_db.url();
    let db = url.as_str();
    let mut acked = Vec::new();
    let cycles = std::env::var("RELANCE_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(20usize);
    for round in 0..cycles {
        let port = crate::common::free_port();
        let mut child = crate::common::start_process(db, port, &["--config", config_arg]);
        let kill_after = Duration::from_millis(200 + fastrand::u64(0..900));
        let killer = tokio::spawn(async move {
            tokio::time::sleep(kill_after).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        });
        acked.extend(load(port, round, 12, Duration::from_secs(5)).await);
        killer.await.unwrap();
    }
    // A last clean run: the database opens and serves after the crashes, and the
    // dispatcher finishes what the kills interrupted (expired leases are claimed again).
    let port = crate::common::free_port();
    let mut child = crate::common::start_process(db, port, &["--config", config_arg]);
    acked.extend(load(port, cycles, 4, Duration::from_millis(300)).await);
    let deadline = Instant::now() + Duration::from_secs(60);
    while unfinished(&test_db) > 0 {
        assert!(Instant::now() < deadline, "{} jobs still unfinished", unfinished(&test_db));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked.len() > 100, "the load was too light to mean anything: {}", acked.len());

    let mut stored: HashMap<String, i64> = HashMap::new();
    for id in test_db.query_strings("SELECT sender_event_id FROM events") {
        *stored.entry(id).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(stored.get(id), Some(&1), "acknowledged event {id} must be stored exactly once");
    }
    assert!(stored.values().all(|n| *n == 1), "no event is stored twice");
    assert_eq!(acked.iter().collect::<HashSet<_>>().len(), acked.len());

    // Replay in commit order (per contact, event ids follow commit order) and compare.
    let engine = Engine::new(RuleSet::parse(&rules_text, relance_core::RuleFormat::Toml).unwrap());
    let mut replayed: HashMap<i64, Contact> = HashMap::new();
    for row in test_db.query_rows(&format!("SELECT contact_id, received_at, {EVENT_COLUMNS} FROM events ORDER BY id")) {
        let contact_id: i64 = row[0].parse().unwrap();
        let event = stored_event(&row[2..]);
        let now = Utc.timestamp_millis_opt(row[1].parse().unwrap()).unwrap();
        let contact = replayed.entry(contact_id).or_insert_with(|| Contact::new(None, None, "Standard", now));
        *contact = engine.apply(contact, &event, now).contact;
    }
    let mut checked = 0;
    for row in test_db.query_rows("SELECT id, data FROM contacts") {
        let id: i64 = row[0].parse().unwrap();
        let stored: Contact = serde_json::from_str(&row[1]).unwrap();
        let replay = &replayed[&id];
        assert_eq!(stored.score, replay.score, "contact {id} score");
        assert_eq!(stored.tags, replay.tags, "contact {id} tags");
        assert_eq!(stored.purchases, replay.purchases, "contact {id} purchases");
        assert_eq!(stored.engagement, replay.engagement, "contact {id} engagement");
        checked += 1;
    }
    assert_eq!(checked, replayed.len());

    // Every outside job ran, and its key reached its receiver.
    let states =
        test_db.query_strings("SELECT DISTINCT state FROM jobs WHERE action_type IN ('send_email', 'trigger_webhook')");
    assert_eq!(states, ["done"], "every outside job ends done");
    let job_keys: HashSet<String> = test_db
        .query_strings("SELECT id FROM jobs WHERE action_type IN ('send_email', 'trigger_webhook')")
        .into_iter()
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in brevo.received_requests().await.unwrap() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        let key = body["headers"]["idempotencyKey"].as_str().expect("every Brevo call carries its key").to_owned();
        *seen.entry(key).or_default() += 1;
    }
    for r in hooks.received_requests().await.unwrap() {
        let key = r.headers.get("webhook-id").expect("every webhook carries its id").to_str().unwrap().to_owned();
        *seen.entry(key).or_default() += 1;
    }
    let seen_keys: HashSet<String> = seen.keys().cloned().collect();
    assert_eq!(seen_keys, job_keys, "each job reached its receiver, and nothing else did");
    let redelivered = seen.values().filter(|n| **n > 1).count();
    assert!(
        redelivered <= (cycles + 1) * concurrency,
        "{redelivered} redeliveries: more than the attempts a kill can cut"
    );
    eprintln!(
        "crash loop: {cycles} SIGKILL cycles, {} acknowledged events, {checked} contacts replayed, \
         {} outside jobs done, {redelivered} redelivered with the same key after a kill",
        acked.len(),
        job_keys.len()
    );
}
