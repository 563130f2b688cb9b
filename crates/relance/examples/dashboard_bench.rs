//! Dashboard benchmark: the real server on a SQLite file holding 100,000 contacts and
//! 1,000,000 events of the last 7 days (plus history and jobs), each page fetched as a
//! signed-in browser would, timed over several runs, with its size.
//!
//!   cargo run --release -p relance --example dashboard_bench -- [contacts] [events]

use std::time::{Duration, Instant};

use chrono::Utc;
use relance::config::{Secret, Settings};
use relance::server::Server;
use relance_core::{Contact, Email, Event, Score, Source, Trigger};

const TOKEN: &str = "bench-admin-token";
const RUNS: usize = 15;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let contacts: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let events: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dashboard.db");
    let url = format!("sqlite://{}", path.display());

    // Create the schema through the server, then fill the file directly (fast).
    let settings = || {
        let mut s = Settings { bind: "127.0.0.1:0".parse().unwrap(), database_url: url.clone(), ..Settings::default() };
        s.admin_token = Some(Secret::new(TOKEN));
        s.webhook_token = Some(Secret::new("bench-webhook-token"));
        s.dispatch.enabled = false;
        s
    };
    let server = Server::build(settings(), relance::store::system_clock()).await?;
    drop(server);

    let filled = Instant::now();
    let now = Utc::now();
    {
        let mut conn = rusqlite::Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let tx = conn.transaction()?;
        let segments = ["Standard", "Standard", "Standard", "VIP", "Prospect"];
        for i in 0..contacts {
            let score = (i * 37 % 101) as u8;
            let mut c = Contact {
                email: Some(Email::parse(&format!("c{i}@bench.example"))?),
                segment: segments[i % segments.len()].to_owned(),
                score: Score::clamped(i64::from(score)),
                ..Contact::default()
            };
            if i % 3 == 0 {
                c.tags.insert("engaged".into());
            }
            tx.execute(
                "INSERT INTO contacts (id, email, segment, score, data, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                rusqlite::params![
                    i + 1,
                    format!("c{i}@bench.example"),
                    c.segment,
                    score,
                    serde_json::to_string(&c)?,
                    now.timestamp_millis() - 8 * 86_400_000
                ],
            )?;
        }
        let triggers =
            [Trigger::EmailOpened, Trigger::EmailClicked, Trigger::PageVisit, Trigger::Purchase, Trigger::FormSubmit];
        let rules = ["rule_email_opened", "rule_email_clicked", "", "rule_purchase", ""];
        let mut event_stmt = tx.prepare(
            "INSERT INTO events (id, source, name, trigger, contact_id, email, occurred_at, received_at, event, raw)
             VALUES (?1, 'tracking', ?2, ?2, ?3, ?4, ?5, ?5, ?6, '{}')",
        )?;
        let mut history_stmt = tx.prepare(
            "INSERT INTO history (contact_id, event_id, rule_id, action_type, field, before, after, at)
             VALUES (?1, ?2, ?3, 'update_score', 'score', ?4, ?5, ?6)",
        )?;
        let mut job_stmt = tx.prepare(
            "INSERT INTO jobs (id, contact_id, event_id, rule_id, trigger, action_type, config, delay_minutes, due_at,
                               state, attempts, last_error, created_at, updated_at)
             VALUES (?1, ?2, ?3, 'rule_purchase', 'purchase', 'send_email', '{}', 5, ?4, ?5, ?6, ?7, ?4, ?4)",
        )?;
        let span_ms = 7 * 86_400_000i64;
        let states = ["done", "done", "done", "pending", "failed", "dead", "cancelled"];
        for i in 0..events {
            let t = i % triggers.len();
            let at = now.timestamp_millis() - span_ms + (i as i64 * span_ms / events as i64);
            let contact = 1 + (i * 7919) % contacts;
            let event =
                Event::new(Source::Tracking, triggers[t], chrono::DateTime::from_timestamp_millis(at).unwrap_or(now));
            // An event's public id is its row id in decimal.
            let (row_id, public_id) = (i as i64 + 1, (i + 1).to_string());
            event_stmt.execute(rusqlite::params![
                row_id,
                triggers[t].as_str(),
                contact,
                format!("c{}@bench.example", contact - 1),
                at,
                serde_json::to_string(&event)?
            ])?;
            if !rules[t].is_empty() {
                history_stmt.execute(rusqlite::params![contact, public_id, rules[t], "40", "45", at])?;
            }
            if triggers[t] == Trigger::Purchase && i % 50 == 3 {
                let state = states[(i / 50) % states.len()];
                let error = (state == "failed" || state == "dead").then_some("could not connect");
                job_stmt.execute(rusqlite::params![format!("j{i}"), contact, public_id, at, state, 1, error])?;
            }
        }
        drop((event_stmt, history_stmt, job_stmt));
        // The hourly counters, as the writer keeps them (same as the migration's backfill).
        tx.execute_batch(
            "DELETE FROM hourly_counts;
             INSERT INTO hourly_counts (hour, kind, name, count)
             SELECT (received_at / 3600000) * 3600000, 'trigger', COALESCE(trigger, 'none'), count(*) FROM events GROUP BY 1, 3;
             INSERT INTO hourly_counts (hour, kind, name, count)
             SELECT (at / 3600000) * 3600000, 'rule', rule_id, count(*) FROM history WHERE rule_id IS NOT NULL GROUP BY 1, 3;",
        )?;
        tx.commit()?;
        conn.execute_batch("ANALYZE")?;
    }
    let filled = filled.elapsed();
    let size = std::fs::metadata(&path)?.len();

    let server = Server::build(settings(), relance::store::system_clock()).await?;
    let base = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let login = client.post(format!("{base}/ui/login")).form(&[("token", TOKEN)]).send().await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("no session cookie"))?
        .to_owned();

    let pages = [
        ("overview (aggregates recomputed)", "/".to_owned(), true),
        ("overview (within its 5 s cache)", "/".to_owned(), false),
        ("contacts, first page", "/ui/contacts".to_owned(), false),
        ("contacts, a later page (cursor)", format!("/ui/contacts?cursor={}", contacts / 2), false),
        ("contacts, segment VIP + score 80..100", "/ui/contacts?segment=VIP&score_min=80".to_owned(), false),
        ("contacts, tag engaged", "/ui/contacts?tag=engaged".to_owned(), false),
        ("contacts, search (prefix)", "/ui/contacts?search=c4242".to_owned(), false),
        ("contacts, search matching nothing", "/ui/contacts?search=zz".to_owned(), false),
        ("one contact (timeline, chart, explain)", "/ui/contacts/c42%40bench.example".to_owned(), false),
        ("rules (hits over 7 days)", "/ui/rules".to_owned(), false),
        ("actions, latest 200", "/ui/actions".to_owned(), false),
        ("actions, dead ones", "/ui/actions?state=dead".to_owned(), false),
    ];
    println!("# Dashboard pages on {contacts} contacts and {events} events (SQLite, {:.1} GB)\n", size as f64 / 1e9);
    println!(
        "Filled in {:.0} s. Each page fetched {RUNS} times by a signed-in client, after one warm-up.\n",
        filled.as_secs_f64()
    );
    println!("| page | median ms | max ms | KiB |");
    println!("|---|---:|---:|---:|");
    for (name, path, expire_cache) in &pages {
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for run in 0..=RUNS {
            if *expire_cache {
                // Past the overview's cache lifetime: every fetch recomputes.
                tokio::time::sleep(Duration::from_millis(5_100)).await;
            }
            let started = Instant::now();
            let resp = client.get(format!("{base}{path}")).header("cookie", &cookie).send().await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            let took = started.elapsed();
            anyhow::ensure!(status == 200, "{path}: {status}");
            bytes = body.len();
            if run > 0 {
                times.push(took.as_secs_f64() * 1000.0);
            }
            if *expire_cache && run >= 3 {
                break;
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let max = times[times.len() - 1];
        println!("| {name} | {median:.1} | {max:.1} | {:.0} |", bytes as f64 / 1024.0);
    }
    let _ = stop.send(());
    let _ = task.await;
    Ok(())
}
