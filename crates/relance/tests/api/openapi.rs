//! The API described from the code: OpenAPI 3.1, the Power Automate connector (Swagger
//! 2.0) and the Parse JSON schemas, checked against the live routes and real answers.

use std::collections::BTreeSet;

use crate::common::*;
use serde_json::{Value, json};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(*m).is_some() {
                ops.insert((m.to_string(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_documented_operation_is_a_live_route_and_the_connector_matches() {
    let app = spawn_with(with_tokens).await;
    let doc = app.get_json("/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(ops.len() >= 29, "{ops:?}");

    // Each documented (method, path) reaches a handler: never the "no such route" 404 nor 405.
    for (method, path) in &ops {
        let url = format!(
            "{}{}",
            app.base,
            path.replace("{key}", "nobody@example.com").replace("{id}", "no-such-job").replace("{version}", "999")
        );
        let resp = app
            .client
            .request(method.to_uppercase().parse().unwrap(), &url)
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}: {body}");
        assert!(!body.contains("no such route"), "{method} {path} is documented but not routed: {body}");
        assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
    }
    // And an undocumented one is not.
    let resp = app.client.get(format!("{}/api/nothing", app.base)).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // The connector: Swagger 2.0 with the same operations, as Power Automate needs it.
    let resp = app
        .client
        .get(format!("{}/connector/swagger.json", app.base))
        .header("host", "relance.example.fr")
        .send()
        .await
        .unwrap();
    let raw = resp.bytes().await.unwrap();
    assert!(raw.len() < 1_000_000, "{} bytes", raw.len());
    let sw: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(sw["swagger"], "2.0");
    assert_eq!(sw["host"], "relance.example.fr");
    assert_eq!(sw["basePath"], "/");
    assert_eq!(sw["schemes"], json!(["https"]));
    assert_eq!(sw["securityDefinitions"]["api_key"]["type"], "apiKey");
    assert_eq!(operations(&sw), ops);
    let mut ids = BTreeSet::new();
    for (method, path) in &ops {
        let op = &sw["paths"][path][method];
        let id = op["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "operationId {id} twice");
        let summary = op["summary"].as_str().unwrap();
        assert!(!summary.is_empty() && summary.len() <= 80 && !summary.ends_with('.'), "{id}: {summary:?}");
        let answers = op["responses"]["200"]["schema"].is_object() || op["responses"]["201"]["schema"].is_object();
        assert!(answers || path == "/webhook/health", "{id} answer schema");
        if path.starts_with("/api/") {
            assert_eq!(op["security"], json!([{"api_key": []}]), "{id}");
        }
    }
    assert!(!raw.windows(b"components".len()).any(|w| w == b"components"), "no 3.1 reference left");

    // With a public URL configured, that wins over the request's host.
    let app2 = spawn_with(|s| s.public_url = Some("https://crm.example.fr:8443/relance/".parse().unwrap())).await;
    let sw = app2.get_json("/connector/swagger.json").await;
    assert_eq!((sw["host"].as_str(), sw["basePath"].as_str()), (Some("crm.example.fr:8443"), Some("/relance")));
    let doc = app2.get_json("/openapi.json").await;
    assert_eq!(doc["servers"][0]["url"], "https://crm.example.fr:8443/relance");
}

#[tokio::test]
async fn the_docs_are_public_but_the_api_is_not() {
    let app = spawn_with(with_tokens).await;
    for path in ["/openapi.json", "/connector/swagger.json", "/schemas", "/schemas/action.json"] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let missing = app.get("/schemas/nothing.json").await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("action.json"), "{body}");
    assert_eq!(app.get("/api/rules").await.status(), 401);
    // One Power Automate connection holds one key: the admin token opens the webhooks too.
    let resp = app
        .client
        .post(format!("{}/webhook/behavior", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"client_code": "CL1", "action": "visit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn validator(schema: &Value) -> jsonschema::Validator {
    let text = schema.to_string();
    assert!(!text.contains("$ref"), "Parse JSON schemas are self-contained");
    jsonschema::draft4::new(schema).expect("a valid draft-04 schema")
}

fn assert_valid(v: &jsonschema::Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{what} does not match its schema: {errors:?}\n{instance:#}");
}

#[tokio::test]
async fn real_answers_match_the_parse_json_schemas() {
    let app = spawn_with(|s| {
        s.dispatch.enabled = false;
        s.dispatch.routes.insert(relance_core::ActionType::CreateTask, relance::config::ExecutorKind::External);
    })
    .await;
    let event_answer = validator(&app.get_json("/schemas/event-answer.json").await);
    let batch_answer = validator(&app.get_json("/schemas/batch-answer.json").await);
    let claimed = validator(&app.get_json("/schemas/claimed-actions.json").await);
    let action = validator(&app.get_json("/schemas/action.json").await);
    let error = validator(&app.get_json("/schemas/error.json").await);
    let brevo_event = validator(&app.get_json("/schemas/brevo-event.json").await);

    let schema = app.get_json("/schemas/event-answer.json").await;
    assert_eq!(schema["properties"]["trigger"]["type"], json!(["string", "null"]), "nullable as a type list");

    let click = json!({"event": "click", "email": "marie@example.fr", "link": "https://vins.example.fr/x", "ts_epoch": 1772442000000i64});
    assert_valid(&brevo_event, &click, "a Brevo click");
    let answer = app.post_ok("/webhook/email", &click).await;
    assert_valid(&event_answer, &answer, "the answer to a click");
    let delivered = json!({"event": "delivered", "email": "marie@example.fr", "message-id": "<m1>"});
    assert_valid(&event_answer, &app.post_ok("/webhook/email", &delivered).await, "an event with no trigger");
    let batch = app
        .post_ok(
            "/webhook/behavior",
            &json!([
                {"client_code": "CL9", "email": "marie@example.fr", "action": "purchase", "metadata": {"amount": 120}},
                {"client_code": "CL9", "action": "visit", "metadata": {"page": "/cave"}}
            ]),
        )
        .await;
    assert_valid(&batch_answer, &batch, "a batch answer");

    // The purchase crossed 80: the VIP rule's task (due a day later) is routed to the
    // external executor.
    app.advance(chrono::Duration::hours(25));
    let resp = app.post("/api/actions/claim", &json!({"executor": "external", "limit": 10})).await;
    assert_eq!(resp.status(), 200);
    let claim: Value = resp.json().await.unwrap();
    assert!(!claim["actions"].as_array().unwrap().is_empty(), "{claim}");
    assert_valid(&claimed, &claim, "claimed actions");
    for a in claim["actions"].as_array().unwrap() {
        assert_valid(&action, a, "an action");
    }

    let mixed = app
        .post_ok("/webhook/email", &json!([click, {"event": "opened"}, {"event": "coupon_x", "email": "a@b.fr"}]))
        .await;
    assert_eq!(mixed["results"][1]["status"], "rejected");
    assert_eq!(mixed["results"][2]["recognised"], false);
    assert_valid(&batch_answer, &mixed, "a batch with a rejected item and an unrecognised one");

    let resp = app.post("/webhook/email", &json!({"email": "a@b.fr"})).await;
    assert_eq!(resp.status(), 400);
    assert_valid(&error, &resp.json().await.unwrap(), "an error");
}

/// Microsoft's schema for connector files, its `//` comment lines stripped.
fn connector_schema() -> jsonschema::Validator {
    let file = format!("{}/../../fixtures/external/apiDefinition.swagger.schema.json", env!("CARGO_MANIFEST_DIR"));
    let text: String = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    // Some definition names hold `<` and `>`, which a `$ref` (a URI) must percent-encode.
    fn encode_refs(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    match child {
                        Value::String(r) if k == "$ref" => *r = r.replace('<', "%3C").replace('>', "%3E"),
                        other => encode_refs(other),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(encode_refs),
            _ => {}
        }
    }
    encode_refs(&mut schema);
    jsonschema::draft4::new(&schema).expect("Microsoft's schema compiles")
}

fn title_case(s: &str) -> bool {
    s.split(' ').all(|w| w.chars().next().is_some_and(|c| c.is_uppercase() || c.is_ascii_digit()))
}

#[tokio::test]
async fn the_connector_follows_microsofts_certification_rules() {
    let app = spawn_app().await;
    let sw = app.get_json("/connector/swagger.json").await;
    let errors: Vec<String> =
        connector_schema().iter_errors(&sw).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "the connector does not validate against Microsoft's schema: {errors:#?}");

    let mut problems = Vec::new();
    for (path, item) in sw["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = format!("{method} {path}");
            let summary = op["summary"].as_str().unwrap_or("");
            let ends_well = summary.chars().last().is_some_and(|c| c.is_alphanumeric());
            if summary.is_empty() || summary.chars().count() > 80 || summary.contains('/') || !ends_well {
                problems.push(format!("{id}: summary {summary:?}"));
            }
            if op["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                problems.push(format!("{id}: no description"));
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap_or("?");
                match p["x-ms-summary"].as_str() {
                    Some(t) if t.chars().count() <= 80 && title_case(t) => {}
                    other => problems.push(format!("{id} parameter {name}: x-ms-summary {other:?}")),
                }
                if p["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                    problems.push(format!("{id} parameter {name}: no description"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    app.stop().await;
}
