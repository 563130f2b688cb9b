//! The SQLite writer keeps the contacts it wrote last in memory (issue 20). Whatever
//! else writes a contact — the API, an erasure, an import run by another process on the
//! same database — the next event must see it. Runs on PostgreSQL too (no cache there):
//! the answers are the same.

use serde_json::{Value, json};

use crate::common::{TestApp, call, spawn_app};

/// An open for the contact; the contact as stored after it.
async fn open(app: &TestApp, n: u32) -> Value {
    app.post_ok(
        "/webhook/behavior",
        &json!({"email": "cache@exemple.fr", "action": "open", "event_id": format!("cache-open-{n}")}),
    )
    .await;
    app.get_json("/api/contacts/cache@exemple.fr").await
}

#[tokio::test]
async fn the_next_event_sees_every_other_write_of_its_contact() {
    let app = spawn_app().await;
    let first = open(&app, 1).await;
    let second = open(&app, 2).await;
    assert_eq!(second["version"].as_i64(), first["version"].as_i64().map(|v| v + 1), "{first} {second}");

    // The API.
    let edit = call(&app, "PUT", "/api/contacts/cache@exemple.fr", None, Some(&json!({"segment": "VIP"}))).await;
    assert_eq!(edit.status(), 200, "{}", edit.text().await.unwrap());
    let after_edit = open(&app, 3).await;
    assert_eq!(after_edit["segment"], "VIP", "{after_edit}");

    // Another process on the same database.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crm.csv");
    std::fs::write(&file, "email,segment,phone\ncache@exemple.fr,Churn,+33600000009\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["contacts", "import", file.to_str().unwrap(), "--database", &app.db().url()])
        .env("RELANCE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after_import = open(&app, 4).await;
    assert_eq!(
        (&after_import["segment"], &after_import["phone"]),
        (&json!("Churn"), &json!("+33600000009")),
        "{after_import}"
    );
    assert_eq!(after_import["engagement"]["opens"], 4, "{after_import}");
    assert_eq!(
        after_import["version"].as_i64(),
        after_edit["version"].as_i64().map(|v| v + 2),
        "import, then the open"
    );

    // An erasure: the next event starts a new contact from nothing.
    let erased = call(&app, "DELETE", "/api/contacts/cache@exemple.fr", None, None).await;
    assert_eq!(erased.status(), 200, "{}", erased.text().await.unwrap());
    let fresh = open(&app, 5).await;
    assert_ne!(fresh["phone"], json!("+33600000009"), "{fresh}");
    assert_eq!(fresh["segment"], "Standard", "{fresh}");
    assert_eq!((&fresh["version"], &fresh["engagement"]["opens"]), (&json!(1), &json!(1)), "{fresh}");
    assert_eq!(app.count("contacts"), 2, "the erased contact stays as a tombstone");
    app.stop().await;
}
