//! Open-loop load generator for the soak and the fixed-rate latency figures: requests
//! are sent on a fixed schedule (not when the previous answer came back), and latency is
//! measured from the time each request was *due*, so a server that stalls shows its
//! stall instead of hiding it (no coordinated omission).
//!
//! Mixed traffic: behaviour events (visits, opens, clicks, forms, purchases) and Brevo
//! events (opened, click, delivered, rare unsubscribes) for a pool of contacts, each with
//! a unique id. One line per window on stdout (CSV), a summary on stderr.
//!
//!   cargo run --release --example loadgen -- --url http://127.0.0.1:8080 --rate 2000 \
//!       --seconds 60 [--window 10] [--pid PID] [--token T] [--contacts 10000] [--connections 256]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

struct Args {
    url: String,
    rate: f64,
    seconds: u64,
    window: u64,
    pid: Option<u32>,
    token: Option<String>,
    contacts: u64,
    connections: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: "http://127.0.0.1:8080".into(),
        rate: 1000.0,
        seconds: 30,
        window: 10,
        pid: None,
        token: None,
        contacts: 10_000,
        connections: 256,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    for pair in raw.chunks(2) {
        let (k, v) = (pair[0].as_str(), pair.get(1).map(String::as_str).unwrap_or(""));
        match k {
            "--url" => a.url = v.trim_end_matches('/').to_owned(),
            "--rate" => a.rate = v.parse().expect("--rate N"),
            "--seconds" => a.seconds = v.parse().expect("--seconds N"),
            "--window" => a.window = v.parse().expect("--window N"),
            "--pid" => a.pid = Some(v.parse().expect("--pid PID")),
            "--token" => a.token = Some(v.to_owned()),
            "--contacts" => a.contacts = v.parse().expect("--contacts N"),
            "--connections" => a.connections = v.parse().expect("--connections N"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn rss_kb(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// The n-th request: its path and body.
fn request(n: u64, contacts: u64) -> (&'static str, String) {
    let contact = (n.wrapping_mul(2_654_435_761)) % contacts;
    let email = format!("c{contact}@example.fr");
    match n % 10 {
        0..=5 => {
            let action = ["page_visit", "open", "click", "form_submit", "purchase", "page_visit"][(n % 6) as usize];
            let amount = if action == "purchase" { 20 + (n % 7) * 15 } else { 0 };
            let body = format!(
                r#"{{"client_code":"CL{contact}","email":"{email}","action":"{action}","event_id":"load-{n}","metadata":{{"amount":{amount},"page":"vins-rouges.html"}}}}"#
            );
            ("/webhook/behavior", body)
        }
        _ => {
            let event = match n % 97 {
                0 => "unsubscribed",
                _ => ["opened", "click", "delivered", "opened"][(n % 4) as usize],
            };
            let body = format!(
                r#"{{"event":"{event}","email":"{email}","message-id":"<load-{n}@relay>","ts_epoch":{},"link":"https://vins.example.fr/p"}}"#,
                1_772_442_000_000u64 + n
            );
            ("/webhook/email", body)
        }
    }
}

#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    errors: u64,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(a.connections)
        // The server closes a connection idle for its header_read_timeout (10 s): a pooled
        // connection reused at that moment fails the request. Drop idle ones before.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let slots = Arc::new(Semaphore::new(a.connections));
    let window = Arc::new(Mutex::new(Window::default()));
    let total_ok = Arc::new(AtomicU64::new(0));
    let total_err = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / a.rate);
    let total = (a.rate * a.seconds as f64) as u64;
    println!("t_s,sent,ok_rate,errors,p50_ms,p99_ms,p999_ms,rss_mb");

    let reporter = {
        let (window, pid, every) = (window.clone(), a.pid, a.window);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(every),
                Duration::from_secs(every),
            );
            loop {
                tick.tick().await;
                let w = std::mem::take(&mut *window.lock().await);
                let mut l = w.latencies_us;
                l.sort_unstable();
                println!(
                    "{},{},{:.0},{},{:.2},{:.2},{:.2},{:.1}",
                    start.elapsed().as_secs(),
                    l.len() as u64 + w.errors,
                    l.len() as f64 / every as f64,
                    w.errors,
                    percentile(&l, 0.50),
                    percentile(&l, 0.99),
                    percentile(&l, 0.999),
                    rss_kb(pid) as f64 / 1024.0
                );
            }
        })
    };

    let all_latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(total.min(5_000_000) as usize)));
    for n in 0..total {
        let due = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(due.into()).await;
        let permit = slots.clone().acquire_owned().await.expect("semaphore");
        let (path, body) = request(n, a.contacts);
        let mut req = client.post(format!("{}{path}", a.url)).header("content-type", "application/json").body(body);
        if let Some(t) = &a.token {
            req = req.bearer_auth(t);
        }
        let (window, ok, err, all) = (window.clone(), total_ok.clone(), total_err.clone(), all_latencies.clone());
        tokio::spawn(async move {
            let result = req.send().await;
            let latency = due.elapsed().as_micros() as u64;
            let good = matches!(&result, Ok(r) if r.status().is_success());
            let failure = match result {
                Ok(r) if good => {
                    let _ = r.bytes().await;
                    None
                }
                Ok(r) => Some(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                Err(e) => Some(format!("{e:?}")),
            };
            if let Some(failure) = failure {
                // What failed, so that a failed soak says why (the server logs only errors).
                eprintln!("request {n} ({path}) failed: {failure}");
            }
            drop(permit);
            let mut w = window.lock().await;
            if good {
                w.latencies_us.push(latency);
                ok.fetch_add(1, Ordering::Relaxed);
                let mut all = all.lock().await;
                if all.len() < 5_000_000 {
                    all.push(latency);
                }
            } else {
                w.errors += 1;
                err.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Let the last requests finish.
    let _ = slots.acquire_many(a.connections as u32).await;
    reporter.abort();
    let elapsed = start.elapsed().as_secs_f64();
    // Tasks may still hold their clone of the Arc for a moment: take the data, not the Arc.
    let mut all = std::mem::take(&mut *all_latencies.lock().await);
    all.sort_unstable();
    eprintln!(
        "summary: rate_target={} sent={} ok={} errors={} achieved={:.0}/s p50_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        a.rate,
        total,
        total_ok.load(Ordering::Relaxed),
        total_err.load(Ordering::Relaxed),
        total_ok.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 0.999),
        all.last().copied().unwrap_or(0) as f64 / 1000.0
    );
}
