//! The floor: what the same machine does with no storage and no rules. Parses the body
//! as JSON (as Relance must) and answers a small JSON object.
#![forbid(unsafe_code)]

use axum::{Json, Router, body::Bytes, http::StatusCode, routing::post};

async fn accept(body: Bytes) -> (StatusCode, Json<serde_json::Value>) {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"status": "received"}))),
        Err(_) => (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid_json"}))),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".into());
    let app = Router::new().route("/webhook/email", post(accept)).route("/webhook/behavior", post(accept));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("floor listening on {addr}");
    axum::serve(listener, app).await
}
