//! The dashboard's static files, embedded in the binary: nothing is fetched from the
//! internet, at run time or at build time (Chart.js is vendored from npm, see
//! `assets/vendor/SOURCES`).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css; charset=utf-8", include_bytes!("assets/app.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("assets/app.js")),
    ("chart.umd.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/vendor/chart.umd.min.js")),
    ("favicon.svg", "image/svg+xml", include_bytes!("assets/favicon.svg")),
];

pub async fn serve(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => {
            let mut resp = (StatusCode::OK, *bytes).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            // URLs carry the version (`?v=`), so a day of caching cannot serve stale files
            // across an upgrade.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
            resp
        }
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
