//! Explain and the score API.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn explain_shows_the_score_as_a_sum_of_causes() {
    let app = spawn_app().await;
    let who = |action: &str| json!({"client_code": "CL001", "email": "client@example.com", "action": action});
    app.post_ok("/webhook/behavior", &who("open")).await;
    app.post_ok(
        "/webhook/email",
        &json!({"event": "click", "email": "client@example.com", "ts_epoch": 1772442000000i64}),
    )
    .await;
    let mut purchase = who("purchase");
    purchase["metadata"] = json!({"amount": 80});
    app.post_ok("/webhook/behavior", &purchase).await;
    app.post_ok(
        "/webhook/email",
        &json!({"event": "spam", "email": "client@example.com", "camp_id": 3, "ts_event": 1772442100}),
    )
    .await;

    let e = app.get_json("/api/contacts/CL001/explain").await;
    assert_eq!(e["score"]["baseline"], 50);
    assert_eq!(e["score"]["current"], 0);
    let deltas: Vec<(String, i64)> = e["score"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["rule_id"].as_str().unwrap().to_owned(), c["delta"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        deltas,
        [
            ("rule_email_opened".into(), 5),
            ("rule_email_clicked".into(), 15),
            ("rule_purchase".into(), 30),
            ("rule_unsubscribe".into(), -100)
        ],
        "the purchase's +50 was clamped at 100, so it counts +30"
    );
    let sum: i64 = 50 + deltas.iter().map(|d| d.1).sum::<i64>();
    assert_eq!(sum.clamp(0, 100), 0);
    let tags: Vec<(String, String)> = e["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap().into(), t["rule_id"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        tags,
        [("engaged".into(), "rule_email_clicked".into()), ("unsubscribed".into(), "rule_unsubscribe".into())]
    );
    assert_eq!(e["suppression"]["email"], "complained");
    let causes: Vec<&str> =
        e["suppression"]["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap()).collect();
    assert_eq!(causes, ["unsubscribed", "complained"]);
    // The complaint paused everything that would contact them: the thank-you email, the
    // follow-up task and the VIP call were cancelled; nothing is pending.
    assert_eq!(e["pending_actions"], json!([]), "{}", e["pending_actions"]);
    assert_eq!(app.get("/api/contacts/CL999/explain").await.status(), 404);

    let db = app.stop().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["contacts", "explain", "client@example.com", "--database", &db.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CL001 / client@example.com: segment Standard, score 0"), "{text}");
    assert!(text.contains("+30  rule_purchase"), "{text}");
    assert!(text.contains("suppression: email complained, sms complained"), "{text}");
}

#[tokio::test]
async fn the_score_api_is_the_formula() {
    let app = spawn_app().await;
    let r: Value = app
        .post_ok("/api/score", &json!({"rfm": 3.5, "engagement": 5, "purchases": 2, "days_since_purchase": 10}))
        .await;
    assert_eq!((r["raw"].as_i64(), r["score"].as_i64()), (Some(105), Some(100)));
    // The seed's calculator's names.
    let seed: Value = app
        .post_ok(
            "/api/score",
            &json!({"rfm_score": 2, "engagement_events": 3, "purchases": 1, "days_since_purchase": 100}),
        )
        .await;
    assert_eq!(
        (seed["rfm"].as_i64(), seed["engagement"].as_i64(), seed["score"].as_i64()),
        (Some(20), Some(6), Some(66))
    );
    for (body, field) in [(json!({"rfm": 5}), "rfm"), (json!({"rfm": 1, "purchases": -1}), "purchases")] {
        let resp = app.post("/api/score", &body).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.json::<Value>().await.unwrap()["field"], field);
    }
    assert_eq!(app.post("/api/score", &json!({"engagement": 1})).await.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_events_actions_and_jobs() {
    let app = spawn_app().await;
    app.post_ok("/webhook/email", &fixture("click")).await;
    app.post_ok("/webhook/email", &fixture("click")).await;
    app.post_ok(
        "/webhook/behavior",
        &json!({"client_code": "M1", "email": "m1@x.fr", "action": "purchase", "metadata": {"amount": 99}}),
    )
    .await;
    app.eventually("VIP offer ran", |a| a.count("outbox") == 1).await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    for line in [
        "relance_events_total{source=\"brevo\",trigger=\"email_clicked\"} 1",
        "relance_duplicate_deliveries_total{source=\"brevo\"} 1",
        "relance_events_total{source=\"tracking\",trigger=\"purchase\"} 1",
        "relance_actions_total{action_type=\"send_email\",status=\"scheduled\"} 2",
        "relance_jobs{state=\"pending\",action_type=\"create_task\",executor=\"outbox\"} 1",
        "relance_jobs{state=\"done\",action_type=\"send_email\",executor=\"outbox\"} 1",
        "relance_job_lateness_seconds_count 1",
        "relance_ingest_duration_seconds_count 3",
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn contacts_are_listed_with_filters_and_a_cursor() {
    let app = spawn_app().await;
    for i in 0..25 {
        let segment = if i % 5 == 0 { "VIP" } else { "Standard" };
        let url = format!("{}/api/contacts/L{i:02}", app.base);
        let resp =
            app.client.put(url).json(&json!({"segment": segment, "rfm_score": (i % 5) as f64})).send().await.unwrap();
        assert_eq!(resp.status(), 201);
    }
    app.post_ok("/webhook/behavior", &json!({"client_code": "L01", "action": "click"})).await;
    app.post_ok("/webhook/email", &json!({"event": "click", "email": "x@y.fr", "ts_event": 1})).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app.get_json(&format!("/api/contacts?limit=10&cursor={cursor}")).await;
        for c in page["contacts"].as_array().unwrap() {
            seen.push(c["client_code"].as_str().unwrap_or("-").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 26, "every contact once across pages");
    let vip = app.get_json("/api/contacts?segment=VIP").await;
    assert_eq!(vip["contacts"].as_array().unwrap().len(), 5);
    let high = app.get_json("/api/contacts?score_min=80&score_max=90").await;
    let scores: Vec<i64> = high["contacts"].as_array().unwrap().iter().map(|c| c["score"].as_i64().unwrap()).collect();
    assert!(!scores.is_empty() && scores.iter().all(|s| (80..=90).contains(s)), "{scores:?}");
    let engaged = app.get_json("/api/contacts?tag=engaged").await;
    assert_eq!(engaged["contacts"][0]["email"], "x@y.fr");
    assert_eq!(engaged["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(app.get_json("/api/contacts?updated_since=2030-01-01").await["contacts"], json!([]));
    for bad in ["score_min=90&score_max=10", "cursor=zz", "updated_since=soon", "colour=red"] {
        assert_eq!(app.get(&format!("/api/contacts?{bad}")).await.status(), 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn gdpr_export_and_erasure() {
    let app = spawn_app().await;
    let body = json!({"client_code": "G1", "email": "gdpr@exemple.fr", "action": "purchase", "event_id": "g-1", "metadata": {"amount": 120}});
    app.post_ok("/webhook/behavior", &body).await;
    app.post_ok(
        "/webhook/email",
        &json!({"event": "click", "email": "gdpr@exemple.fr", "ts_event": 5, "link": "https://x.fr/?u=gdpr"}),
    )
    .await;
    app.eventually("VIP offer in the outbox", |a| a.count("outbox") == 1).await;

    let export = app.get_json("/api/contacts/G1/export").await;
    assert_eq!(export["contact"]["email"], "gdpr@exemple.fr");
    assert_eq!(export["events"].as_array().unwrap().len(), 2);
    assert!(export["history"].as_array().unwrap().len() >= 3);
    assert_eq!(export["actions"].as_array().unwrap().len(), 4);

    let resp = app.client.delete(format!("{}/api/contacts/gdpr@exemple.fr", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["report"]["events_anonymised"], 2);
    assert_eq!(report["report"]["jobs_cancelled"], 3, "thank-you, task and call were pending");
    assert_eq!(app.get("/api/contacts/G1").await.status(), 404);
    assert_eq!(app.get("/api/contacts/gdpr@exemple.fr").await.status(), 404);
    // Nothing identifying is left; the counts are.
    assert_eq!(app.count("events"), 2);
    assert_eq!(
        app.count("events WHERE email IS NOT NULL OR client_code IS NOT NULL OR sender_event_id IS NOT NULL"),
        0
    );
    let leftovers = app.query_strings("SELECT raw || event FROM events");
    assert!(leftovers.iter().all(|r| !r.contains("gdpr") && !r.contains("x.fr")), "{leftovers:?}");
    assert!(app.query_strings("SELECT payload FROM outbox").iter().all(|p| !p.contains("gdpr")));
    assert!(app.query_strings("SELECT data FROM contacts").iter().all(|d| !d.contains("gdpr") && !d.contains("G1")));
    assert_eq!(app.client.delete(format!("{}/api/contacts/G1", app.base)).send().await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn csv_import_is_all_or_nothing_unless_invalid_rows_are_skipped() {
    let app = spawn_app().await;
    let import = |csv: &'static str, skip: bool| {
        let (client, url) = (app.client.clone(), format!("{}/api/contacts/import?skip_invalid={skip}", app.base));
        async move {
            let r = client.post(url).header("content-type", "text/csv").body(csv).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let good = "client_code,email,first_name,last_name,phone,segment,rfm_score,purchases,total_spent,last_purchase_date\n\
                CL1,anne@exemple.fr,Anne,Martin,+33600000001,VIP,3.5,3,240.00,2026-01-10\n\
                CL2,,Paul,,,Standard,1,0,0,\n";
    let bad = "client_code,email,segment,rfm_score\nCL3,c3@exemple.fr,Standard,2\nCL4,nope,Standard,2\n";

    let (status, report) = import(bad, false).await;
    assert_eq!(status, 400);
    assert_eq!(report["imported"], false);
    assert_eq!(report["rejected"][0]["line"], 3);
    assert_eq!(app.count("contacts"), 0, "nothing half-imported");

    let (status, report) = import(good, false).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["created"].as_i64(), report["updated"].as_i64()), (Some(2), Some(0)));
    let anne = app.get_json("/api/contacts/CL1").await;
    assert_eq!(
        (anne["email"].clone(), anne["segment"].clone(), anne["phone"].clone()),
        (json!("anne@exemple.fr"), json!("VIP"), json!("+33600000001"))
    );
    assert_eq!(
        anne["score"], 95,
        "the formula: 50 + 35 (rfm) + 15 (3 purchases) - 5 (last purchase 51 days before the clock)"
    );

    let (status, report) = import(bad, true).await;
    assert_eq!(status, 200);
    assert_eq!((report["created"].as_i64(), report["rejected"][0]["line"].as_i64()), (Some(1), Some(3)));
    // A row whose email belongs to someone else is a conflict, reported with its line.
    let clash = "client_code,email\nCL9,anne@exemple.fr\n";
    let (status, report) = import(clash, false).await;
    assert_eq!(status, 400);
    assert!(report["rejected"][0]["reason"].as_str().unwrap().contains("already belongs"), "{report}");
    assert_eq!(report["rejected"][0]["line"], 2);
    assert_eq!(app.count("contacts"), 3);
    let db = app.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crm.csv");
    std::fs::write(&file, "client_code,segment\nCL1,Churn\nCL10,Standard\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["contacts", "import", file.to_str().unwrap(), "--database", &db.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 created, 1 updated, 0 rejected"));
}

#[tokio::test]
async fn history_with_a_limit_keeps_the_newest_changes() {
    let app = crate::common::spawn_app().await;
    for i in 0..4 {
        app.post_ok(
            "/webhook/behavior",
            &serde_json::json!({"email": "many@example.com", "action": "open", "event_id": format!("open-{i}")}),
        )
        .await;
    }
    let all = app.get_json("/api/contacts/many@example.com/history").await;
    let scores: Vec<i64> = all["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["field"] == "score")
        .map(|h| h["after"].as_i64().unwrap())
        .collect();
    assert_eq!(scores.len(), 4, "{all}");
    let last = app.get_json("/api/contacts/many@example.com/history?limit=1").await;
    let rows = last["history"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["after"].as_i64(), scores.last().copied(), "the newest change, not the oldest");
}
