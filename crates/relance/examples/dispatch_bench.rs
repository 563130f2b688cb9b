//! Dispatcher benchmark: N due jobs (signed webhooks) dispatched to a local receiver.
//! Reports jobs/s and lateness (time received − time due).
//!
//!   cargo run --release -p relance --example dispatch_bench -- [jobs] [burst|steady] [rate]
//!
//! `burst`: every job due at the start (throughput). `steady`: due times spread at `rate`
//! per second (lateness when the load is sustainable).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{Router, body::Bytes, extract::State, routing::post};
use chrono::Utc;
use relance::config::{DispatchSettings, Secret};
use relance::dispatch::Dispatcher;
use relance::store::sqlite::{SqliteSettings, SqliteStore};
use relance::store::{Lifecycle, system_clock};
use relance_core::{Contact, Email, RuleSet};

#[derive(Default)]
struct Seen {
    lateness_ms: Vec<i64>,
}

async fn receive(State(seen): State<Arc<Mutex<Seen>>>, body: Bytes) -> &'static str {
    let now = Utc::now();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(due) = v["due_at"].as_str().and_then(|d| d.parse::<chrono::DateTime<Utc>>().ok())
    {
        seen.lock().unwrap().lateness_ms.push((now - due).num_milliseconds());
    }
    "ok"
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mode = args.get(2).cloned().unwrap_or_else(|| "burst".into());
    let rate: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4000.0);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = Router::new().route("/hook", post(receive)).with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.db");
    let store = Arc::new(SqliteStore::open(
        &path,
        relance::live_rules::LiveRules::new(RuleSet::defaults()),
        system_clock(),
        SqliteSettings::default(),
    )?);

    // Jobs straight into the database: 1,000 contacts, N webhook jobs.
    let start_at = Utc::now() + chrono::Duration::seconds(2);
    {
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let tx = conn.transaction()?;
        for i in 0..1000 {
            let c = Contact { email: Some(Email::parse(&format!("c{i}@bench.example"))?), ..Contact::default() };
            tx.execute(
                "INSERT INTO contacts (id, email, segment, score, data, created_at, updated_at) VALUES (?1, ?2, 'Standard', 50, ?3, 0, 0)",
                rusqlite::params![i + 1, format!("c{i}@bench.example"), serde_json::to_string(&c)?],
            )?;
        }
        let config = serde_json::json!({"url": url}).to_string();
        let mut stmt = tx.prepare(
            "INSERT INTO jobs (id, contact_id, rule_id, trigger, action_type, config, delay_minutes, due_at, state,
                               created_at, updated_at)
             VALUES (?1, ?2, 'bench', 'purchase', 'trigger_webhook', ?3, 0, ?4, 'pending', 0, 0)",
        )?;
        for i in 0..n {
            let due = match mode.as_str() {
                "steady" => start_at + chrono::Duration::milliseconds((i as f64 / rate * 1000.0) as i64),
                _ => start_at,
            };
            stmt.execute(rusqlite::params![format!("job-{i:07}"), 1 + i % 1000, config, due.timestamp_millis()])?;
        }
        drop(stmt);
        tx.commit()?;
    }

    let settings = DispatchSettings {
        concurrency: 64,
        poll_interval: Duration::from_millis(200),
        allow_private_targets: true,
        webhook_signing_secret: Some(Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")),
        ..DispatchSettings::default()
    };
    let dispatcher = Dispatcher::new(store.clone(), Arc::new(settings), system_clock())?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(dispatcher.run(async move {
        let _ = stop_rx.await;
    }));

    tokio::time::sleep((start_at - Utc::now()).to_std().unwrap_or_default()).await;
    let began = Instant::now();
    let deadline = began + Duration::from_secs(600);
    loop {
        let done = seen.lock().unwrap().lateness_ms.len();
        if done >= n || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = began.elapsed();
    let _ = stop_tx.send(());
    let _ = running.await;
    store.shutdown().await;

    let mut lateness = std::mem::take(&mut seen.lock().unwrap().lateness_ms);
    lateness.sort_unstable();
    let done = lateness.len();
    let conn = rusqlite::Connection::open(&path)?;
    let finished: i64 = conn.query_row("SELECT count(*) FROM jobs WHERE state = 'done'", [], |r| r.get(0))?;
    println!(
        "dispatch {mode}: {done}/{n} jobs received, {finished} recorded done, in {:.2} s = {:.0} jobs/s; lateness p50 {} ms, p99 {} ms, max {} ms",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or_default(),
    );
    Ok(())
}
