//! Executors: how each routed job reaches the outside world, and how answers are read.

use std::sync::Arc;
use std::time::Duration;

use relance_core::ActionType;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};

use super::payload::ActionPayload;
use super::signing::SigningKey;
use super::ssrf;
use super::templates;
use crate::config::{BrevoSettings, DispatchSettings};
use crate::store::jobs::{ClaimedJob, truncate};

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecOutcome {
    Success {
        http_status: Option<u16>,
        response: String,
    },
    /// Worth trying again (timeout, 408, 429, 5xx), no sooner than `retry_after`.
    Retry {
        http_status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// Will never work as it is (bad request, no credit, no phone…).
    Permanent {
        http_status: Option<u16>,
        error: String,
    },
}

impl ExecOutcome {
    pub(crate) fn permanent(error: impl Into<String>) -> ExecOutcome {
        ExecOutcome::Permanent { http_status: None, error: error.into() }
    }
}

pub struct Executors {
    pub(super) settings: Arc<DispatchSettings>,
    /// For Brevo and Power Automate: fixed, trusted hosts.
    pub(super) http: reqwest::Client,
    /// For rule-supplied URLs: no redirects, internal addresses refused.
    pub(super) hooks: reqwest::Client,
    pub(super) signing: Option<SigningKey>,
}

impl Executors {
    pub fn new(settings: Arc<DispatchSettings>) -> anyhow::Result<Executors> {
        let http = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .user_agent(concat!("relance/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut hooks = reqwest::Client::builder()
            .timeout(settings.http_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("relance/", env!("CARGO_PKG_VERSION")));
        if !settings.allow_private_targets {
            hooks = hooks.dns_resolver(Arc::new(ssrf::GuardedResolver));
        }
        let signing = match &settings.webhook_signing_secret {
            Some(s) => Some(
                SigningKey::parse(s.expose()).map_err(|e| anyhow::anyhow!("RELANCE_WEBHOOK_SIGNING_SECRET: {e}"))?,
            ),
            None => None,
        };
        Ok(Executors { settings, http, hooks: hooks.build()?, signing })
    }

    /// Template params: contact fields and event data, in Brevo's upper-case style, plus
    /// the rule's own `params`.
    fn params(job: &ClaimedJob) -> Value {
        let c = &job.contact;
        let mut p = Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                p.insert(k.to_owned(), v);
            }
        };
        put("FIRSTNAME", json!(c.first_name));
        put("LASTNAME", json!(c.last_name));
        put("EMAIL", json!(c.email));
        put("CLIENT_CODE", json!(c.client_code));
        put("SEGMENT", json!(c.segment));
        put("SCORE", json!(c.score));
        if let Some(e) = &job.event {
            put("AMOUNT", json!(e.amount));
            put("PRODUCT_ID", json!(e.product_id));
            put("PAGE", json!(e.page));
            put("LINK", json!(e.link));
        }
        if let Some(Value::Object(extra)) = job.config.get("params") {
            p.extend(extra.clone());
        }
        Value::Object(p)
    }

    fn recipient_name(job: &ClaimedJob) -> Option<String> {
        let c = &job.contact;
        let name =
            [c.first_name.as_deref(), c.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
        (!name.trim().is_empty()).then_some(name)
    }

    /// The `POST /v3/smtp/email` body, or why it cannot be sent.
    pub fn brevo_email_body(&self, job: &ClaimedJob, brevo: Option<&BrevoSettings>) -> Result<Value, String> {
        let Some(email) = job.contact.email.as_ref() else {
            return Err("the contact has no email address".into());
        };
        let mut to = json!({"email": email});
        if let Some(name) = Self::recipient_name(job) {
            to["name"] = json!(name);
        }
        let mut body = json!({
            "to": [to],
            "params": Self::params(job),
            "headers": {"idempotencyKey": job.idempotency_key},
            "tags": ["relance", job.rule_id],
        });
        let cfg = &job.config;
        let text = |k: &str| cfg.get(k).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        if let Some(name) = text("template") {
            if let Some(id) = brevo.and_then(|b| b.templates.get(name)) {
                body["templateId"] = json!(id);
                return Ok(body);
            }
            let Some(r) = templates::render(name, &job.contact) else {
                return Err(format!(
                    "unknown template {name:?}: map it to a Brevo template id under [brevo.templates], or use a built-in one ({})",
                    templates::BUILT_IN.join(", ")
                ));
            };
            body["subject"] = json!(text("subject").unwrap_or(&r.subject));
            body["htmlContent"] = json!(r.html);
            body["textContent"] = json!(r.text);
        } else {
            body["subject"] = json!(text("subject").unwrap_or_default());
            if let Some(html) = text("html_content").or(text("content")) {
                body["htmlContent"] = json!(html);
            }
            if let Some(t) = text("text_content") {
                body["textContent"] = json!(t);
            }
        }
        // Brevo's definition types every field: an absent value is left out, never null.
        if let Some(b) = brevo {
            let Some(sender) = &b.sender_email else {
                return Err("set RELANCE_BREVO_SENDER_EMAIL: an email without a Brevo template needs a sender".into());
            };
            let mut from = json!({"email": sender});
            if let Some(name) = b.sender_name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
                from["name"] = json!(name);
            }
            body["sender"] = from;
        }
        Ok(body)
    }

    /// The `POST /v3/transactionalSMS/send` body, or why it cannot be sent.
    pub fn brevo_sms_body(&self, job: &ClaimedJob, brevo: Option<&BrevoSettings>) -> Result<Value, String> {
        let Some(phone) = job.contact.phone.as_deref() else {
            return Err("the contact has no phone number".into());
        };
        let recipient: String = phone.chars().filter(char::is_ascii_digit).collect();
        if !(6..=15).contains(&recipient.len()) {
            return Err(format!("phone {phone:?} is not 6 to 15 digits with country code"));
        }
        let content = match job.config.get("content").and_then(Value::as_str) {
            Some(c) if !c.trim().is_empty() => c.to_owned(),
            _ => match job
                .config
                .get("template")
                .and_then(Value::as_str)
                .and_then(|t| templates::render(t, &job.contact))
            {
                Some(r) => r.text,
                None => return Err("send_sms needs a content (or a built-in template)".into()),
            },
        };
        Ok(json!({
            "sender": brevo.map(|b| b.sms_sender.as_str()).unwrap_or("Relance"),
            "recipient": recipient,
            "content": content,
            "type": "transactional",
            "tag": job.rule_id,
        }))
    }

    /// What the outbox records for a job: the request its real executor would make.
    pub fn outbox_payload(&self, job: &ClaimedJob) -> Result<Value, String> {
        let brevo = self.settings.brevo.as_ref();
        match job.action_type {
            ActionType::SendEmail => self.brevo_email_body(job, brevo),
            ActionType::SendSms => self.brevo_sms_body(job, brevo),
            _ => serde_json::to_value(ActionPayload::of(job)).map_err(|e| e.to_string()),
        }
    }

    pub async fn brevo(&self, job: &ClaimedJob) -> ExecOutcome {
        let Some(brevo) = self.settings.brevo.as_ref() else {
            return ExecOutcome::permanent("Brevo is not configured (RELANCE_BREVO_API_KEY)");
        };
        let (path, body) = match job.action_type {
            ActionType::SendEmail => ("/smtp/email", self.brevo_email_body(job, Some(brevo))),
            ActionType::SendSms => ("/transactionalSMS/send", self.brevo_sms_body(job, Some(brevo))),
            other => return ExecOutcome::permanent(format!("Brevo cannot run {other}")),
        };
        let body = match body {
            Ok(b) => b,
            Err(reason) => return ExecOutcome::permanent(reason),
        };
        let url = format!("{}{path}", brevo.base_url.trim_end_matches('/'));
        let request = self
            .http
            .post(url)
            .header("api-key", brevo.api_key.expose())
            .header("accept", "application/json")
            .json(&body);
        match request.send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                classify_brevo(status, &headers, &text)
            }
            Err(e) => transport_error(e),
        }
    }

    pub async fn power_automate(&self, job: &ClaimedJob) -> ExecOutcome {
        let Some(url) = self.settings.power_automate_url.as_ref() else {
            return ExecOutcome::permanent("Power Automate is not configured (RELANCE_POWER_AUTOMATE_URL)");
        };
        match self.http.post(url.expose()).json(&ActionPayload::of(job)).send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                classify(status, &headers, &text)
            }
            Err(e) => transport_error(e),
        }
    }

    pub async fn webhook(&self, job: &ClaimedJob, now_unix: i64) -> ExecOutcome {
        let Some(raw) = job.config.get("url").and_then(Value::as_str) else {
            return ExecOutcome::permanent("trigger_webhook needs a url");
        };
        let url = match reqwest::Url::parse(raw) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => return ExecOutcome::permanent(format!("{raw:?} is not an http(s) URL")),
        };
        if !self.settings.allow_private_targets
            && let Err(e) = ssrf::check_url(&url)
        {
            return ExecOutcome::permanent(format!("refused: {e} (allow_private_targets is off)"));
        }
        let body = serde_json::to_vec(&ActionPayload::of(job)).unwrap_or_default();
        // webhook-id is the job's idempotency key: the same across retries.
        let mut request = self
            .hooks
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &job.idempotency_key)
            .header("webhook-timestamp", now_unix.to_string());
        if let Some(key) = &self.signing {
            request = request.header("webhook-signature", key.sign(&job.idempotency_key, now_unix, &body));
        }
        send_webhook(request.body(body)).await
    }
}

