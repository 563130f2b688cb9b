//! Hostile clients: slowloris headers, slow and endless bodies, too many connections,
//! floods of wrong tokens. None of them stores anything or stops valid traffic.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `within` passes); returns what came.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

async fn valid_event(app: &TestApp, id: &str) -> u16 {
    let body = json!({"client_code": "VALID", "action": "page_visit", "event_id": id});
    app.post("/webhook/behavior", &body).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_headers_are_cut_off_while_valid_traffic_flows() {
    let app = spawn_with(|s| {
        s.header_read_timeout = Duration::from_secs(1);
        s.request_timeout = Duration::from_secs(2);
    })
    .await;
    let started = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"POST /webhook/behavior HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(s);
    }
    // Trickle a header byte now and then on every connection while valid requests go on.
    let trickle = tokio::spawn(async move {
        for _ in 0..10 {
            for s in &mut slow {
                let _ = s.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        slow
    });
    for n in 0..50 {
        assert_eq!(valid_event(&app, &format!("v{n}")).await, 200);
    }
    let mut slow = trickle.await.unwrap();
    let mut cut = 0;
    for s in &mut slow {
        if read_until_closed(s, Duration::from_secs(3)).await.is_some() {
            cut += 1;
        }
    }
    assert_eq!(cut, 300, "every slowloris connection is closed by the header deadline");
    assert_eq!(app.count("events"), 50);
    eprintln!("slowloris: 300 connections cut, 50 valid events stored, in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_endless_bodies_are_refused_and_store_nothing() {
    let app = spawn_with(|s| s.request_timeout = Duration::from_secs(1)).await;

    // A body announced but trickled: the request deadline answers 429 (Brevo retries it).
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"POST /webhook/behavior HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).await.expect("answered within the deadline");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");

    // An endless chunked body: cut at 1 MiB with 413.
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"POST /webhook/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
    let mut sent = 0usize;
    while sent < 8 * 1024 * 1024 {
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server stopped reading
        }
        sent += 64 * 1024;
    }
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 413"), "after {sent} bytes: {answer}");
    assert!(sent < 8 * 1024 * 1024, "the server stopped reading early");

    // A Content-Length far over the limit is refused before the body is read.
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(b"POST /webhook/email HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(5)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    assert_eq!(app.count("events"), 0);
    assert_eq!(valid_event(&app, "after").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_not_queued() {
    let app = spawn_with(|s| s.max_connections = 20).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr(&app)).await.unwrap();
        s.write_all(b"GET /webhook/health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        assert!(s.read(&mut buf).await.unwrap() > 0, "served");
        idle.push(s); // kept alive: each holds a slot
    }
    let mut extra = TcpStream::connect(addr(&app)).await.unwrap();
    let _ = extra.write_all(b"GET /webhook/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answer = read_until_closed(&mut extra, Duration::from_secs(2)).await.expect("closed at once");
    assert!(answer.is_empty(), "no answer over the limit: {answer}");

    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ok = app.client.get(format!("{}/webhook/health", app.base)).send().await.map(|r| r.status() == 200);
        if ok.unwrap_or(false) {
            break;
        }
        assert!(Instant::now() < deadline, "slots come back when connections close");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_wrong_tokens_store_nothing_and_valid_traffic_goes_on() {
    let app = std::sync::Arc::new(spawn_with(with_tokens).await);
    let mut attackers = Vec::new();
    for w in 0..20 {
        let app = app.clone();
        attackers.push(tokio::spawn(async move {
            let mut unauthorized = 0;
            for n in 0..500 {
                let body = json!({"client_code": "EVIL", "action": "purchase", "event_id": format!("evil-{w}-{n}"),
                                  "metadata": {"amount": 1000}});
                let r = app
                    .client
                    .post(format!("{}/webhook/behavior", app.base))
                    .bearer_auth(format!("wrong-{n}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                if r.status() == 401 {
                    unauthorized += 1;
                }
            }
            unauthorized
        }));
    }
    let started = Instant::now();
    let mut valid = 0;
    for n in 0..200 {
        let body = json!({"client_code": "GOOD", "action": "page_visit", "event_id": format!("good-{n}")});
        let r = app
            .client
            .post(format!("{}/webhook/behavior", app.base))
            .bearer_auth(WEBHOOK_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        valid += 1;
    }
    let valid_took = started.elapsed();
    let mut refused = 0;
    for a in attackers {
        refused += a.await.unwrap();
    }
    assert_eq!(refused, 10_000, "every wrong token is a 401");
    assert_eq!(app.count("events"), valid);
    assert_eq!(app.count("contacts WHERE client_code = 'EVIL'"), 0);
    eprintln!("wrong tokens: 10,000 refused, {valid} valid events stored in {valid_took:?} during the flood");
}
