//! `spawn_app()`: the real server on port 0 with a fresh database and a controlled clock.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, TimeZone, Utc};
use relance::config::{Secret, Settings};
use relance::server::Server;
use serde_json::Value;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    pub now_ms: Arc<AtomicI64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Holds the database; handed back by `stop()` so that a test can restart on it.
    dir: Option<tempfile::TempDir>,
}

pub const WEBHOOK_TOKEN: &str = "hook-token-for-tests";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_in(tempfile::tempdir().unwrap(), t0(), tweak).await
}

/// Starts a server on the database in `dir` (a restart when it already holds one), with
/// the clock at `now`.
pub async fn spawn_in(dir: tempfile::TempDir, now: DateTime<Utc>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db_path = dir.path().join("relance.db");
    let mut settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("sqlite://{}", db_path.display()),
        ..Settings::default()
    };
    // Tests control the clock; the dispatcher looks often so that advancing it shows quickly.
    settings.dispatch.poll_interval = std::time::Duration::from_millis(20);
    settings.dispatch.allow_private_targets = true;
    tweak(&mut settings);
    let now_ms = Arc::new(AtomicI64::new(now.timestamp_millis()));
    let clock_ms = now_ms.clone();
    let clock: relance::store::Clock =
        Arc::new(move || Utc.timestamp_millis_opt(clock_ms.load(Ordering::SeqCst)).unwrap());
    let server = Server::build(settings, clock).await.expect("server starts");
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        db_path,
        now_ms,
        stop: Some(stop),
        task: Some(task),
        dir: Some(dir),
    }
}

pub fn with_tokens(s: &mut Settings) {
    s.webhook_token = Some(Secret::new(WEBHOOK_TOKEN));
    s.admin_token = Some(Secret::new(ADMIN_TOKEN));
}

impl TestApp {
    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.now_ms.load(Ordering::SeqCst)).unwrap()
    }

    /// Polls `f` until it is true (the dispatcher works in the background), or panics.
    pub async fn eventually(&self, what: &str, mut f: impl FnMut(&TestApp) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !f(self) {
            assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `action_type:state` of every job, oldest first.
    pub fn job_states(&self) -> Vec<String> {
        self.query_strings("SELECT action_type || ':' || state FROM jobs ORDER BY created_at, id")
    }

    pub fn job_state(&self, id: &str) -> String {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row("SELECT state FROM jobs WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.base)).json(body).send().await.unwrap()
    }

    pub async fn post_ok(&self, path: &str, body: &Value) -> Value {
        let resp = self.post(path, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).send().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).await;
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// Counts rows straight from the database file.
    pub fn count(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        let conn = rusqlite::Connection::open(&self.db_path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect()
    }

    /// Stops the server; the returned directory keeps the database until dropped.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.dir.take().expect("stopped once")
    }
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/brevo/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
