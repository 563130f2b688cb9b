//! The Integrations page on a real server: what is set (never the secrets), the database
//! and instance, and each Test button making its real call to a mock (Brevo's
//! `GET /v3/account`, a signed `ping` to Power Automate and to a webhook receiver).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use relance::config::{BrevoSettings, Secret};
use reqwest::StatusCode;
use reqwest::header::COOKIE;
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;
use crate::dashboard::{no_redirects, page, sign_in};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

async fn press(app: &TestApp, cookie: &str, csrf: &str, target: &str, url: Option<&str>) -> (StatusCode, String) {
    let mut form = vec![("csrf", csrf.to_owned())];
    if let Some(u) = url {
        form.push(("url", u.to_owned()));
    }
    let resp = no_redirects()
        .post(format!("{}/ui/integrations/{target}/test", app.base))
        .header(COOKIE, cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Checks a Standard Webhooks signature as a receiver would.
fn verify(req: &wiremock::Request) -> Value {
    let h = |n: &str| req.headers.get(n).unwrap().to_str().unwrap().to_owned();
    let (id, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    let key = base64::engine::general_purpose::STANDARD.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&req.body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    assert_eq!(sig, expected, "the ping is signed");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["id"], id.as_str(), "webhook-id is the ping's id");
    body
}

#[tokio::test]
async fn each_test_button_makes_its_real_call_and_shows_the_answer() {
    let brevo = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/account"))
        .and(header("api-key", "xkeysib-secret-value"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"email": "cave@domaine.fr", "companyName": "Domaine", "plan": []})),
        )
        .expect(1)
        .mount(&brevo)
        .await;
    let flow = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(202)).mount(&flow).await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hooks/relance"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let flow_url = format!("{}/workflows/abc/triggers/manual/run?sig=flow-secret", flow.uri());
    let app = spawn_with(|s| {
        with_tokens(s);
        s.dispatch.brevo = Some(BrevoSettings {
            api_key: Secret::new("xkeysib-secret-value"),
            base_url: format!("{}/v3", brevo.uri()),
            sender_email: Some("cave@domaine.fr".into()),
            sender_name: Some("Le Domaine".into()),
            sms_sender: "Domaine".into(),
            templates: [("vip_offer".to_owned(), 42)].into_iter().collect(),
            sync: None,
        });
        s.dispatch.power_automate_url = Some(Secret::new(&flow_url));
        s.dispatch.webhook_signing_secret = Some(Secret::new(SECRET));
    })
    .await;
    let (cookie, csrf) = sign_in(&app).await;

    let (status, html) = page(&app, &cookie, "/ui/integrations").await;
    assert_eq!(status, 200);
    assert!(html.contains("vip_offer</code> → 42") && html.contains("Le Domaine &lt;cave@domaine.fr&gt;"), "{html}");
    assert!(html.contains("set and well formed"), "the signing secret is checked");
    assert!(html.contains("sqlite") || html.contains("postgres"));
    for secret in ["xkeysib-secret-value", "flow-secret", SECRET, ADMIN_TOKEN] {
        assert!(!html.contains(secret), "a secret is never shown");
    }

    let (status, html) = press(&app, &cookie, &csrf, "brevo", None).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Answered") && html.contains("HTTP 200") && html.contains("account cave@domaine.fr (Domaine)")
    );

    let (_, html) = press(&app, &cookie, &csrf, "power_automate", None).await;
    assert!(html.contains("Answered") && html.contains("HTTP 202"), "{html}");
    let got = flow.received_requests().await.unwrap();
    let ping = verify(&got[0]);
    assert_eq!(ping["type"], "ping");

    let hook = format!("{}/hooks/relance", receiver.uri());
    let (_, html) = press(&app, &cookie, &csrf, "webhook", Some(&hook)).await;
    assert!(html.contains("HTTP 204"), "{html}");
    let got = receiver.received_requests().await.unwrap();
    assert_eq!(verify(&got[0])["type"], "ping");

    // A receiver that refuses shows as a failure with its answer; a bad URL is named.
    let (_, html) = press(&app, &cookie, &csrf, "webhook", Some(&format!("{}/nowhere", receiver.uri()))).await;
    assert!(html.contains("Failed") && html.contains("HTTP 404"), "{html}");
    let (_, html) = press(&app, &cookie, &csrf, "webhook", Some("ftp://example.org")).await;
    assert!(html.contains("is not an http(s) URL"));
    // The forged form does nothing.
    let (status, _) = press(&app, &cookie, "forged", "brevo", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unset_integrations_say_so_and_a_failed_brevo_call_is_shown() {
    let brevo = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v3/smtp/email"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"code": "unauthorized", "message": "Key not found"})),
        )
        .mount(&brevo)
        .await;
    let app = spawn_with(|s| {
        with_tokens(s);
        s.dispatch.brevo = Some(BrevoSettings {
            api_key: Secret::new("xkeysib-wrong"),
            base_url: format!("{}/v3", brevo.uri()),
            sender_email: Some("cave@domaine.fr".into()),
            sender_name: None,
            sms_sender: "Domaine".into(),
            templates: Default::default(),
            sync: None,
        });
    })
    .await;
    // The seed's purchase sends a thank-you email five minutes later: Brevo refuses it.
    use crate::dashboard::AdminCalls;
    app.post_webhook(
        "/webhook/behavior",
        &json!({"email": "a@example.fr", "action": "purchase", "metadata": {"amount": 90}}),
    )
    .await;
    app.advance(chrono::Duration::minutes(6));
    app.eventually("the email attempted", |a| {
        a.job_states().iter().any(|s| s.starts_with("send_email:") && (s.ends_with(":dead") || s.ends_with(":failed")))
    })
    .await;
    let (cookie, csrf) = sign_in(&app).await;
    let (_, html) = page(&app, &cookie, "/ui/integrations").await;
    assert!(html.contains("HTTP 401") && html.contains("Key not found"), "the last failed call: {html}");
    assert!(html.contains("not set: webhooks are sent unsigned"));
    let (_, html) = press(&app, &cookie, &csrf, "power_automate", None).await;
    assert!(html.contains("not configured: RELANCE_POWER_AUTOMATE_URL"), "{html}");
}
