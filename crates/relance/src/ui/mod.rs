//! The dashboard: server-rendered pages (maud) for the people who run the campaigns, with
//! a little script for charts, the live feed and the rule editor. Everything it shows
//! comes from the store through aggregates and pages, never whole tables; everything it
//! changes goes through the same store calls (or the same API) as the operator API.
//!
//! Sign-in: the admin token, exchanged for a signed session cookie (see `session`).
//! Forms carry the session's CSRF token; the editor's API calls send it in a header.

mod actions;
mod assets;
mod contacts;
mod layout;
mod overview;
mod rules;
mod runs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Form, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use crate::web::AppState;
use crate::web::session::Session;

/// The overview's aggregates, shared by everyone looking for a few seconds: a marketer
/// refreshing the page should not rescan the contacts each time.
#[derive(Default)]
pub struct OverviewCache(tokio::sync::Mutex<Option<(Instant, Arc<overview::Aggregates>)>>);

/// How long the overview's aggregates are reused.
const OVERVIEW_TTL: Duration = Duration::from_secs(5);

pub fn routes(state: &AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/", get(overview::page))
        .route("/ui/feed", get(overview::feed))
        .route("/ui/contacts", get(contacts::list))
        .route("/ui/contacts/{key}", get(contacts::detail))
        .route("/ui/rules", get(rules::page))
        .route("/ui/rules/versions/{version}/activate", post(rules::activate))
        .route("/ui/rules/{rule_id}/pause", post(rules::pause))
        .route("/ui/rules/{rule_id}/resume", post(rules::resume))
        .route("/ui/actions", get(actions::list))
        .route("/ui/actions/{id}", get(actions::detail))
        .route("/ui/actions/{id}/cancel", post(actions::cancel))
        .route("/ui/actions/{id}/retry", post(actions::retry))
        .route("/ui/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_session));
    Router::new()
        .merge(signed_in)
        .route("/ui/login", get(login_form).post(login))
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

/// Pages need a session; a form that changes something also needs the session's CSRF
/// token (checked by `CsrfForm`).
async fn require_session(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    match app.sessions.from_headers(req.headers(), (app.clock)()) {
        Some(session) => {
            req.extensions_mut().insert(session);
            next.run(req).await
        }
        None if req.method() == axum::http::Method::GET => {
            let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let next = url::form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>();
            Redirect::to(&format!("/ui/login?next={next}")).into_response()
        }
        None => (StatusCode::UNAUTHORIZED, "Your session has ended: sign in again.").into_response(),
    }
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

async fn login_form(State(app): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    layout::login_page(&local_target(q.next.as_deref()), None, app.settings.admin_token.is_none()).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(
    State(app): State<AppState>,
    client: Option<axum::Extension<crate::web::client::Client>>,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = local_target(f.next.as_deref());
    let accepted = match &app.settings.admin_token {
        Some(secret) => secret.matches(f.token.as_bytes()),
        None => true,
    };
    if !accepted {
        tracing::info!("dashboard sign-in refused");
        // Slows guessing down; the token is compared in constant time either way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let page = layout::login_page(&next, Some("That is not the admin token."), false);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let (cookie, _) = app.sessions.issue((app.clock)());
    let mut resp = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&crate::web::session::set_cookie(&cookie, over_https(&app, client.as_deref())))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout(_: CsrfForm<Empty>) -> Response {
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
            return Err((StatusCode::FORBIDDEN, "This form is stale or came from another site: reload the page.")
                .into_response());
        }
        Ok(CsrfForm(session, form.rest))
    }
}

/// A page for an error the user can act on.
fn problem(status: StatusCode, session: &Session, message: &str) -> Response {
    let body = html! { p.notice.bad role="alert" { (message) } };
    (status, layout::page("Something went wrong", layout::Nav::None, session, body)).into_response()
}

/// Store errors on a page: the message is safe to show (no internals in it).
fn store_problem(session: &Session, e: crate::store::StoreError) -> Response {
    use crate::store::StoreError;
    match e {
        StoreError::NotFound(what) => problem(StatusCode::NOT_FOUND, session, &format!("No {what}.")),
        StoreError::Invalid { message, .. } => problem(StatusCode::BAD_REQUEST, session, &message),
        StoreError::Conflict(m) => problem(StatusCode::CONFLICT, session, &m),
        StoreError::Overloaded | StoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "dashboard: storage unavailable");
            problem(StatusCode::SERVICE_UNAVAILABLE, session, "The database is busy or unavailable; try again shortly.")
        }
    }
}
