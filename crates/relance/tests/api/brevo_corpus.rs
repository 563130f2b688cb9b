//! The corpus of real-shaped Brevo payloads (`fixtures/brevo/corpus.json` says which
//! documentation or public client each one follows): every event, in each spelling, with
//! `ts_epoch` in seconds and milliseconds and with no timestamp, posted alone and as one
//! array, then again. All 2xx with the right trigger, contact state and event time; every
//! redelivery `duplicate: true` with nothing changed. Runs on both backends.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::{Value, json};

struct Case {
    file: String,
    trigger: Option<String>,
    recognised: bool,
    /// Epoch ms, or `None` for "the received time".
    occurred_at_ms: Option<i64>,
    time_source: String,
    effects: Vec<String>,
    payload: Value,
}

fn corpus() -> Vec<Case> {
    let dir = format!("{}/../../fixtures/brevo", env!("CARGO_MANIFEST_DIR"));
    let manifest: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/corpus.json")).unwrap()).unwrap();
    manifest
        .into_iter()
        .map(|m| {
            let file = m["file"].as_str().unwrap().to_owned();
            assert!(m["follows"].as_str().is_some_and(|s| !s.is_empty()), "{file} names its source");
            let payload = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{file}")).unwrap()).unwrap();
            Case {
                trigger: m["trigger"].as_str().map(str::to_owned),
                recognised: m["recognised"].as_bool().unwrap(),
                occurred_at_ms: m["occurred_at_ms"].as_i64(),
                time_source: m["time_source"].as_str().unwrap().to_owned(),
                effects: m["effects"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_owned()).collect(),
                file,
                payload,
            }
        })
        .collect()
}

/// Every stored event by id: (occurred at, time_source).
async fn stored_events(app: &TestApp) -> BTreeMap<String, Value> {
    let page = app.get_json("/api/events?limit=1000").await;
    page["events"].as_array().unwrap().iter().map(|e| (e["id"].as_str().unwrap().to_owned(), e.clone())).collect()
}

/// What a redelivery must not change: every contact as the API shows it.
async fn contacts(app: &TestApp) -> Value {
    app.get_json("/api/contacts?limit=500").await["contacts"].clone()
}

fn check_answer(case: &Case, answer: &Value) {
    let f = &case.file;
    assert_eq!(answer["status"], "received", "{f}: {answer}");
    assert_eq!(answer["trigger"].as_str(), case.trigger.as_deref(), "{f}");
    assert_eq!(answer["recognised"], case.recognised, "{f}");
    let c = &answer["contact"];
    for effect in &case.effects {
        match effect.as_str() {
            "email_invalid" | "unsubscribed" | "complained" => assert_eq!(c[effect], true, "{f}: {effect}"),
            "soft_bounce" => {}
            other => panic!("{f}: unknown effect {other}"),
        }
    }
}

async fn check_stored(app: &TestApp, cases: &[Case], ids: &[String]) {
    let events = stored_events(app).await;
    assert_eq!(events.len(), cases.len(), "one stored event per payload");
    for (case, id) in cases.iter().zip(ids) {
        let e = &events[id];
        let expected = case.occurred_at_ms.unwrap_or(app.now().timestamp_millis());
        let at = chrono::DateTime::parse_from_rfc3339(e["timestamp"].as_str().unwrap()).unwrap();
        assert_eq!(at.timestamp_millis(), expected, "{}: event time", case.file);
        assert_eq!(e["raw"]["event"], case.payload["event"], "{}: raw kept", case.file);
    }
    for case in cases.iter().filter(|c| c.effects.contains(&"soft_bounce".to_owned())) {
        let email = case.payload["email"].as_str().unwrap();
        let c = app.get_json(&format!("/api/contacts/{email}")).await;
        assert!(c["engagement"]["soft_bounces"].as_u64() >= Some(1), "{}: {c}", case.file);
    }
}

#[tokio::test]
async fn every_payload_alone_then_again() {
    let cases = corpus();
    assert!(cases.len() >= 35);
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for case in &cases {
        let answer = app.post_ok("/webhook/email", &case.payload).await;
        assert_eq!(answer["duplicate"], false, "{}", case.file);
        check_answer(case, &answer);
        ids.push(answer["event_id"].as_str().unwrap().to_owned());
    }
    check_stored(&app, &cases, &ids).await;
    for (case, id) in cases.iter().zip(&ids) {
        let stored = app.query_strings(&format!("SELECT event FROM events WHERE id = {id}"));
        let event: Value = serde_json::from_str(&stored[0]).unwrap();
        assert_eq!(event["attributes"]["time_source"], case.time_source, "{}: time_source", case.file);
    }

    let before = contacts(&app).await;
    for (case, id) in cases.iter().zip(&ids) {
        let again = app.post_ok("/webhook/email", &case.payload).await;
        assert_eq!(again["duplicate"], true, "{}: a redelivery", case.file);
        assert_eq!(again["event_id"].as_str(), Some(id.as_str()), "{}", case.file);
        assert_eq!(again["actions"], json!([]), "{}", case.file);
    }
    assert_eq!(contacts(&app).await, before, "redeliveries change no contact");
    assert_eq!(stored_events(&app).await.len(), cases.len());
    app.stop().await;
}

