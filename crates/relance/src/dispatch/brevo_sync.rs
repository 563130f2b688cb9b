//! Pushes changed contacts' mapped fields to Brevo contact attributes (`[brevo.sync]`).
//!
//! The queue coalesces (one row per contact, the latest values read when sent); this
//! worker claims due contacts, sends them as one `POST /contacts/batch` (or a
//! `PUT /contacts/{email}` for one), and settles each. Every request first takes a slot
//! from the rate row all instances share, so the account's contacts API limit holds
//! however many instances run. A batch Brevo refuses (400, or the endpoint gone: Brevo
//! announced its deprecation for 2026-10-30) is retried contact by contact, which is also
//! how a contact unknown to Brevo is told apart (`404`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::config::brevo_sync::BrevoSyncSettings;
use crate::config::{BrevoSettings, DispatchSettings};
use crate::store::brevo_sync::{SyncAttempt, SyncClaim, SyncResult};
use crate::store::{Clock, SharedStore, StoreError};

use super::executors::{ExecOutcome, classify_brevo};

pub struct ContactSync {
    store: SharedStore,
    brevo: BrevoSettings,
    sync: BrevoSyncSettings,
    dispatch: Arc<DispatchSettings>,
    http: reqwest::Client,
    clock: Clock,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// One answer from Brevo, as the attempt record and the decision need it.
struct Answer {
    outcome: ExecOutcome,
    status: Option<StatusCode>,
    elapsed: Duration,
}

impl ContactSync {
    /// `None` when nothing is mapped or Brevo is not configured.
    pub fn new(store: SharedStore, dispatch: Arc<DispatchSettings>, clock: Clock) -> anyhow::Result<Option<Self>> {
        let Some(brevo) = dispatch.brevo.clone() else { return Ok(None) };
        let Some(sync) = brevo.sync.clone() else { return Ok(None) };
        let http = reqwest::Client::builder()
            .timeout(dispatch.http_timeout)
            .user_agent(concat!("relance/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Some(ContactSync { store, brevo, sync, dispatch, http, clock, metrics: None }))
    }

    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Pushes due contacts until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        tokio::pin!(shutdown);
        let idle = self.dispatch.poll_interval.clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            let wait = match self.pass().await {
                Ok(0) => idle,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "Brevo contact sync: the queue could not be read; retrying");
                    idle.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One claim and its pushes: how many contacts it settled or rescheduled.
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let claims =
            self.store.claim_brevo_sync(self.sync.batch_size, self.sync.min_interval, self.dispatch.lease).await?;
        if claims.is_empty() {
            return Ok(0);
        }
        let mut attempts = Vec::new();
        let mut results = Vec::with_capacity(claims.len());
        let (named, unnamed): (Vec<&SyncClaim>, Vec<&SyncClaim>) =
            claims.iter().partition(|c| c.contact.email.is_some());
        for c in unnamed {
            results.push((c.contact_id, c.generation, SyncResult::NoEmail));
        }
        if named.len() > 1 {
            let body = json!({"contacts": named.iter().map(|c| self.batch_item(c)).collect::<Vec<_>>()});
            let answer = self
                .send(
                    ("POST /contacts/batch", Method::POST),
                    self.url(&["contacts", "batch"]),
                    body,
                    named.len(),
                    &mut attempts,
                )
                .await;
            let per_contact = match answer.outcome {
                ExecOutcome::Success { .. } => {
                    results.extend(named.iter().map(|c| (c.contact_id, c.generation, SyncResult::Done)));
                    false
                }
                // Which contact Brevo refused, or whether the batch endpoint is gone, only
                // one request per contact tells.
                _ if answer.status.is_some_and(|s| matches!(s.as_u16(), 400 | 404 | 405 | 410)) => true,
                outcome => {
                    results.extend(named.iter().map(|c| (c.contact_id, c.generation, self.unsettled(c, &outcome))));
                    false
                }
            };
            if per_contact {
                for c in &named {
                    results.push((c.contact_id, c.generation, self.push_one(c, &mut attempts).await));
                }
            }
        } else {
            for c in &named {
                results.push((c.contact_id, c.generation, self.push_one(c, &mut attempts).await));
            }
        }
        if let Some(m) = &self.metrics {
            for (_, _, r) in &results {
                m.brevo_sync.get_or_create(&vec![("outcome", r.status().to_owned())]).inc();
            }
        }
        for (id, _, r) in
            results.iter().filter(|(_, _, r)| matches!(r, SyncResult::NotInBrevo(_) | SyncResult::Failed(_)))
        {
            tracing::warn!(
                contact_id = id,
                outcome = r.status(),
                error = r.error().unwrap_or(""),
                "Brevo contact sync"
            );
        }
        let n = results.len();
        self.store.finish_brevo_sync(results, attempts).await?;
        Ok(n)
    }

    fn attributes(&self, c: &SyncClaim) -> Value {
        Value::Object(self.sync.fields.attributes(&c.contact))
    }

    fn batch_item(&self, c: &SyncClaim) -> Value {
        json!({"email": c.contact.email.as_ref().map(|e| e.as_str()), "attributes": self.attributes(c)})
    }

    fn url(&self, segments: &[&str]) -> Option<Url> {
        let mut url = Url::parse(self.brevo.base_url.trim_end_matches('/')).ok()?;
        url.path_segments_mut().ok()?.extend(segments);
        Some(url)
    }

    /// `PUT /contacts/{email}`; on 404, `POST /contacts` when creating is on.
    async fn push_one(&self, c: &SyncClaim, attempts: &mut Vec<SyncAttempt>) -> SyncResult {
        let Some(email) = c.contact.email.as_ref().map(|e| e.as_str()) else { return SyncResult::NoEmail };
        let mut url = self.url(&["contacts", email]);
        if let Some(u) = url.as_mut() {
            u.query_pairs_mut().append_pair("identifierType", "email_id");
        }
        let answer = self
            .send(("PUT /contacts/{email}", Method::PUT), url, json!({"attributes": self.attributes(c)}), 1, attempts)
            .await;
        match (&answer.outcome, answer.status) {
            (ExecOutcome::Success { .. }, _) => SyncResult::Done,
            (_, Some(StatusCode::NOT_FOUND)) if self.sync.create_missing_contacts => {
                let body = json!({"email": email, "attributes": self.attributes(c), "updateEnabled": true});
                let created =
                    self.send(("POST /contacts", Method::POST), self.url(&["contacts"]), body, 1, attempts).await;
                match created.outcome {
                    ExecOutcome::Success { .. } => SyncResult::Done,
                    other => self.unsettled(c, &other),
                }
            }
            (_, Some(StatusCode::NOT_FOUND)) => SyncResult::NotInBrevo(
                "Brevo has no contact with this email; set [brevo.sync] create_missing_contacts = true to create it"
                    .into(),
            ),
            (outcome, _) => self.unsettled(c, outcome),
        }
    }

    /// A failed push: retried at the schedule's next delay (or when Brevo's rate-limit
    /// window resets), given up after the last.
    fn unsettled(&self, c: &SyncClaim, outcome: &ExecOutcome) -> SyncResult {
        match outcome {
            ExecOutcome::Success { .. } => SyncResult::Done,
            ExecOutcome::Permanent { error, .. } => SyncResult::Failed(error.clone()),
            ExecOutcome::Retry { error, retry_after, .. } => {
                let attempt = u32::try_from(c.attempts).unwrap_or(u32::MAX);
                match super::backoff(&self.dispatch, attempt, *retry_after) {
                    Some(delay) => SyncResult::Retry {
                        at: (self.clock)() + chrono::Duration::from_std(delay).unwrap_or_default(),
                        error: error.clone(),
                    },
                    None => SyncResult::Failed(format!("gave up after {attempt} attempts: {error}")),
                }
            }
        }
    }

    /// Waits for this instance's request slot, sends, records the attempt under `label`
    /// (the route, never the contact's address: the log outlives a GDPR erasure).
    async fn send(
        &self,
        (label, method): (&'static str, Method),
        url: Option<Url>,
        body: Value,
        contacts: usize,
        attempts: &mut Vec<SyncAttempt>,
    ) -> Answer {
        let answer = match url {
            None => Answer {
                outcome: ExecOutcome::permanent("[brevo] base_url is not a URL"),
                status: None,
                elapsed: Duration::ZERO,
            },
            Some(url) => {
                match self.store.take_brevo_slot(self.sync.spacing).await {
                    Ok(slot) => {
                        let wait = (slot - (self.clock)()).to_std().unwrap_or_default();
                        tokio::time::sleep(wait.min(Duration::from_secs(60))).await;
                    }
                    // Better late than never: without the shared row, keep this
                    // instance's own pace.
                    Err(e) => {
                        tracing::warn!(error = %e, "Brevo rate slot unavailable");
                        tokio::time::sleep(self.sync.spacing).await;
                    }
                }
                self.call(method, url, &body).await
            }
        };
        attempts.push(SyncAttempt {
            at: (self.clock)(),
            request: label.to_owned(),
            contacts,
            http_status: answer.status.map(|s| s.as_u16()),
            outcome: match (&answer.outcome, answer.status) {
                (ExecOutcome::Success { .. }, _) => "done",
                (_, Some(StatusCode::NOT_FOUND)) => "not_found",
                (ExecOutcome::Retry { .. }, _) => "retry",
                (ExecOutcome::Permanent { .. }, _) => "failed",
            }
            .into(),
            error: match &answer.outcome {
                ExecOutcome::Retry { error, .. } | ExecOutcome::Permanent { error, .. } => Some(error.clone()),
                ExecOutcome::Success { .. } => None,
            },
            duration_ms: answer.elapsed.as_millis() as u64,
        });
        answer
    }

    async fn call(&self, method: Method, url: Url, body: &Value) -> Answer {
        let started = Instant::now();
        let sent = self
            .http
            .request(method, url)
            .header("api-key", self.brevo.api_key.expose())
            .header("accept", "application/json")
            .json(body)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                let outcome = classify_brevo(status, &headers, &text);
                Answer { outcome, status: Some(status), elapsed: started.elapsed() }
            }
            Err(e) => {
                Answer { outcome: super::executors::transport_error(e), status: None, elapsed: started.elapsed() }
            }
        }
    }
}

/// What `POST /contacts/attributes/normal/{name}` answered for one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeCreated {
    Created,
    /// Brevo already has an attribute of that name.
    Exists(String),
    Failed(String),
}

