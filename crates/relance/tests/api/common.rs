//! `spawn_app()`: the real server on port 0 with a fresh database and a controlled clock.

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
    pub now_ms: Arc<AtomicI64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Handed back by `stop()` so that a test can restart on it or read it.
    db: Option<TestDb>,
}

/// A fresh database for one test: a SQLite file in a temp dir, or, when
/// `RELANCE_TEST_DATABASE_URL` names a PostgreSQL server, a new database on it.
pub enum TestDb {
    Sqlite { dir: tempfile::TempDir },
    Postgres { url: String },
}

pub fn on_postgres() -> bool {
    std::env::var("RELANCE_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// Runs a PostgreSQL query from sync test code: on its own thread and runtime, so that
/// it works inside any test runtime.
fn pg_query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.unwrap();
            rows.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .unwrap()
}

impl TestDb {
    pub fn fresh() -> TestDb {
        match std::env::var("RELANCE_TEST_DATABASE_URL") {
            Ok(admin) if admin.starts_with("postgres") => {
                let name = format!("relance_t_{}", uuid::Uuid::new_v4().simple());
                pg_query(&admin, &format!("CREATE DATABASE {name}"));
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
                TestDb::Postgres { url: format!("{base}/{name}") }
            }
            _ => TestDb::Sqlite { dir: tempfile::tempdir().unwrap() },
        }
    }

    /// The same PostgreSQL database again, for a second instance.
    pub fn shared(&self) -> TestDb {
        match self {
            TestDb::Postgres { url } => TestDb::Postgres { url: url.clone() },
            TestDb::Sqlite { .. } => panic!("a SQLite file is not shared between instances"),
        }
    }

    pub fn url(&self) -> String {
        match self {
            TestDb::Sqlite { dir } => format!("sqlite://{}", dir.path().join("relance.db").display()),
            TestDb::Postgres { url } => url.clone(),
        }
    }

    /// The SQLite file (SQLite-only tests).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match self {
            TestDb::Sqlite { dir } => Some(dir.path().join("relance.db")),
            TestDb::Postgres { .. } => None,
        }
    }

    /// Every row, every column as text (NULL as "").
    pub fn query_rows(&self, sql: &str) -> Vec<Vec<String>> {
        match self {
            TestDb::Sqlite { .. } => {
                let conn = rusqlite::Connection::open(self.sqlite_path().unwrap()).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                let columns = stmt.column_count();
                stmt.query_map([], |r| {
                    (0..columns)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => String::new(),
                                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                                rusqlite::types::ValueRef::Blob(_) => "<blob>".into(),
                            })
                        })
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            TestDb::Postgres { url } => pg_query(url, sql)
                .into_iter()
                .map(|row| row.into_iter().map(Option::unwrap_or_default).collect())
                .collect(),
        }
    }

    /// Every row's first column as text (NULL as "").
    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        self.query_rows(sql).into_iter().map(|mut row| row.swap_remove(0)).collect()
    }

    pub fn execute(&self, sql: &str) {
        match self {
            TestDb::Sqlite { .. } => {
                rusqlite::Connection::open(self.sqlite_path().unwrap()).unwrap().execute_batch(sql).unwrap();
            }
            TestDb::Postgres { url } => {
                pg_query(url, sql);
            }
        }
    }

    /// Counts rows; `table` may carry a `WHERE` clause.
    pub fn count(&self, table: &str) -> i64 {
        self.query_strings(&format!("SELECT count(*) FROM {table}"))[0].parse().unwrap()
    }
}

pub const WEBHOOK_TOKEN: &str = "hook-token-for-tests";
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// Two instances on one fresh PostgreSQL database, or `None` (the test is skipped, saying
/// so) when the tests do not run on PostgreSQL.
pub async fn two_instances() -> Option<(TestApp, TestApp)> {
    if !on_postgres() {
        eprintln!("skipped: needs RELANCE_TEST_DATABASE_URL=postgres://… (scripts/with-postgres.sh)");
        return None;
    }
    let db = TestDb::fresh();
    let a = spawn_on(db.shared(), t0(), |_| {}).await;
    let b = spawn_on(db, t0(), |_| {}).await;
    Some((a, b))
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_on(TestDb::fresh(), t0(), tweak).await
}

