//! Token checks. Webhooks: `Authorization: Bearer <token>` or Basic with the token as the
//! password (Brevo offers both). Admin API: Bearer only.
//!
//! A refusal says which credential the route expects and in which form (never a value),
//! is counted (`relance_auth_refused_total{route,reason}`), logged at warn at most once a
//! minute per client, route and reason, and shown on the dashboard: a broken Brevo setup
//! is visible on Relance's side.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;

use super::AppState;
use super::error::ApiError;
use super::session::CSRF_HEADER;
use crate::config::Secret;

/// How the caller of an admin route was recognised (a rule set saved through the
/// dashboard records `dashboard`, through the API `api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Token,
    Dashboard,
}

impl Caller {
    pub fn as_str(self) -> &'static str {
        match self {
            Caller::Token => "api",
            Caller::Dashboard => "dashboard",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No `Authorization` header.
    Missing,
    /// A header, but not `Bearer …` (or `Basic …` where allowed).
    Malformed,
    /// The webhook token presented on an admin route.
    WebhookTokenOnAdmin,
    Wrong,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::WebhookTokenOnAdmin => "webhook_token_on_admin_route",
            Reason::Wrong => "wrong_token",
        }
    }

    /// What a person reads on the dashboard.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Missing => "no Authorization header",
            Reason::Malformed => "Authorization is not “Bearer <token>”",
            Reason::WebhookTokenOnAdmin => "the webhook token was sent to the admin API",
            Reason::Wrong => "wrong token",
        }
    }
}

fn presented(headers: &HeaderMap, allow_basic: bool) -> Result<Vec<u8>, Reason> {
    let value = headers.get(header::AUTHORIZATION).ok_or(Reason::Missing)?;
    let value = value.to_str().map_err(|_| Reason::Malformed)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(Reason::Malformed)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(rest.trim().as_bytes().to_vec());
    }
    if allow_basic && scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).map_err(|_| Reason::Malformed)?;
        let colon = decoded.iter().position(|b| *b == b':').ok_or(Reason::Malformed)?;
        return Ok(decoded[colon + 1..].to_vec());
    }
    Err(Reason::Malformed)
}

fn check(token: Option<&Secret>, headers: &HeaderMap, allow_basic: bool) -> Result<(), Reason> {
    match token {
        None => Ok(()),
        Some(secret) => match presented(headers, allow_basic)? {
            candidate if secret.matches(&candidate) => Ok(()),
            _ => Err(Reason::Wrong),
        },
    }
}

const WEBHOOK_EXPECTS: &str = "/webhook/* expects `Authorization: Bearer <RELANCE_WEBHOOK_TOKEN>` \
    (or Basic auth with the token as the password; the admin token works too)";
const ADMIN_EXPECTS: &str =
    "/api/* and /metrics expect `Authorization: Bearer <RELANCE_ADMIN_TOKEN>` (or a dashboard session)";

/// Refusals of the last hour, for the dashboard, and when each kind was last logged.
#[derive(Default)]
pub struct Refusals {
    inner: Mutex<RefusalLog>,
}

