//! Token checks. Webhooks: `Authorization: Bearer <token>` or Basic with the token as the
//! password (Brevo offers both). Admin API: Bearer only.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;

use super::AppState;
use super::error::ApiError;
use crate::config::Secret;
use crate::ui::session::CSRF_HEADER;

fn presented(headers: &HeaderMap, allow_basic: bool) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().as_bytes().to_vec());
    }
    if allow_basic && scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        return Some(decoded[colon + 1..].to_vec());
    }
    None
}

fn check(token: Option<&Secret>, headers: &HeaderMap, allow_basic: bool) -> Result<(), ApiError> {
    match token {
        None => Ok(()),
        Some(secret) => match presented(headers, allow_basic) {
            Some(candidate) if secret.matches(&candidate) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        },
    }
}

/// The admin token is accepted on the webhooks too, so that one Power Automate connection
/// (which holds one key) can both post events and call the admin API.
pub async fn webhook_auth(State(app): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    let s = &app.settings;
    if s.admin_token.is_some() && check(s.admin_token.as_ref(), req.headers(), false).is_ok() {
        return Ok(next.run(req).await);
    }
    check(s.webhook_token.as_ref(), req.headers(), true)?;
    Ok(next.run(req).await)
}

/// Bearer token, or a dashboard session (cookie). A request carried by the cookie that
/// changes something must also carry the session's CSRF token in `X-CSRF-Token`: the
/// browser sends the cookie on its own, only our pages know the token.
pub async fn admin_auth(State(app): State<AppState>, req: Request, next: Next) -> Result<Response, ApiError> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        check(app.settings.admin_token.as_ref(), req.headers(), false)?;
        return Ok(next.run(req).await);
    }
    if let Some(session) = app.ui.sessions.from_headers(req.headers(), (app.clock)()) {
        if !req.method().is_safe() {
            let presented = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !session.csrf_matches(presented) {
                return Err(ApiError::Forbidden("a dashboard session must send its CSRF token in X-CSRF-Token"));
            }
        }
        return Ok(next.run(req).await);
    }
    check(app.settings.admin_token.as_ref(), req.headers(), false)?;
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
        assert!(check(Some(&s), &headers(&format!("Basic {basic}")), false).is_err());
        assert!(check(Some(&s), &headers("Bearer nope"), true).is_err());
        assert!(check(Some(&s), &HeaderMap::new(), true).is_err());
        assert!(check(None, &HeaderMap::new(), true).is_ok());
    }
}
