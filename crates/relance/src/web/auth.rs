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

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, header};
use base64::Engine as _;

use super::AppState;
use super::error::ApiError;
use super::session::CSRF_HEADER;
use crate::access::{ActorKind, Need, Principal, token};

/// Through which door a change came (a rule set saved through the dashboard records
/// `dashboard`, through the API `api`).
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

const WEBHOOK_EXPECTS: &str = "/webhook/* expects `Authorization: Bearer <RELANCE_WEBHOOK_TOKEN>` or an API key \
    with the ingest, editor or admin role (or Basic auth with either as the password; the admin token works too)";
const ADMIN_EXPECTS: &str = "/api/* and /metrics expect `Authorization: Bearer <API key>` (see `relance keys create`), \
    `Bearer <RELANCE_ADMIN_TOKEN>`, or a dashboard session";

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

/// A route's required role, as its router declares it (one table per router).
#[derive(Debug, Clone, Copy)]
pub struct RouteRole {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
}

/// What a table says of a route; `None` for a route it does not declare.
pub fn need_of(table: &[RouteRole], method: &str, path: &str) -> Option<Need> {
    table.iter().find(|r| r.method == method && r.path == path).map(|r| r.need)
}

/// The state of the authorising layer: the app and the table of the routes it guards.
#[derive(Clone)]
pub struct Guard {
    pub app: AppState,
    pub table: &'static [RouteRole],
}

/// Why a request was not authenticated.
enum Refusal {
    Auth(Reason),
    Csrf,
    Store(crate::store::StoreError),
}

/// Who the caller is, as far as the headers and the settings tell: the answer, or what
/// must be looked up in the store first.
enum Found {
    Now(Result<(Principal, Caller), Refusal>),
    /// A session cookie, without an `Authorization` header.
    Session,
    /// A bearer token shaped like an API key that is neither configured token.
    Key(String),
}

/// A caller whose credentials matched nothing (or who sent none) is let in only where
/// the route group has no token configured.
fn open_or(app: &AppState, webhook: bool, reason: Reason) -> Result<(Principal, Caller), Refusal> {
    let s = &app.settings;
    match (webhook, &s.webhook_token, &s.admin_token) {
        (true, None, _) => Ok((Principal::open_sender(), Caller::Token)),
        (false, _, None) => Ok((Principal::local(), Caller::Token)),
        _ => Err(Refusal::Auth(reason)),
    }
}

/// The part of authentication that needs no store: no credentials, a malformed header,
/// the admin or webhook token. Webhooks from Brevo are settled here.
fn authenticate_now(app: &AppState, headers: &HeaderMap, webhook: bool) -> Found {
    let s = &app.settings;
    if !headers.contains_key(header::AUTHORIZATION) {
        if super::session::cookie_values(headers).next().is_some() {
            return Found::Session;
        }
        return Found::Now(open_or(app, webhook, Reason::Missing));
    }
    let token = match presented(headers, webhook) {
        Ok(token) => token,
        Err(reason) => return Found::Now(Err(Refusal::Auth(reason))),
    };
    if s.admin_token.as_ref().is_some_and(|t| t.matches(&token)) {
        return Found::Now(Ok((Principal::admin_token(), Caller::Token)));
    }
    if s.webhook_token.as_ref().is_some_and(|t| t.matches(&token)) {
        return Found::Now(Ok((Principal::webhook_token(), Caller::Token)));
    }
    let text = std::str::from_utf8(&token).unwrap_or("");
    if token::looks_like_key(text) {
        return Found::Key(text.to_owned());
    }
    Found::Now(open_or(app, webhook, Reason::Wrong))
}

/// Who is calling: a dashboard session (with its CSRF token on changes), the admin or
/// webhook token, or a named API key. Without a configured token a route group is open,
/// as before keys existed (loopback only: `Settings::check` refuses otherwise).
async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    method: &axum::http::Method,
    webhook: bool,
) -> Result<(Principal, Caller), Refusal> {
    match authenticate_now(app, headers, webhook) {
        Found::Now(found) => found,
        Found::Session => match super::session::from_headers(app, headers).await {
            Some(session) => {
                if !method.is_safe() {
                    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                    if !session.csrf_matches(presented) {
                        return Err(Refusal::Csrf);
                    }
                }
                Ok((session.principal, Caller::Dashboard))
            }
            None => open_or(app, webhook, Reason::Missing),
        },
        Found::Key(text) => match app.store.key_by_hash(token::digest(&text), (app.clock)()).await {
            Ok(Some(key)) => Ok((Principal { name: key.name, kind: ActorKind::Key, role: key.role }, Caller::Token)),
            Ok(None) => Err(Refusal::Auth(Reason::Wrong)),
            Err(e) => Err(Refusal::Store(e)),
        },
    }
}

/// The route group an audit entry of a refused change is filed under.
pub fn audit_kind_of(path: &str) -> crate::store::audit::AuditKind {
    use crate::store::audit::AuditKind;
    let under = |p: &str| path.starts_with(p);
    if under("/api/rules") || under("/ui/rules") {
        AuditKind::Rules
    } else if under("/api/actions") || under("/ui/actions") {
        AuditKind::Actions
    } else if under("/api/users") || under("/ui/access/users") {
        AuditKind::Users
    } else if under("/api/keys") || under("/ui/access/keys") {
        AuditKind::Keys
    } else if under("/ui/login") || under("/ui/logout") {
        AuditKind::Sessions
    } else {
        AuditKind::Contacts
    }
}