#[tokio::test]
async fn every_payload_in_one_array_then_again() {
    let cases = corpus();
    let app = spawn_app().await;
    let batch = Value::Array(cases.iter().map(|c| c.payload.clone()).collect());
    let answer = app.post_ok("/webhook/email", &batch).await;
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());
    let mut ids = Vec::new();
    for (case, r) in cases.iter().zip(results) {
        assert_eq!(r["duplicate"], false, "{}", case.file);
        check_answer(case, r);
        ids.push(r["event_id"].as_str().unwrap().to_owned());
    }
    check_stored(&app, &cases, &ids).await;

    let before = contacts(&app).await;
    let again = app.post_ok("/webhook/email", &batch).await;
    for ((case, r), id) in cases.iter().zip(again["results"].as_array().unwrap()).zip(&ids) {
        assert_eq!(
            (r["duplicate"].as_bool(), r["event_id"].as_str()),
            (Some(true), Some(id.as_str())),
            "{}",
            case.file
        );
    }
    assert_eq!(contacts(&app).await, before, "a redelivered batch changes nothing");
    assert_eq!(stored_events(&app).await.len(), cases.len());
    app.stop().await;
}

#[tokio::test]
async fn a_proxy_open_without_timestamp_is_scored_once() {
    // anymail's sample carries no ts_epoch/ts_event/ts: the payload hash is its dedupe key.
    let app = spawn_with(|s| s.proxy_opens_are_opens = true).await;
    let payload = corpus().into_iter().find(|c| c.file == "proxy_open_no_timestamp.json").unwrap().payload;
    let first = app.post_ok("/webhook/email", &payload).await;
    assert_eq!((first["trigger"].as_str(), first["contact"]["score"].as_i64()), (Some("email_opened"), Some(55)));
    let again = app.post_ok("/webhook/email", &payload).await;
    assert_eq!((again["duplicate"].as_bool(), again["contact"]["score"].as_i64()), (Some(true), Some(55)));
    app.stop().await;
}

#[tokio::test]
async fn a_mixed_batch_keeps_the_opt_outs_and_the_rejected_item() {
    let app = spawn_app().await;
    let batch = json!([
        {"event": "unsubscribed", "email": "parti@example.org", "ts_epoch": 1772442000000i64},
        {"event": "spam", "email": "plainte@example.org", "ts_epoch": 1772442001000i64},
        {"event": "coupon_redeemed", "email": "client@example.org", "ts_epoch": 1772442002000i64},
        "not an object",
        {"event": "click"}
    ]);
    let answer = app.post_ok("/webhook/email", &batch).await;
    let r = answer["results"].as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(
        (r[0]["trigger"].as_str(), r[0]["contact"]["unsubscribed"].as_bool()),
        (Some("unsubscribe"), Some(true))
    );
    assert_eq!(r[1]["contact"]["complained"], true);
    assert_eq!((r[2]["recognised"].as_bool(), r[2]["trigger"].as_str()), (Some(false), None));
    assert_eq!((r[3]["status"].as_str(), r[3]["field"].as_str()), (Some("rejected"), Some("body")));
    assert_eq!((r[4]["status"].as_str(), r[4]["field"].as_str()), (Some("rejected"), Some("email")));
    assert_eq!(app.get_json("/api/contacts/parti@example.org").await["unsubscribed"], true);
    assert_eq!(app.get_json("/api/contacts/plainte@example.org").await["complained"], true);

    let kept = app.get_json("/api/deliveries/rejected?limit=10").await["rejected"].clone();
    let kept = kept.as_array().unwrap();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().any(|k| k["payload"] == r#""not an object""# && k["field"] == "body"));
    assert!(kept.iter().any(|k| k["payload"] == r#"{"event":"click"}"# && k["field"] == "email"));
    // A redelivered batch: the rejected items count up, nothing else changes.
    app.post_ok("/webhook/email", &batch).await;
    let kept = app.get_json("/api/deliveries/rejected").await["rejected"].clone();
    assert!(kept.as_array().unwrap().iter().all(|k| k["times"] == 2), "{kept}");

    // A single object that can never be stored: 400 naming the field, kept too.
    let resp = app.post("/webhook/email", &json!({"event": "opened", "email": "pas-une-adresse"})).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["field"], "email");
    let kept = app.get_json("/api/deliveries/rejected").await["rejected"].clone();
    assert_eq!(kept.as_array().unwrap().len(), 3);

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"relance_events_unrecognised_total{source="brevo",name="coupon_redeemed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"relance_deliveries_rejected_total{source="brevo",field="email"} 3"#), "{metrics}");

    // The overview shows the new name with its count, and the items that were kept.
    let html = dashboard_html(&app, "", "/").await;
    assert!(html.contains("Unrecognised event names in the last 7 days"), "{html}");
    assert!(html.contains("<code>coupon_redeemed</code></td><td class=\"num\">1</td>"), "{html}");
    assert!(html.contains("Deliveries that could not be stored"), "{html}");
    app.stop().await;
}
