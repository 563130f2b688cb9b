//! Every body Relance sends to Brevo (an email with a Brevo template, a built-in template,
//! a plain email without a sender name, an SMS), captured by a mock Brevo, validates
//! against Brevo's official API definition (`fixtures/external/`).

use std::time::Duration as StdDuration;

use crate::common::*;
use relance::config::{BrevoSettings, Secret};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Brevo's Swagger 2.0 subset, as a draft-4 schema for one of its definitions.
fn brevo_schema(definition: &str) -> jsonschema::Validator {
    let file = format!("{}/../../fixtures/external/brevo-v3-subset.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&file).expect("Brevo's definition");
    let api: Value = serde_json::from_str(&text).unwrap();
    let schema = json!({"definitions": api["definitions"], "$ref": format!("#/definitions/{definition}")});
    jsonschema::draft4::options().should_validate_formats(true).build(&schema).expect("a draft-4 schema")
}

fn assert_valid(v: &jsonschema::Validator, body: &Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{body:#}");
}

#[tokio::test]
async fn every_body_sent_to_brevo_matches_its_official_definition() {
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/smtp/email"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"messageId": "<1@smtp-relay.mailin.fr>"})))
        .mount(&mock)
        .await;
    Mock::given(method("POST"))
        .and(path("/v3/transactionalSMS/send"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"messageId": 1511882900176220u64})))
        .mount(&mock)
        .await;
    let rules = r#"[{"rule_id": "all_bodies", "trigger": "form_submit", "priority": 50, "actions": [
        {"action_type": "send_email", "config": {"template": "vip_offer"}},
        {"action_type": "send_email", "config": {"template": "thank_you"}},
        {"action_type": "send_email", "config": {"subject": "Nos vins", "html_content": "<p>Bonjour</p>"}},
        {"action_type": "send_sms", "config": {"content": "Merci ! Le domaine"}}]}]"#;
    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.json");
    std::fs::write(&rules_path, rules).unwrap();
    let app = spawn_with(|s| {
        s.dispatch.brevo = Some(BrevoSettings {
            api_key: Secret::new("xkeysib-test"),
            base_url: format!("{}/v3", mock.uri()),
            sender_email: Some("cave@domaine.example".into()),
            // No sender name configured: the body must leave `name` out, not send null.
            sender_name: None,
            sms_sender: "Domaine".into(),
            templates: [("vip_offer".to_owned(), 42)].into_iter().collect(),
            sync: None,
        });
        s.dispatch.retry_schedule = vec![StdDuration::from_secs(60)];
        s.rules = Some(rules_path.clone());
    })
    .await;
    let put = app.client.put(format!("{}/api/contacts/CL7", app.base)).json(&json!({
        "email": "marie@exemple.fr", "first_name": "Marie", "phone": "+33 6 12 34 56 78"}));
    assert_eq!(put.send().await.unwrap().status(), 201);
    app.post_ok("/webhook/behavior", &json!({"client_code": "CL7", "action": "form_submit"})).await;
    app.eventually("four attempts", |a| a.count("job_attempts") >= 4).await;

    let received = mock.received_requests().await.unwrap_or_default();
    let emails: Vec<Value> = received
        .iter()
        .filter(|r| r.url.path() == "/v3/smtp/email")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let sms: Vec<Value> = received
        .iter()
        .filter(|r| r.url.path() == "/v3/transactionalSMS/send")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!((emails.len(), sms.len()), (3, 1));
    let email_schema = brevo_schema("sendSmtpEmail");
    for e in &emails {
        assert_valid(&email_schema, e, "send-email body");
    }
    let templated = emails.iter().find(|e| e["templateId"] == 42).expect("the Brevo template email");
    assert!(templated.get("sender").is_none(), "a Brevo template carries its own sender");
    let plain = emails.iter().find(|e| e["subject"] == "Nos vins").expect("the plain email");
    assert_eq!(plain["sender"], json!({"email": "cave@domaine.example"}), "no `name: null`");
    assert!(emails.iter().any(|e| e["htmlContent"].as_str().is_some_and(|h| h.contains("Marie"))));
    assert_valid(&brevo_schema("sendTransacSms"), &sms[0], "send-SMS body");
    // The schema itself refuses what Relance used to send.
    let mut bad = plain.clone();
    bad["sender"]["name"] = Value::Null;
    assert!(!email_schema.is_valid(&bad), "the definition refuses a null sender name");
    app.stop().await;
}