#[derive(Default)]
struct RefusalLog {
    recent: VecDeque<(Instant, &'static str, Reason)>,
    logged: HashMap<(String, &'static str, Reason), Instant>,
}

/// Kept at most, so that a flood of wrong tokens cannot grow memory.
const RECENT_MAX: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(3600);
const LOG_EVERY: Duration = Duration::from_secs(60);

impl Refusals {
    /// Records a refusal; `true` when it should be logged (once a minute per client,
    /// route and reason).
    fn record(&self, client: &str, route: &'static str, reason: Reason) -> bool {
        let now = Instant::now();
        let Ok(mut log) = self.inner.lock() else { return false };
        while log.recent.front().is_some_and(|(at, _, _)| now.duration_since(*at) > WINDOW) {
            log.recent.pop_front();
        }
        if log.recent.len() >= RECENT_MAX {
            log.recent.pop_front();
        }
        log.recent.push_back((now, route, reason));
        log.logged.retain(|_, at| now.duration_since(*at) < LOG_EVERY);
        let key = (client.to_owned(), route, reason);
        if log.logged.contains_key(&key) || log.logged.len() >= RECENT_MAX {
            return false;
        }
        log.logged.insert(key, now);
        true
    }

    /// `(route, reason, count)` over the last hour on this instance, most first.
    pub fn last_hour(&self) -> Vec<(&'static str, Reason, usize)> {
        let now = Instant::now();
        let Ok(log) = self.inner.lock() else { return Vec::new() };
        let mut counts: HashMap<(&'static str, Reason), usize> = HashMap::new();
        for (at, route, reason) in &log.recent {
            if now.duration_since(*at) <= WINDOW {
                *counts.entry((*route, *reason)).or_default() += 1;
            }
        }
        let mut out: Vec<_> = counts.into_iter().map(|((route, reason), n)| (route, reason, n)).collect();
        out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
        out
    }
}

/// The route group a refusal is counted under (bounded label values).
fn route_label(req: &Request) -> &'static str {
    match req.uri().path() {
        "/webhook/email" => "webhook_email",
        "/webhook/behavior" => "webhook_behavior",
        "/metrics" => "metrics",
        _ => "api",
    }
}

fn refuse(app: &AppState, req: &Request, reason: Reason, expects: &str) -> ApiError {
    let route = route_label(req);
    let client = req
        .extensions()
        .get::<crate::web::client::Client>()
        .map(|c| c.ip.to_string())
        .or_else(|| req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned());
    app.metrics
        .auth_refused
        .get_or_create(&vec![("route", route.to_owned()), ("reason", reason.as_str().to_owned())])
        .inc();
    if app.refusals.record(&client, route, reason) {
        tracing::warn!(client = %client, route, reason = reason.as_str(), "request refused: {}", reason.describe());
    }
    let what = match reason {
        Reason::Missing => "missing credentials",
        Reason::Malformed => "the Authorization header is not in the expected form",
        Reason::WebhookTokenOnAdmin => "this is the webhook token, which opens only /webhook/*",
        Reason::Wrong => "wrong token",
    };
    ApiError::Unauthorized(format!("{what}: {expects}"))
}

/// The admin token is accepted on the webhooks too, so that one Power Automate connection
/// (which holds one key) can both post events and call the admin API.
pub async fn webhook_auth(State(app): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let s = &app.settings;
    if s.admin_token.is_some() && check(s.admin_token.as_ref(), req.headers(), false).is_ok() {
        return Ok(next.run(req).await);
    }
    if let Err(reason) = check(s.webhook_token.as_ref(), req.headers(), true) {
        return Err(refuse(&app, &req, reason, WEBHOOK_EXPECTS));
    }
    Ok(next.run(req).await)
}

/// Bearer token, or a dashboard session (cookie). A request carried by the cookie that
/// changes something must also carry the session's CSRF token in `X-CSRF-Token`: the
/// browser sends the cookie on its own, only our pages know the token.
pub async fn admin_auth(State(app): State<AppState>, mut req: Request, next: Next) -> Result<Response, ApiError> {
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(session) = app.sessions.from_headers(req.headers(), (app.clock)())
    {
        if !req.method().is_safe() {
            let presented = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !session.csrf_matches(presented) {
                return Err(ApiError::Forbidden("a dashboard session must send its CSRF token in X-CSRF-Token"));
            }
        }
        req.extensions_mut().insert(Caller::Dashboard);
        return Ok(next.run(req).await);
    }
    if let Err(reason) = check(app.settings.admin_token.as_ref(), req.headers(), false) {
        let webhook_token = reason == Reason::Wrong
            && app.settings.webhook_token.as_ref().is_some_and(|w| check(Some(w), req.headers(), false).is_ok());
        let reason = if webhook_token { Reason::WebhookTokenOnAdmin } else { reason };
        return Err(refuse(&app, &req, reason, ADMIN_EXPECTS));
    }
    req.extensions_mut().insert(Caller::Token);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_and_basic() {
        let s = Secret::new("s3cret");
        assert!(check(Some(&s), &headers("Bearer s3cret"), true).is_ok());
        let basic = base64::engine::general_purpose::STANDARD.encode("brevo:s3cret");
        assert!(check(Some(&s), &headers(&format!("Basic {basic}")), true).is_ok());
        assert_eq!(check(Some(&s), &headers(&format!("Basic {basic}")), false), Err(Reason::Malformed));
        assert_eq!(check(Some(&s), &headers("Bearer nope"), true), Err(Reason::Wrong));
        assert_eq!(check(Some(&s), &headers("s3cret"), true), Err(Reason::Malformed));
        assert_eq!(check(Some(&s), &HeaderMap::new(), true), Err(Reason::Missing));
        assert!(check(None, &HeaderMap::new(), true).is_ok());
    }

    #[test]
    fn refusals_are_logged_once_a_minute_per_client_route_and_reason() {
        let r = Refusals::default();
        assert!(r.record("10.0.0.1", "webhook_email", Reason::Wrong));
        assert!(!r.record("10.0.0.1", "webhook_email", Reason::Wrong));
        assert!(r.record("10.0.0.2", "webhook_email", Reason::Wrong));
        assert!(r.record("10.0.0.1", "webhook_email", Reason::Missing));
        assert_eq!(r.last_hour()[0], ("webhook_email", Reason::Wrong, 3));
    }
}
