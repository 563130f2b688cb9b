//! The Integrations page's Test buttons: one harmless real call each, through the same
//! clients the executors use (so a proxy, a timeout or the SSRF guard shows as it would
//! for a real action). Brevo: `GET /v3/account`. Power Automate and webhooks: a `ping`
//! payload (docs/integrations.md), signed like every webhook when a signing secret is set.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::executors::{ExecOutcome, Executors, classify_brevo, send_webhook, transport_error};
use super::ssrf;

/// What a test call answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Probe {
    pub ok: bool,
    pub http_status: Option<u16>,
    /// The answer's excerpt, or why there was none.
    pub detail: String,
    pub millis: u64,
}

impl Probe {
    fn not_configured(what: &str) -> Probe {
        Probe { ok: false, http_status: None, detail: format!("not configured: {what}"), millis: 0 }
    }

    fn of(outcome: ExecOutcome, started: std::time::Instant) -> Probe {
        let millis = started.elapsed().as_millis() as u64;
        match outcome {
            ExecOutcome::Success { http_status, response } => Probe { ok: true, http_status, detail: response, millis },
            ExecOutcome::Retry { http_status, error, .. } | ExecOutcome::Permanent { http_status, error } => {
                Probe { ok: false, http_status, detail: error, millis }
            }
        }
    }
}

/// The `ping` body: the same envelope on every receiver, so a flow or a handler can tell
/// a test from an action by `type`.
pub fn ping_payload(id: &str, now: DateTime<Utc>) -> serde_json::Value {
    json!({
        "type": "ping",
        "id": id,
        "sent_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "message": "Test from Relance's Integrations page; no action to take.",
        "relance_version": env!("CARGO_PKG_VERSION"),
    })
}

impl Executors {
    /// `GET /v3/account`: checks the key and shows which account it opens.
    pub async fn probe_brevo(&self) -> Probe {
        let Some(brevo) = self.settings.brevo.as_ref() else {
            return Probe::not_configured("RELANCE_BREVO_API_KEY");
        };
        let started = std::time::Instant::now();
        let url = format!("{}/account", brevo.base_url.trim_end_matches('/'));
        let sent = self.http.get(url).header("api-key", brevo.api_key.expose()).header("accept", "application/json");
        let outcome = match sent.send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                // Only what says whose account it is; the rest (plan, credits) stays in Brevo.
                let text = match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(v) if status.is_success() => {
                        let pick = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
                        format!("account {} ({})", pick("email"), pick("companyName"))
                    }
                    _ => text,
                };
                classify_brevo(status, &headers, &text)
            }
            Err(e) => transport_error(e),
        };
        Probe::of(outcome, started)
    }

    /// A signed `ping` to the Power Automate flow.
    pub async fn ping_power_automate(&self, id: &str, now: DateTime<Utc>) -> Probe {
        let Some(url) = self.settings.power_automate_url.as_ref() else {
            return Probe::not_configured("RELANCE_POWER_AUTOMATE_URL");
        };
        let started = std::time::Instant::now();
        let request = self.signed(self.http.post(url.expose()), id, now);
        Probe::of(send_webhook(request).await, started)
    }

    /// A signed `ping` to a webhook receiver, through the guarded client.
    pub async fn ping_webhook(&self, raw: &str, id: &str, now: DateTime<Utc>) -> Probe {
        let url = match reqwest::Url::parse(raw.trim()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => {
                let detail = format!("{raw:?} is not an http(s) URL");
                return Probe { ok: false, http_status: None, detail, millis: 0 };
            }
        };
        if !self.settings.allow_private_targets
            && let Err(e) = ssrf::check_url(&url)
        {
            let detail = format!("refused: {e} (allow_private_targets is off)");
            return Probe { ok: false, http_status: None, detail, millis: 0 };
        }
        let started = std::time::Instant::now();
        let request = self.signed(self.hooks.post(url), id, now);
        Probe::of(send_webhook(request).await, started)
    }

    fn signed(&self, request: reqwest::RequestBuilder, id: &str, now: DateTime<Utc>) -> reqwest::RequestBuilder {
        let body = serde_json::to_vec(&ping_payload(id, now)).unwrap_or_default();
        let ts = now.timestamp();
        let mut request = request
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(key) = &self.signing {
            request = request.header("webhook-signature", key.sign(id, ts, &body));
        }
        request.body(body)
    }
}