/// Sends a webhook request and reads its answer (3xx is a failure: redirects are not followed).
pub(crate) async fn send_webhook(request: reqwest::RequestBuilder) -> ExecOutcome {
    match request.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            if status.is_redirection() {
                return ExecOutcome::Permanent {
                    http_status: Some(status.as_u16()),
                    error: "redirects are not followed (Standard Webhooks: 3xx is a failure)".into(),
                };
            }
            classify(status, &headers, &text)
        }
        Err(e) => transport_error(e),
    }
}

pub(crate) fn transport_error(e: reqwest::Error) -> ExecOutcome {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The error chain says why (refused address, DNS…); keep it, without the URL's query.
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    ExecOutcome::Retry { http_status: None, error: format!("{kind}: {detail}"), retry_after: None }
}

/// `Retry-After` in seconds, or Brevo's `x-sib-ratelimit-reset` (seconds until reset).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    ["retry-after", "x-sib-ratelimit-reset"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok()?.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

/// 2xx is done; 408, 429 and 5xx are worth retrying; any other 4xx is final.
pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> ExecOutcome {
    let code = Some(status.as_u16());
    let excerpt = truncate(body.trim(), 500);
    if status.is_success() {
        ExecOutcome::Success { http_status: code, response: excerpt }
    } else if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        ExecOutcome::Retry {
            http_status: code,
            error: format!("HTTP {status}: {excerpt}"),
            retry_after: retry_after(headers),
        }
    } else {
        ExecOutcome::Permanent { http_status: code, error: format!("HTTP {status}: {excerpt}") }
    }
}