/// Creates a mapped attribute in Brevo (category `normal`, the field's type).
pub async fn create_attribute(
    brevo: &BrevoSettings,
    timeout: Duration,
    name: &str,
    brevo_type: &str,
) -> AttributeCreated {
    let Ok(mut url) = Url::parse(brevo.base_url.trim_end_matches('/')) else {
        return AttributeCreated::Failed("[brevo] base_url is not a URL".into());
    };
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.extend(["contacts", "attributes", "normal", name]);
    }
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(c) => c,
        Err(e) => return AttributeCreated::Failed(e.to_string()),
    };
    let sent = client
        .post(url)
        .header("api-key", brevo.api_key.expose())
        .header("accept", "application/json")
        .json(&json!({"type": brevo_type}))
        .send()
        .await;
    match sent {
        Ok(resp) if resp.status().is_success() => AttributeCreated::Created,
        Ok(resp) => {
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let message = body["message"].as_str().unwrap_or("").to_owned();
            // Brevo answers 400 `invalid_parameter` "Attribute name must be unique".
            if status == StatusCode::BAD_REQUEST && message.to_ascii_lowercase().contains("unique") {
                AttributeCreated::Exists(message)
            } else {
                AttributeCreated::Failed(format!("HTTP {status}: {} {message}", body["code"].as_str().unwrap_or("")))
            }
        }
        Err(e) => AttributeCreated::Failed(e.without_url().to_string()),
    }
}
