//! The contacts list's filters read the columns each write keeps: a segment moved by an
//! edit shows under its new segment at once, and events that leave it alone (which no
//! longer rewrite the segment column) keep it where it is.

use crate::common::*;
use serde_json::{Value, json};

async fn codes_in(app: &TestApp, segment: &str) -> Vec<String> {
    let page = app.get_json(&format!("/api/contacts?segment={segment}")).await;
    let mut codes: Vec<String> = (page["contacts"].as_array().unwrap().iter())
        .map(|c| c["client_code"].as_str().unwrap_or_default().to_owned())
        .collect();
    codes.sort();
    codes
}

async fn put(app: &TestApp, code: &str, body: Value) {
    let resp = app.client.put(format!("{}/api/contacts/{code}", app.base)).json(&body).send().await.unwrap();
    assert!(resp.status().is_success(), "PUT {code}: {}", resp.status());
}

#[tokio::test]
async fn the_segment_filter_follows_edits_and_not_events() {
    let app = spawn_app().await;
    put(&app, "CL1", json!({"email": "un@exemple.fr", "segment": "VIP"})).await;
    put(&app, "CL2", json!({"email": "deux@exemple.fr"})).await;
    assert_eq!(codes_in(&app, "VIP").await, ["CL1"]);
    assert_eq!(codes_in(&app, "Standard").await, ["CL2"]);

    // Events change the score and data, not the segment.
    for (code, action) in [("CL1", "page_visit"), ("CL2", "open"), ("CL1", "form_submit")] {
        app.post_ok("/webhook/behavior", &json!({"client_code": code, "action": action})).await;
    }
    assert_eq!(codes_in(&app, "VIP").await, ["CL1"]);
    assert_eq!(codes_in(&app, "Standard").await, ["CL2"]);

    // An edit moves a stored contact to another segment, both ways.
    put(&app, "CL1", json!({"segment": "Standard"})).await;
    put(&app, "CL2", json!({"segment": "VIP"})).await;
    assert_eq!(codes_in(&app, "VIP").await, ["CL2"]);
    assert_eq!(codes_in(&app, "Standard").await, ["CL1"]);
    // And an event after the move keeps it there.
    app.post_ok("/webhook/behavior", &json!({"client_code": "CL2", "action": "page_visit"})).await;
    assert_eq!(codes_in(&app, "VIP").await, ["CL2"]);
    app.stop().await;
}