/// Brevo answers `{code, message}` on errors; a reused idempotency key
/// (`duplicate_parameter`, any case) means the message already went out.
pub fn classify_brevo(status: StatusCode, headers: &HeaderMap, body: &str) -> ExecOutcome {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|v| v.get("code")).and_then(Value::as_str).unwrap_or("").to_owned();
    if status == StatusCode::BAD_REQUEST && code.eq_ignore_ascii_case("duplicate_parameter") {
        return ExecOutcome::Success {
            http_status: Some(400),
            response: format!("already sent (Brevo: duplicate idempotency key): {}", truncate(body, 300)),
        };
    }
    match classify(status, headers, body) {
        ExecOutcome::Permanent { http_status, .. } if !code.is_empty() => {
            let message = parsed.as_ref().and_then(|v| v.get("message")).and_then(Value::as_str).unwrap_or("");
            let hint = match status.as_u16() {
                401 => " (check RELANCE_BREVO_API_KEY, and Brevo's authorised IPs)",
                402 => " (not enough Brevo credits)",
                _ => "",
            };
            ExecOutcome::Permanent { http_status, error: format!("Brevo {status}: {code}: {message}{hint}") }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn classification() {
        let h = HeaderMap::new();
        assert!(matches!(classify(StatusCode::ACCEPTED, &h, ""), ExecOutcome::Success { .. }));
        assert!(matches!(classify(StatusCode::BAD_GATEWAY, &h, ""), ExecOutcome::Retry { .. }));
        assert!(matches!(classify(StatusCode::REQUEST_TIMEOUT, &h, ""), ExecOutcome::Retry { .. }));
        assert!(matches!(classify(StatusCode::NOT_FOUND, &h, ""), ExecOutcome::Permanent { .. }));
        let mut limited = HeaderMap::new();
        limited.insert("x-sib-ratelimit-reset", HeaderValue::from_static("42"));
        match classify(StatusCode::TOO_MANY_REQUESTS, &limited, "") {
            ExecOutcome::Retry { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(42))),
            other => panic!("{other:?}"),
        }
        let dup = classify_brevo(StatusCode::BAD_REQUEST, &h, r#"{"code":"DUPLICATE_PARAMETER","message":"x"}"#);
        assert!(matches!(dup, ExecOutcome::Success { .. }));
        match classify_brevo(StatusCode::PAYMENT_REQUIRED, &h, r#"{"code":"not_enough_credits","message":"No credit"}"#)
        {
            ExecOutcome::Permanent { error, .. } => {
                assert!(error.contains("not_enough_credits") && error.contains("credits"))
            }
            other => panic!("{other:?}"),
        }
    }
}
