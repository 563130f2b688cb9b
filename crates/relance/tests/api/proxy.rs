//! Behind a reverse proxy: `X-Forwarded-Proto` marks the session cookie `Secure` and sets
//! the connector's scheme only when the peer is in `trusted_proxies`.

use crate::common::{ADMIN_TOKEN, TestApp, spawn_with, with_tokens};

async fn login_cookie(app: &TestApp, proto: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = client
        .post(format!("{}/ui/login", app.base))
        .header("x-forwarded-proto", proto)
        .header("x-forwarded-for", "203.0.113.7")
        .form(&[("token", ADMIN_TOKEN), ("next", "/")])
        .send()
        .await
        .unwrap();
    resp.headers()["set-cookie"].to_str().unwrap().to_owned()
}

async fn connector_scheme(app: &TestApp, proto: &str) -> serde_json::Value {
    let resp = app
        .client
        .get(format!("{}/connector/swagger.json", app.base))
        .header("x-forwarded-proto", proto)
        .header("host", "relance.example.fr")
        .send()
        .await
        .unwrap();
    resp.json::<serde_json::Value>().await.unwrap()["schemes"].clone()
}

#[tokio::test]
async fn forwarded_https_is_believed_from_a_trusted_proxy_only() {
    let trusted = spawn_with(|s| {
        with_tokens(s);
        s.trusted_proxies = std::sync::Arc::new(relance::web::client::parse_trusted(&["127.0.0.1".into()]).unwrap());
    })
    .await;
    assert!(login_cookie(&trusted, "https").await.contains("; Secure"));
    assert!(!login_cookie(&trusted, "http").await.contains("; Secure"));
    assert_eq!(connector_scheme(&trusted, "http").await, serde_json::json!(["http"]));
    trusted.stop().await;

    let untrusted = spawn_with(with_tokens).await;
    assert!(!login_cookie(&untrusted, "https").await.contains("; Secure"), "anyone may send the header");
    assert_eq!(
        connector_scheme(&untrusted, "http").await,
        serde_json::json!(["https"]),
        "a public host is https unless a trusted proxy says otherwise"
    );
    untrusted.stop().await;
}
