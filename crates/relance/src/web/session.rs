//! Dashboard sessions: a signed cookie, no server-side table, so that any instance behind
//! a load balancer accepts a session another one opened.
//!
//! Cookie value: `{expires}.{nonce}.{mac}`, where `mac = HMAC-SHA256(key, "session|expires|nonce")`.
//! The key is the admin token (changing the token signs everyone out); without an admin
//! token (loopback only) it is random per process. The CSRF token of a session is
//! `HMAC(key, "csrf|nonce")`: forms and the dashboard's API calls send it back, a page of
//! another site cannot read it.

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Secret, constant_time_eq};

pub const COOKIE: &str = "relance_session";
/// A session lasts a working day.
pub const LIFETIME_SECS: i64 = 12 * 3600;
/// The header the dashboard's scripts send the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

pub struct SessionKeys {
    key: Vec<u8>,
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub csrf: String,
    pub expires: DateTime<Utc>,
}

impl SessionKeys {
    pub fn new(admin_token: Option<&Secret>) -> SessionKeys {
        let key = match admin_token {
            Some(t) => t.expose().as_bytes().to_vec(),
            // uuid v4 draws from the OS generator.
            None => [uuid::Uuid::new_v4().into_bytes(), uuid::Uuid::new_v4().into_bytes()].concat(),
        };
        SessionKeys { key }
    }

    fn mac(&self, message: &str) -> String {
        // HMAC takes keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!());
        mac.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Opens a session: the cookie value and the session.
    pub fn issue(&self, now: DateTime<Utc>) -> (String, Session) {
        let expires = now.timestamp() + LIFETIME_SECS;
        let nonce = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().into_bytes());
        let value = format!("{expires}.{nonce}.{}", self.mac(&format!("session|{expires}|{nonce}")));
        let session = self.session(&nonce, expires);
        (value, session)
    }

    fn session(&self, nonce: &str, expires: i64) -> Session {
        Session {
            csrf: self.mac(&format!("csrf|{nonce}")),
            expires: DateTime::from_timestamp(expires, 0).unwrap_or_default(),
        }
    }

    /// The session a cookie value stands for, if it is genuine and not expired.
    pub fn verify(&self, value: &str, now: DateTime<Utc>) -> Option<Session> {
        let mut parts = value.splitn(3, '.');
        let (expires_raw, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: i64 = expires_raw.parse().ok()?;
        let expected = self.mac(&format!("session|{expires}|{nonce}"));
        if !constant_time_eq(expected.as_bytes(), mac.as_bytes()) || expires <= now.timestamp() {
            return None;
        }
        Some(self.session(nonce, expires))
    }

    /// The session of a request, from its `Cookie` header.
    pub fn from_headers(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Option<Session> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE)
            .find_map(|(_, value)| self.verify(value, now))
    }
}

impl Session {
    /// Whether a presented CSRF token is this session's.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), presented.as_bytes())
    }
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

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn a_session_verifies_until_it_expires() {
        let keys = SessionKeys::new(Some(&Secret::new("admin")));
        let (cookie, session) = keys.issue(now());
        assert_eq!(keys.verify(&cookie, now()), Some(session.clone()));
        assert!(keys.verify(&cookie, now() + chrono::Duration::seconds(LIFETIME_SECS)).is_none());
        assert!(session.csrf_matches(&session.csrf));
        assert!(!session.csrf_matches("forged"));
    }

    #[test]
    fn forged_or_foreign_cookies_are_refused() {
        let keys = SessionKeys::new(Some(&Secret::new("admin")));
        let (cookie, _) = keys.issue(now());
        let other = SessionKeys::new(Some(&Secret::new("rotated")));
        assert!(other.verify(&cookie, now()).is_none(), "a new admin token signs everyone out");
        let (expires, rest) = cookie.split_once('.').unwrap();
        let longer = format!("{}.{rest}", expires.parse::<i64>().unwrap() + 3600);
        assert!(keys.verify(&longer, now()).is_none(), "the expiry is signed");
        assert!(keys.verify("garbage", now()).is_none());
        assert!(keys.verify("", now()).is_none());
    }

    #[test]
    fn cookie_is_read_among_others() {
        let keys = SessionKeys::new(None);
        let (cookie, session) = keys.issue(now());
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, format!("a=b; {COOKIE}={cookie}; c=d").parse().unwrap());
        assert_eq!(keys.from_headers(&headers, now()), Some(session));
    }
}
