//! A newcomer's first hour: the usual mistakes answer with the fix, and the usual inputs
//! (a French Excel CSV, a host name to bind, a pipe into `head`) just work.

use std::process::{Command, Output, Stdio};

use crate::common::*;
use serde_json::{Value, json};

fn relance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(args)
        .env_remove("RELANCE_DATABASE_URL")
        .env_remove("RELANCE_BIND")
        .output()
        .expect("relance runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_port_in_use_names_the_setting_that_changes_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/r.db", dir.path().display());
    let o = relance(&["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", &db]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("already in use") && err.contains("--bind or RELANCE_BIND"), "{err}");
    assert!(!err.contains("writer stopped"), "no misleading line before it: {err}");
    assert!(!err.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {err:?}");
}

#[test]
fn a_second_serve_on_the_same_sqlite_file_is_refused_with_the_first_ones_address() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/r.db", dir.path().display());
    let first_port = free_port();
    let mut first = start_process(&db, first_port, &[]);
    let o = relance(&["serve", "--bind", &format!("127.0.0.1:{}", free_port()), "--database", &db]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("already served") && err.contains(&format!("listening on 127.0.0.1:{first_port}")), "{err}");
}

#[test]
fn database_urls_that_cannot_work_say_what_would() {
    let o = relance(&["migrate", "--database", "sqlit://x.db"]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(err.contains("sqlite://FILE") && err.contains("postgres://"), "{err}");
    let o = relance(&["migrate", "--database", "postgres://nobody@127.0.0.1:1/x"]);
    let err = stderr(&o);
    assert!(err.contains("cannot reach PostgreSQL at 127.0.0.1:1: connection refused"), "{err}");
    assert!(!err.to_lowercase().contains("pool"), "no pool jargon: {err}");

    let dir = tempfile::tempdir().unwrap();
    let deep = format!("sqlite://{}/no/such/dir/x.db", dir.path().display());
    let err = stderr(&relance(&["migrate", "--database", &deep]));
    assert!(err.contains("does not exist, nor its parent"), "{err}");
    assert!(!dir.path().join("no").exists(), "no tree of folders made");
    let one_level = format!("sqlite://{}/data/x.db", dir.path().display());
    assert!(relance(&["migrate", "--database", &one_level]).status.success());
    assert!(dir.path().join("data/x.db").exists());
}

#[test]
fn bind_takes_a_host_name_and_the_proxy_switch_needs_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/r.db", dir.path().display());
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["serve", "--bind", &format!("localhost:{port}"), "--database", &db, "--proxy-opens-are-opens"])
        .env("RELANCE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "localhost:{port} did not come up");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let answer: Value = raw_http::blocking_post(port, &fixture("proxy_open"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer["trigger"], "email_opened", "the switch counted the proxy open: {answer}");
}

/// A tiny blocking POST (the test is synchronous).
mod raw_http {
    use serde_json::Value;

    pub fn blocking_post(port: u16, body: &Value) -> Value {
        use std::io::{Read, Write};
        let body = body.to_string();
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "POST /webhook/email HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }
}

#[test]
fn cli_errors_name_the_fix_and_a_pipe_into_head_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(&events, "{\"source\": \"tracking\", \"client_code\": \"CL1\", \"action\": \"dance\"}\n").unwrap();
    let err = stderr(&relance(&["simulate", "--events", events.to_str().unwrap()]));
    assert!(err.contains(":1:") && err.contains("accepted: click, page_visit"), "{err}");

    let db = format!("sqlite://{}/r.db", dir.path().display());
    assert!(relance(&["migrate", "--database", &db]).status.success());
    let err = stderr(&relance(&["events", "export", "--database", &db, "--since", "yesterday"]));
    assert_eq!(err.matches("since").count(), 1, "{err}");

    // Enough output (280 KB) to fill the pipe after `head` has gone.
    let lines: Vec<String> = (0..3000)
        .map(|i| json!({"source": "tracking", "client_code": format!("CL{i}"), "action": "visit"}).to_string())
        .collect();
    std::fs::write(&events, lines.join("\n")).unwrap();
    let shell = format!(
        "set -o pipefail; '{}' simulate --events '{}' | head -n 1",
        env!("CARGO_BIN_EXE_relance"),
        events.display()
    );
    let o = Command::new("bash").args(["-c", &shell]).output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    assert_eq!(stderr(&o), "", "ends quietly");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("line 1 visit"));
}

#[tokio::test]
async fn a_french_excel_csv_imports_and_form_encoded_bodies_name_the_setting() {
    let app = spawn_with(|s| s.import_default_country = Some("FR".into())).await;
    let mut csv = b"client_code;email;first_name;phone;total_spent\r\n".to_vec();
    csv.extend_from_slice(b"CL1;marie@exemple.fr;Ren\xe9e;06 12 34 56 78;120,50\r\n");
    let resp = app.client.post(format!("{}/api/contacts/import", app.base)).body(csv).send().await.unwrap();
    let report: Value = resp.json().await.unwrap();
    assert_eq!((report["separator"].as_str(), report["encoding"].as_str()), (Some(";"), Some("windows-1252")));
    assert_eq!(report["created"], 1, "{report}");
    let c = app.get_json("/api/contacts/CL1").await;
    assert_eq!((c["first_name"].as_str(), c["phone"].as_str()), (Some("Renée"), Some("+33612345678")));

    let bad = b"client_code;phone\r\nCL2;12\r\n".to_vec();
    let resp = app.client.post(format!("{}/api/contacts/import", app.base)).body(bad).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let report: Value = resp.json().await.unwrap();
    assert!(report["rejected"][0]["reason"].as_str().unwrap().contains("8 to 15"), "{report}");

    // Power Automate Desktop with "Encode request body" left on.
    let encoded = "%7B%22client_code%22%3A%22CL1%22%2C%22action%22%3A%22visit%22%7D";
    let resp = app
        .client
        .post(format!("{}/webhook/behavior", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(encoded)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("Encode request body"), "{body}");
    app.stop().await;
}