/// Starts a server on `db` (a restart when it already holds data), with the clock at `now`.
pub async fn spawn_on(db: TestDb, now: DateTime<Utc>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    // Warnings (storage errors, dead jobs) show up in a failing test's output.
    let _ = tracing_subscriber::fmt().with_env_filter("warn").with_test_writer().try_init();
    let mut settings = Settings { bind: "127.0.0.1:0".parse().unwrap(), database_url: db.url(), ..Settings::default() };
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
        now_ms,
        stop: Some(stop),
        task: Some(task),
        db: Some(db),
    }
}

/// Signs in to the dashboard with `token` (`""` on a loopback server without an admin
/// token) and answers the HTML of `path`.
pub async fn dashboard_html(app: &TestApp, token: &str, path: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let login = client.post(format!("{}/ui/login", app.base)).form(&[("token", token), ("next", "/")]);
    let resp = login.send().await.unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    client.get(format!("{}{path}", app.base)).header("cookie", cookie).send().await.unwrap().text().await.unwrap()
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
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for: {what}; jobs (type:state:attempts:error): {:?}",
                self.query_strings(
                    "SELECT action_type || ':' || state || ':' || attempts || ':' || COALESCE(last_error, '') \
                     FROM jobs ORDER BY created_at, id"
                )
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// `action_type:state` of every job, oldest first.
    pub fn job_states(&self) -> Vec<String> {
        self.query_strings("SELECT action_type || ':' || state FROM jobs ORDER BY created_at, id")
    }

    pub fn job_state(&self, id: &str) -> String {
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "a job id");
        self.query_strings(&format!("SELECT state FROM jobs WHERE id = '{id}'")).remove(0)
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

    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("running")
    }

    /// Counts rows straight from the database; `table` may carry a `WHERE` clause.
    pub fn count(&self, table: &str) -> i64 {
        self.db().count(table)
    }

    pub fn query_strings(&self, sql: &str) -> Vec<String> {
        self.db().query_strings(sql)
    }

    pub async fn stop(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self.db.take().expect("stopped once")
    }
}

/// Any method on `path`, with a bearer token and a JSON body if given.
pub async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, format!("{}{path}", app.base));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../../fixtures/brevo/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A free port on 127.0.0.1 (for a server started as a child process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `relance serve` as a child process on `db`, once it accepts connections.
pub fn start_process(db: &str, port: u16, extra_args: &[&str]) -> std::process::Child {
    use std::process::{Command, Stdio};
    let child = Command::new(env!("CARGO_BIN_EXE_relance"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", db])
        .args(extra_args)
        .env("RELANCE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relance starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "server did not come up");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// A store opened directly on `db` (no server), as a second instance would.
pub async fn open_store_on(
    db: &TestDb,
    live: Arc<relance::live_rules::LiveRules>,
    clock: relance::store::Clock,
) -> relance::store::SharedStore {
    use relance::store::postgres::{PgSettings, PgStore};
    use relance::store::sqlite::{SqliteSettings, SqliteStore};
    let url = db.url();
    if url.starts_with("postgres") {
        Arc::new(PgStore::open(&url, live, clock, PgSettings::default()).await.unwrap())
    } else {
        let path = db.sqlite_path().unwrap();
        Arc::new(SqliteStore::open(&path, live, clock, SqliteSettings::default()).unwrap())
    }
}

/// The columns a stored event is read from, in the order [`stored_event`] takes them.
pub const EVENT_COLUMNS: &str = "event, source, name, trigger, occurred_at";

/// An event as a row stores it, read the way the stores read it (its JSON leaves out
/// what the columns say, and a website event's fields its attributes give).
pub fn stored_event(columns: &[String]) -> relance_core::Event {
    let trigger = (!columns[3].is_empty()).then_some(columns[3].as_str());
    let occurred_at = Utc.timestamp_millis_opt(columns[4].parse().unwrap()).unwrap();
    let row =
        relance::store::stored_event::EventColumns { source: &columns[1], name: &columns[2], trigger, occurred_at };
    relance::store::stored_event::from_stored(&columns[0], row).unwrap()
}