/// What a role refusal says: the role the route needs and the one presented.
pub fn role_refusal(principal: &Principal, need: Need) -> String {
    let holder = match principal.kind {
        ActorKind::Key => format!("the key {:?}", principal.name),
        ActorKind::User => format!("the user {:?}", principal.name),
        _ => principal.name.clone(),
    };
    format!(
        "this route needs the {} role; {holder} holds {} (roles: viewer < editor < admin; ingest opens /webhook/* only)",
        need.describe(),
        principal.role
    )
}

/// Records a refused attempt to change something by a known principal (reads are not
/// audited).
pub async fn audit_refusal(
    app: &AppState,
    principal: &Principal,
    (method, ip): (&axum::http::Method, Option<String>),
    path: &str,
    why: &str,
) {
    if method.is_safe() {
        return;
    }
    let route = format!("{method} {path}");
    let audit = crate::store::audit::Audit::new(principal, ip, route, audit_kind_of(path), "refused").refused(why);
    if let Err(e) = app.store.record_audit(audit).await {
        tracing::warn!(error = %e, "recording a refused change in the audit log");
    }
}

/// Where a request stands once its caller is known.
enum Settled {
    Admitted,
    Refused(ApiError),
    /// A known principal below the route's role: refused, and recorded in the audit log.
    RoleTooLow(Principal),
}

impl Guard {
    /// The role the request's route needs. A route missing from the table is refused
    /// (fail closed; a test walks the router).
    fn need(&self, req: &Request) -> Result<Need, ApiError> {
        let path = match req.extensions().get::<axum::extract::MatchedPath>() {
            Some(matched) => matched.as_str(),
            None => req.uri().path(),
        };
        need_of(self.table, req.method().as_str(), path).ok_or_else(|| {
            tracing::error!(method = %req.method(), path, "a route without a declared role was refused");
            ApiError::Forbidden("this route has no declared role; it is refused")
        })
    }

    fn settle(&self, req: &mut Request, need: Need, found: Result<(Principal, Caller), Refusal>) -> Settled {
        let expects = if need == Need::Ingest { WEBHOOK_EXPECTS } else { ADMIN_EXPECTS };
        let (principal, caller) = match found {
            Ok(found) => found,
            Err(Refusal::Auth(reason)) => return Settled::Refused(refuse(&self.app, req, reason, expects)),
            Err(Refusal::Csrf) => {
                return Settled::Refused(ApiError::Forbidden(
                    "a dashboard session must send its CSRF token in X-CSRF-Token",
                ));
            }
            Err(Refusal::Store(e)) => return Settled::Refused(e.into()),
        };
        if !principal.may(need) {
            if principal.kind == ActorKind::WebhookToken {
                return Settled::Refused(refuse(&self.app, req, Reason::WebhookTokenOnAdmin, expects));
            }
            return Settled::RoleTooLow(principal);
        }
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(principal);
        Settled::Admitted
    }

    /// Admits or refuses `req` when that needs no store (every webhook, a configured
    /// token); `None` when it does, or when a refusal must be audited.
    pub(super) fn admit_now(&self, req: &mut Request) -> Option<Result<(), ApiError>> {
        let need = match self.need(req) {
            Ok(need) => need,
            Err(refused) => return Some(Err(refused)),
        };
        if need == Need::Public {
            return Some(Ok(()));
        }
        let Found::Now(found) = authenticate_now(&self.app, req.headers(), need == Need::Ingest) else {
            return None;
        };
        match self.settle(req, need, found) {
            Settled::Admitted => Some(Ok(())),
            Settled::Refused(refused) => Some(Err(refused)),
            Settled::RoleTooLow(_) => None,
        }
    }

    /// Authenticates the caller, with the store where needed, and checks its role against
    /// the route's entry in the table; on success the request carries its principal and
    /// caller.
    pub(super) async fn admit(&self, req: &mut Request) -> Result<(), ApiError> {
        let need = self.need(req)?;
        if need == Need::Public {
            return Ok(());
        }
        let method = req.method().clone();
        let found = authenticate(&self.app, req.headers(), &method, need == Need::Ingest).await;
        match self.settle(req, need, found) {
            Settled::Admitted => Ok(()),
            Settled::Refused(refused) => Err(refused),
            Settled::RoleTooLow(principal) => {
                let path = req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or_else(|| req.uri().path().to_owned(), |m| m.as_str().to_owned());
                let message = role_refusal(&principal, need);
                let why = format!("role {} below {}", principal.role, need.describe());
                audit_refusal(&self.app, &principal, (&method, super::client_ip(req)), &path, &why).await;
                Err(ApiError::RoleTooLow(message))
            }
        }
    }
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
        assert_eq!(presented(&headers("Bearer s3cret"), true), Ok(b"s3cret".to_vec()));
        let basic = base64::engine::general_purpose::STANDARD.encode("brevo:s3cret");
        assert_eq!(presented(&headers(&format!("Basic {basic}")), true), Ok(b"s3cret".to_vec()));
        assert_eq!(presented(&headers(&format!("Basic {basic}")), false), Err(Reason::Malformed));
        assert_eq!(presented(&headers("s3cret"), true), Err(Reason::Malformed));
        assert_eq!(presented(&HeaderMap::new(), true), Err(Reason::Missing));
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
