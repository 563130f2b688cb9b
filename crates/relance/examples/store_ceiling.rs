//! The ingest path without HTTP: how many events per second the store takes when nothing
//! else runs. `tasks` tasks each hand one behaviour event at a time to the store (parse,
//! rules, durable commit, the same write set a webhook commits), as `tasks` wrk
//! connections would, with the same mix as `bench/behavior.lua`. Pinned to the server's
//! core, it tells how much of that core the committed writes cost before any HTTP work:
//! an upper bound for the server's req/s on that core.
//!
//!   cargo run --release -p relance --example store_ceiling -- DATABASE_URL [seconds] [tasks]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use relance::config::{Flags, Settings};
use relance::live_rules::LiveRules;
use relance::server::open_store;
use relance::store::system_clock;
use relance_core::RuleSet;
use relance_core::inbound::parse_behavior;

/// The server binary's allocator, so that the store costs here what it costs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ACTIONS: [&str; 11] = [
    "page_visit",
    "page_visit",
    "page_visit",
    "page_visit",
    "open",
    "open",
    "open",
    "form_submit",
    "form_submit",
    "purchase",
    "purchase",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RELANCE_LOG=relance=debug shows each ingest batch (size, time).
    if let Ok(filter) = std::env::var("RELANCE_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let args: Vec<String> = std::env::args().collect();
    let url =
        args.get(1).cloned().ok_or_else(|| anyhow::anyhow!("usage: store_ceiling DATABASE_URL [seconds] [tasks]"))?;
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let tasks: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(32);

    // The environment read as `serve` reads it (RELANCE_SQLITE_CONTACT_CACHE,
    // RELANCE_INGEST_MAX_BATCH, …), the database from the command line.
    let settings = Settings::load(None, &Flags { database_url: Some(url), ..Flags::default() })?;
    let store = Arc::new(open_store(&settings, LiveRules::new(RuleSet::defaults()), system_clock()).await?);
    let counter = Arc::new(AtomicU64::new(0));
    let run = std::process::id();

    let mut measured = None;
    // A 2-second warm-up, then the measured window.
    for (phase, length) in [("warm-up", 2), ("measured", seconds)] {
        let start_count = counter.load(Ordering::Relaxed);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(length);
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (store, counter) = (store.clone(), counter.clone());
            handles.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
                    let body = serde_json::json!({
                        "client_code": format!("CL{:07}", (n * 7919) % 10_000),
                        "action": ACTIONS[(n % ACTIONS.len() as u64) as usize],
                        "event_id": format!("{run}-{n}"),
                        "metadata": {"page": "vins.html", "product_id": format!("P{}", n % 300), "amount": 20 + (n * 37) % 181},
                    });
                    let event = parse_behavior(&body, chrono::Utc::now())?;
                    store.ingest(vec![event]).await?;
                }
                anyhow::Ok(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let done = counter.load(Ordering::Relaxed) - start_count;
        if phase == "measured" {
            measured = Some(done as f64 / started.elapsed().as_secs_f64());
        }
    }
    store.shutdown().await;
    println!("store_ceiling events_per_s={:.0}", measured.unwrap_or(0.0));
    Ok(())
}
