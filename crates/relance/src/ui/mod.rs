//! The dashboard: server-rendered pages (maud) for the people who run the campaigns, with
//! a little script for charts, the live feed and the rule editor. Everything it shows
//! comes from the store through aggregates and pages, never whole tables; everything it
//! changes goes through the same store calls (or the same API) as the operator API.
//!
//! Sign-in: a user's name and password (or, to bootstrap, the admin token), exchanged
//! for a server-side session (see `web::session`). Forms carry the session's CSRF
//! token; the editor's API calls send it in a header. Each page's role is declared in
//! [`UI_ROUTE_ROLES`], as the API's are.

mod access;
mod actions;
mod assets;
mod audit;
mod contact_import;
mod contact_page;
mod contacts;
mod describe;
mod first_run;
mod integrations;
mod layout;
pub mod locale;
mod overview;
mod rules;
mod runs;
pub mod text;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use self::locale::{Lang, Locale};
use self::text::T;
use crate::access::{ActorKind, Need, Principal, Role};
use crate::store::access::NewSession;
use crate::store::audit::{Audit, AuditKind};
use crate::web::AppState;
use crate::web::actor::Actor;
use crate::web::auth::{RouteRole, need_of};
use crate::web::session::Session;

/// The overview's aggregates, shared by everyone looking for a few seconds: a marketer
/// refreshing the page should not rescan the contacts each time.
#[derive(Default)]
pub struct OverviewCache(tokio::sync::Mutex<Option<(Instant, Arc<overview::Aggregates>)>>);

/// How long the overview's aggregates are reused.
const OVERVIEW_TTL: Duration = Duration::from_secs(5);

const fn route(method: &'static str, path: &'static str, need: Need) -> RouteRole {
    RouteRole { method, path, need }
}
const VIEWER: Need = Need::Role(Role::Viewer);
const EDITOR: Need = Need::Role(Role::Editor);
const ADMIN: Need = Need::Role(Role::Admin);

/// Who may open each dashboard route behind the sign-in (as `api::ROUTE_ROLES`).
pub const UI_ROUTE_ROLES: &[RouteRole] = &[
    route("GET", "/", VIEWER),
    route("GET", "/ui/feed", VIEWER),
    route("GET", "/ui/contacts", VIEWER),
    route("GET", "/ui/contacts/{key}", VIEWER),
    route("GET", "/ui/rules", VIEWER),
    route("GET", "/ui/actions", VIEWER),
    route("GET", "/ui/actions/{id}", VIEWER),
    route("GET", "/ui/integrations", VIEWER),
    route("POST", "/ui/logout", VIEWER),
    route("POST", "/ui/rules/versions/{version}/activate", EDITOR),
    route("POST", "/ui/rules/{rule_id}/pause", EDITOR),
    route("POST", "/ui/rules/{rule_id}/resume", EDITOR),
    route("POST", "/ui/actions/{id}/cancel", EDITOR),
    route("POST", "/ui/actions/{id}/retry", EDITOR),
    route("POST", "/ui/first-run/test-event", EDITOR),
    route("POST", "/ui/contacts/import", EDITOR),
    route("POST", "/ui/contacts/import/confirm", EDITOR),
    route("POST", "/ui/integrations/{target}/test", EDITOR),
    route("POST", "/ui/first-run/test-events/delete", EDITOR),
    route("GET", "/ui/access", ADMIN),
    route("POST", "/ui/access/keys", ADMIN),
    route("POST", "/ui/access/keys/{name}/revoke", ADMIN),
    route("POST", "/ui/access/users", ADMIN),
    route("POST", "/ui/access/users/{name}/disable", ADMIN),
    route("POST", "/ui/access/users/{name}/enable", ADMIN),
    route("GET", "/ui/audit", ADMIN),
];

pub fn routes(state: &AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/", get(overview::page))
        .route("/ui/feed", get(overview::feed))
        .route("/ui/contacts", get(contacts::list))
        .route("/ui/contacts/{key}", get(contacts::detail))
        .route("/ui/contacts/import", post(contact_import::check))
        .route("/ui/contacts/import/confirm", post(contact_import::confirm))
        .route("/ui/rules", get(rules::page))
        .route("/ui/rules/versions/{version}/activate", post(rules::activate))
        .route("/ui/rules/{rule_id}/pause", post(rules::pause))
        .route("/ui/rules/{rule_id}/resume", post(rules::resume))
        .route("/ui/actions", get(actions::list))
        .route("/ui/actions/{id}", get(actions::detail))
        .route("/ui/actions/{id}/cancel", post(actions::cancel))
        .route("/ui/actions/{id}/retry", post(actions::retry))
        .route("/ui/first-run/test-event", post(first_run::send_test_event))
        .route("/ui/first-run/test-events/delete", post(first_run::delete_test_events))
        .route("/ui/integrations", get(integrations::page))
        .route("/ui/integrations/{target}/test", post(integrations::test))
        .route("/ui/logout", post(logout))
        .route("/ui/access", get(access::page))
        .route("/ui/access/keys", post(access::create_key))
        .route("/ui/access/keys/{name}/revoke", post(access::revoke_key))
        .route("/ui/access/users", post(access::add_user))
        .route("/ui/access/users/{name}/disable", post(access::disable_user))
        .route("/ui/access/users/{name}/enable", post(access::enable_user))
        .route("/ui/audit", get(audit::page))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_session));
    Router::new()
        .merge(signed_in)
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/language", get(switch_language))
        .route("/ui/assets/{name}", get(assets::serve))
        .layer(middleware::from_fn(security_headers))
        .layer(axum::Extension(Arc::new(OverviewCache::default())))
}

