//! The limits every request runs under, applied once around the whole router: a body
//! announced over [`MAX_BODY_BYTES`] is refused before a byte of it is read (bodies
//! without a length are cut while being read, in `webhooks::read_body`), and every request,
//! body reading included, must finish within the request deadline, so that a slow client
//! cannot hold a slot forever.
//!
//! Why a tower layer of its own rather than `axum::middleware::from_fn` on the router:
//! `Router::layer` wraps each route, and per request axum then clones the route's service
//! stack and boxes a future at every layer. Costed with callgrind on the webhook load, the
//! two `from_fn` middlewares this replaces took 3,500 and 4,300 instructions per request
//! of the 68,600 the Tokio thread spent; this layer takes one allocation.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, header};
use axum::response::{IntoResponse, Response};

use super::MAX_BODY_BYTES;
use super::error::ApiError;

/// Applies [`RequestLimits`] with the request deadline from the settings.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimitsLayer {
    pub deadline: Duration,
}

impl<S> tower::Layer<S> for RequestLimitsLayer {
    type Service = RequestLimits<S>;
    fn layer(&self, inner: S) -> RequestLimits<S> {
        RequestLimits { inner, deadline: self.deadline }
    }
}

#[derive(Debug, Clone)]
pub struct RequestLimits<S> {
    inner: S,
    deadline: Duration,
}

impl<S, B> tower::Service<Request<B>> for RequestLimits<S>
where
    S: tower::Service<Request<B>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if announced_length(&req).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Box::pin(std::future::ready(Ok(ApiError::PayloadTooLarge(MAX_BODY_BYTES).into_response())));
        }
        // Brevo retries a webhook on 429 and gives up on other errors.
        let webhook = req.uri().path().starts_with("/webhook/");
        // The inner service is called here, not in the future: `poll_ready` was answered
        // for this call, so no clone of the router is needed.
        let answer = tokio::time::timeout(self.deadline, self.inner.call(req));
        Box::pin(async move {
            match answer.await {
                Ok(answer) => answer,
                Err(_) if webhook => {
                    Ok(ApiError::RetryLater { retry_after: 5, detail: "request timed out" }.into_response())
                }
                Err(_) => Ok(ApiError::Unavailable("request timed out").into_response()),
            }
        })
    }
}

/// The body length the client announced, if it announced one that parses.
fn announced_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use tower::{Layer as _, ServiceExt as _};

    /// A service that answers 200 after `delay`.
    fn slow(
        delay: Duration,
    ) -> impl tower::Service<Request<()>, Response = Response, Error = Infallible, Future: Send> + Clone {
        tower::service_fn(move |_req: Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(StatusCode::OK.into_response())
        })
    }

    fn request(path: &str, length: Option<&str>) -> Request<()> {
        let mut builder = Request::post(path);
        if let Some(length) = length {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        builder.body(()).expect("request")
    }

    async fn status(delay_ms: u64, req: Request<()>) -> (StatusCode, Option<String>) {
        let limits = RequestLimitsLayer { deadline: Duration::from_millis(100) };
        let answer = limits.layer(slow(Duration::from_millis(delay_ms))).oneshot(req).await.expect("infallible");
        let retry = answer.headers().get(header::RETRY_AFTER).map(|v| v.to_str().expect("ascii").to_owned());
        (answer.status(), retry)
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_within_its_deadline_is_answered_by_the_inner_service() {
        assert_eq!(status(50, request("/webhook/behavior", Some("10"))).await.0, StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_webhook_gets_429_with_retry_after_and_any_other_request_503() {
        assert_eq!(
            status(500, request("/webhook/brevo", None)).await,
            (StatusCode::TOO_MANY_REQUESTS, Some("5".into()))
        );
        assert_eq!(status(500, request("/api/contacts", None)).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_announced_over_the_limit_is_refused_before_the_inner_service_runs() {
        let over = (MAX_BODY_BYTES + 1).to_string();
        // The inner service would time out: a 413 shows it never ran.
        assert_eq!(status(500, request("/webhook/behavior", Some(&over))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        let exact = MAX_BODY_BYTES.to_string();
        assert_eq!(status(50, request("/webhook/behavior", Some(&exact))).await.0, StatusCode::OK);
        // An unparsable length is left to the body reader's own cut.
        assert_eq!(status(50, request("/webhook/behavior", Some("lots"))).await.0, StatusCode::OK);
    }
}
