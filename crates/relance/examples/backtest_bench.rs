//! Backtest benchmark: N stored events (default 1,000,000) over 10,000 contacts in a
//! SQLite file, replayed through the live rules and a candidate.
//!
//!   cargo run --release -p relance --example backtest_bench -- [events]

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use relance::live_rules::LiveRules;
use relance::store::Lifecycle;
use relance::store::sqlite::{SqliteSettings, SqliteStore};
use relance_core::{Contact, Email, Event, RuleFormat, RuleSet, Source, Trigger};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("backtest.db");
    let live = LiveRules::new(RuleSet::defaults());
    let store = SqliteStore::open(&path, live.clone(), relance::store::system_clock(), SqliteSettings::default())?;

    let filled = Instant::now();
    {
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let tx = conn.transaction()?;
        for i in 0..10_000 {
            let c = Contact { email: Some(Email::parse(&format!("c{i}@bench.example"))?), ..Contact::default() };
            tx.execute(
                "INSERT INTO contacts (id, email, segment, score, data, created_at, updated_at) VALUES (?1, ?2, 'Standard', 50, ?3, 0, 0)",
                rusqlite::params![i + 1, format!("c{i}@bench.example"), serde_json::to_string(&c)?],
            )?;
        }
        let base = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let triggers =
            [Trigger::EmailOpened, Trigger::EmailClicked, Trigger::PageVisit, Trigger::Purchase, Trigger::FormSubmit];
        let mut stmt = tx.prepare(
            "INSERT INTO events (id, source, name, trigger, contact_id, occurred_at, received_at, event, raw)
             VALUES (?1, 'tracking', ?2, ?2, ?3, ?4, ?4, ?5, '{}')",
        )?;
        for i in 0..n {
            let trigger = triggers[i % triggers.len()];
            let at = base + chrono::Duration::seconds(i as i64);
            let mut event = Event::new(Source::Tracking, trigger, at);
            if trigger == Trigger::Purchase {
                event.amount = Some(20.0 + (i % 200) as f64);
            }
            stmt.execute(rusqlite::params![
                i as i64 + 1,
                trigger.as_str(),
                1 + (i * 7919) % 10_000,
                at.timestamp_millis(),
                serde_json::to_string(&event)?
            ])?;
        }
        drop(stmt);
        tx.commit()?;
    }
    let filled = filled.elapsed();

    let mut specs = RuleSet::defaults().specs();
    if let Some(r) = specs.iter_mut().find(|r| r.rule_id == "rule_purchase") {
        r.conditions.minimum_amount = Some(100.0);
    }
    let candidate =
        RuleSet::parse(&serde_json::to_string(&specs)?, RuleFormat::Json).map_err(|e| anyhow::anyhow!("{}", e[0]))?;
    let started = Instant::now();
    let report = relance::ops::backtest::against_history(
        &store,
        &live.current().engine,
        candidate,
        relance::ops::backtest::Replay {
            since: None,
            max_examples: 5,
            now: Utc::now(),
            pressure: &relance_core::pressure::Pressure::off(),
            sync: Default::default(),
        },
    )
    .await?;
    let took = started.elapsed();
    store.shutdown().await;
    println!(
        "backtest: {} stored events, {} contacts, replayed through two rule sets in {:.1} s ({:.0} events/s; filling the database took {:.1} s); {} contacts end differently, {} emails no longer sent",
        report.events,
        report.contacts,
        took.as_secs_f64(),
        report.events as f64 / took.as_secs_f64(),
        filled.as_secs_f64(),
        report.contacts_ending_differently,
        report.emails_no_longer_sent
    );
    Ok(())
}
