//! Dashboard sessions, stored server-side: the cookie holds a random id, the database its
//! digest, so that signing out, disabling a user or changing their password ends the
//! session at once on every instance behind the load balancer. Each session has its own
//! random CSRF token: forms and the dashboard's API calls send it back, a page of
//! another site cannot read it.

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};

use super::AppState;
use crate::access::{ActorKind, Principal, token};
use crate::config::constant_time_eq;
use crate::ui::locale::Locale;

pub const COOKIE: &str = "relance_session";
/// A session lasts a working day.
pub const LIFETIME_SECS: i64 = 12 * 3600;
/// The header the dashboard's scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
    pub expires: DateTime<Utc>,
    /// Who signed in, with the role they hold now.
    pub principal: Principal,
    /// The stored digest of the cookie (to end this session).
    pub id_hash: String,
    /// The language, time zone and currency the pages are written in.
    pub locale: Locale,
}

impl Session {
    /// Whether a presented CSRF token is this session's.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), presented.as_bytes())
    }
}

/// The non-empty values a request's cookies carry under `name`.
pub fn cookies_named<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(n, value)| *n == name && !value.is_empty())
        .map(|(_, value)| value)
}

/// The session cookie's values.
pub fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    cookies_named(headers, COOKIE)
}

/// The session of a request, from its `Cookie` header, looked up in the store. A store
/// that does not answer means no session (the page asks to sign in again).
pub async fn from_headers(app: &AppState, headers: &HeaderMap) -> Option<Session> {
    for value in cookie_values(headers) {
        let id_hash = token::digest(value);
        let now = (app.clock)();
        match app.store.session(id_hash.clone(), now).await {
            Ok(Some(row)) => {
                let principal = match row.user_name {
                    Some(name) => Principal { name, kind: ActorKind::User, role: row.role },
                    None if app.settings.admin_token.is_some() => Principal::admin_token(),
                    None => Principal::local(),
                };
                let locale = Locale::negotiate(headers, &app.settings.ui, now);
                return Some(Session { csrf: row.csrf, expires: row.expires_at, principal, id_hash, locale });
            }
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading a dashboard session");
                return None;
            }
        }
    }
    None
}

/// `Set-Cookie` for a session; `Secure` when the dashboard is reached over HTTPS.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={LIFETIME_SECS}{secure}")
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, format!("a=b; {COOKIE}=xyz; c=d").parse().unwrap());
        assert_eq!(cookie_values(&headers).collect::<Vec<_>>(), vec!["xyz"]);
        let mut empty = HeaderMap::new();
        empty.insert(axum::http::header::COOKIE, format!("{COOKIE}=").parse().unwrap());
        assert_eq!(cookie_values(&empty).count(), 0);
    }

    #[test]
    fn csrf_is_compared_whole() {
        let s = Session {
            csrf: "abc".into(),
            expires: Utc::now(),
            principal: Principal::local(),
            id_hash: String::new(),
            locale: Locale::default(),
        };
        assert!(s.csrf_matches("abc"));
        assert!(!s.csrf_matches("ab"));
    }
}