/// The browser may run only our own scripts and styles, and no other site may frame us.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

/// Pages need a session whose role opens them; a form that changes something also
/// needs the session's CSRF token (checked by `CsrfForm`).
async fn require_session(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let Some(session) = crate::web::session::from_headers(&app, req.headers()).await else {
        if req.method() == axum::http::Method::GET {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let next = url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>();
            return Redirect::to(&format!("/ui/login?next={next}")).into_response();
        }
        return (StatusCode::UNAUTHORIZED, "Your session has ended: sign in again.").into_response();
    };
    let path = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let need = need_of(UI_ROUTE_ROLES, req.method().as_str(), &path);
    match need {
        Some(need) if session.principal.may(need) => {}
        Some(need) => {
            let why = format!("role {} below {}", session.principal.role, need.describe());
            let method = req.method().clone();
            let from = (&method, crate::web::client_ip(&req));
            crate::web::auth::audit_refusal(&app, &session.principal, from, &path, &why).await;
            let message =
                session.locale.f(T::NeedsRole, &[&need.describe(), &session.principal.name, &session.principal.role]);
            return problem(StatusCode::FORBIDDEN, &session, &message);
        }
        None => {
            tracing::error!(path, "a dashboard route without a declared role was refused");
            return problem(StatusCode::FORBIDDEN, &session, session.locale.t(T::UndeclaredPage));
        }
    }
    req.extensions_mut().insert(session.principal.clone());
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// A page-relative target that cannot leave this site (`/x`, not `//evil` or `http://`).
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Whether the browser reached us over HTTPS (the public URL says so, or a trusted proxy
/// does), so that the cookie is marked `Secure`.
fn over_https(app: &AppState, client: Option<&crate::web::client::Client>) -> bool {
    app.settings.public_url.as_ref().is_some_and(|u| u.scheme() == "https")
        || client.and_then(|c| c.forwarded_https) == Some(true)
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login_form(State(app): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let l = Locale::negotiate(&headers, &app.settings.ui, (app.clock)());
    layout::login_page(&l, &local_target(q.next.as_deref()), None, app.settings.admin_token.is_none()).into_response()
}

#[derive(Deserialize)]
struct LanguageQuery {
    to: String,
}

/// Remembers the language picked in the header, then goes back to the page it was
/// picked on (the `Referer`, same site only).
async fn switch_language(headers: HeaderMap, Query(q): Query<LanguageQuery>) -> Response {
    let Some(lang) = Lang::parse(&q.to) else {
        return (StatusCode::BAD_REQUEST, "to: accepted languages are fr and en").into_response();
    };
    let back = headers.get(header::REFERER).and_then(|v| v.to_str().ok()).and_then(|r| url::Url::parse(r).ok()).map(
        |u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_owned(),
        },
    );
    let mut resp = Redirect::to(&local_target(back.as_deref())).into_response();
    let cookie = format!("{}={}; Path=/; SameSite=Lax; Max-Age=31536000", locale::LANG_COOKIE, lang.code());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    /// The form before named users: the admin token alone (scripts may still post it).
    token: Option<String>,
    next: Option<String>,
}

async fn login(
    State(app): State<AppState>,
    client: Option<axum::Extension<crate::web::client::Client>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    use crate::ops::access::SignIn;
    let next = local_target(f.next.as_deref());
    let now = (app.clock)();
    let l = Locale::negotiate(&headers, &app.settings.ui, now);
    let ip = client.as_deref().map_or(std::net::IpAddr::from([127, 0, 0, 1]), |c| c.ip);
    let name = f.name.trim().to_owned();
    let password = match f.token {
        Some(token) if name.is_empty() && f.password.is_empty() => token,
        _ => f.password,
    };
    // The entry names who tried, never what they typed as a password.
    let attempted = if name.is_empty() {
        Principal::admin_token()
    } else {
        Principal { name: name.clone(), kind: ActorKind::User, role: Role::Viewer }
    };
    let audit = Audit::new(&attempted, Some(ip.to_string()), "POST /ui/login", AuditKind::Sessions, "sign_in");
    let checked = crate::ops::access::check_sign_in(
        &*app.store,
        &app.sign_in_throttle,
        app.settings.admin_token.as_ref(),
        crate::ops::access::Attempt { ip, name: &name, secret: password, now },
        audit.clone(),
    )
    .await;
    let user = match checked {
        Ok(SignIn::Accepted(user)) => user,
        Ok(SignIn::Refused) => {
            tracing::warn!(user = %name, client = %ip, "dashboard sign-in refused");
            // Slows guessing down; the lock takes over after a few failures.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let page = layout::login_page(&l, &next, Some(l.t(T::WrongPassword)), false);
            return (StatusCode::UNAUTHORIZED, page).into_response();
        }
        Ok(SignIn::Locked(until)) => {
            tracing::warn!(user = %name, client = %ip, until = %until.to_rfc3339(), "dashboard sign-in locked");
            let wait = (until - now).num_seconds().max(1);
            let message = l.f(T::TooManySignIns, &[&wait]);
            let mut resp =
                (StatusCode::TOO_MANY_REQUESTS, layout::login_page(&l, &next, Some(&message), false)).into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait as u64));
            return resp;
        }
        Err(e) => {
            tracing::warn!(error = %e, "dashboard sign-in: storage unavailable");
            let page = layout::login_page(&l, &next, Some(l.t(T::DatabaseUnavailable)), false);
            return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
        }
    };
    let secret = crate::access::token::new_session();
    let session = NewSession {
        id_hash: secret.hash,
        user_name: user.clone(),
        csrf: secret.csrf,
        expires_at: now + chrono::Duration::seconds(crate::web::session::LIFETIME_SECS),
    };
    if let Err(e) = app.store.create_session(session, audit.summary("signed in")).await {
        tracing::warn!(error = %e, "dashboard sign-in: storing the session");
        let page = layout::login_page(&l, &next, Some(l.t(T::DatabaseUnavailable)), false);
        return (StatusCode::SERVICE_UNAVAILABLE, page).into_response();
    }
    tracing::info!(user = user.as_deref().unwrap_or("admin-token"), client = %ip, "dashboard sign-in");
    let mut resp = Redirect::to(&next).into_response();
    let cookie = crate::web::session::set_cookie(&secret.cookie, over_https(&app, client.as_deref()));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(State(app): State<AppState>, actor: Actor, CsrfForm(session, _): CsrfForm<Empty>) -> Response {
    let audit = actor.audit(AuditKind::Sessions, "sign_out").summary("signed out");
    if let Err(e) = app.store.end_session(session.id_hash.clone(), audit).await {
        tracing::warn!(error = %e, "signing out: the session could not be removed");
        return problem(StatusCode::SERVICE_UNAVAILABLE, &session, session.locale.t(T::SignOutFailed));
    }
    let mut resp = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&crate::web::session::clear_cookie()) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct Empty {}

/// A submitted form whose `csrf` field matches the session's token.
struct CsrfForm<T>(Session, T);

#[derive(Deserialize)]
struct WithCsrf<T> {
    csrf: String,
    #[serde(flatten)]
    rest: T,
}

impl<T: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = req
            .extensions()
            .get::<Session>()
            .cloned()
            .ok_or_else(|| (StatusCode::UNAUTHORIZED, "Your session has ended: sign in again.").into_response())?;
        let Form(form) = Form::<WithCsrf<T>>::from_request(req, state).await.map_err(|e| e.into_response())?;
        if !session.csrf_matches(&form.csrf) {
            return Err((StatusCode::FORBIDDEN, session.locale.t(text::T::StaleForm)).into_response());
        }
        Ok(CsrfForm(session, form.rest))
    }
}

/// A page for an error the user can act on.
fn problem(status: StatusCode, session: &Session, message: &str) -> Response {
    let body = html! { p.notice.bad role="alert" { (message) } };
    (status, layout::page(session.locale.t(T::SomethingWentWrong), layout::Nav::None, session, body)).into_response()
}

/// Store errors on a page: the message is safe to show (no internals in it).
fn store_problem(session: &Session, e: crate::store::StoreError) -> Response {
    use crate::store::StoreError;
    match e {
        StoreError::NotFound(what) => problem(StatusCode::NOT_FOUND, session, &session.locale.f(T::NotFound, &[&what])),
        StoreError::Invalid { message, .. } => problem(StatusCode::BAD_REQUEST, session, &message),
        StoreError::Conflict(m) => problem(StatusCode::CONFLICT, session, &m),
        StoreError::Overloaded | StoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "dashboard: storage unavailable");
            problem(StatusCode::SERVICE_UNAVAILABLE, session, session.locale.t(T::DatabaseBusy))
        }
    }
}
