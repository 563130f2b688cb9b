//! Disk full (SQLite): webhooks answer 429 with `Retry-After`, the server keeps running,
//! and it recovers by itself when space returns.
//!
//! The database lives on a small tmpfs mounted for the test, which needs root (or
//! CAP_SYS_ADMIN). Ignored by default; `scripts/test.sh` runs it. A read-only remount
//! cannot be produced under a running server (Linux refuses it while the database is open
//! for writing); `docs/reliability.md` says what covers that case.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

/// A tmpfs of a given size, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], dir.path());
        Tmpfs { dir }
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], self.dir.path());
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

fn mount(args: &[&str], target: &Path) {
    let status = Command::new("mount").args(args).arg(target).status().expect("mount runs");
    assert!(status.success(), "mount {args:?} failed: this test needs root (or CAP_SYS_ADMIN)");
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
}

async fn post_event(client: &reqwest::Client, port: u16, id: &str, pad: usize) -> Answer {
    let body = json!({"client_code": format!("C{}", id.len() % 7), "action": "page_visit", "event_id": id,
                      "metadata": {"page": "x".repeat(pad)}});
    let r = client.post(format!("http://127.0.0.1:{port}/webhook/behavior")).json(&body).send().await.unwrap();
    Answer {
        status: r.status().as_u16(),
        retry_after: r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()),
    }
}

/// Posts new events until one is accepted again, or panics after `within`.
async fn until_accepted(client: &reqwest::Client, port: u16, tag: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    for n in 0.. {
        let id = format!("{tag}-{n}");
        let a = post_event(client, port, &id, 10).await;
        if a.status == 200 {
            return id;
        }
        assert_eq!(a.status, 429, "only 200 or 429 while recovering");
        assert!(Instant::now() < deadline, "not accepting events {within:?} after the disk came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!()
}

fn stored_once(db: &Path, ids: &[String]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    for id in ids {
        let n: i64 =
            conn.query_row("SELECT count(*) FROM events WHERE sender_event_id = ?1", [id], |r| r.get(0)).unwrap();
        assert_eq!(n, 1, "acknowledged event {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a tmpfs (root); run by scripts/test.sh"]
async fn disk_full_answers_429_and_recovers() {
    let fs = Tmpfs::mount("4m");
    let db = fs.path().join("relance.db");
    let port = common::free_port();
    let mut child = common::start_process(&format!("sqlite://{}", db.display()), port, &[]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Fill the disk with 16 KiB events until the database cannot grow.
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 0..2_000 {
        let id = format!("fill-{n}");
        let a = post_event(&client, port, &id, 16 * 1024).await;
        match a.status {
            200 => acked.push(id),
            429 => {
                refused = Some(a);
                break;
            }
            other => panic!("disk full must be 429, got {other}"),
        }
    }
    let refused = refused.expect("a 4 MiB disk fills up");
    assert!(refused.retry_after.is_some(), "429 carries Retry-After");
    assert!(acked.len() > 10, "{} events before the disk was full", acked.len());

    // Still running and answering.
    assert!(child.try_wait().unwrap().is_none(), "the server keeps running");
    let health = client.get(format!("http://127.0.0.1:{port}/webhook/health")).send().await.unwrap();
    assert!(matches!(health.status().as_u16(), 200 | 503));

    // Space returns: accepted again without a restart.
    fs.remount("size=64m");
    acked.push(until_accepted(&client, port, "after-full", Duration::from_secs(15)).await);
    child.kill().unwrap();
    child.wait().unwrap();
    stored_once(&db, &acked);
    eprintln!("disk full: {} events stored before 429, accepted again after space returned", acked.len() - 1);
}
