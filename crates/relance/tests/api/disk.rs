//! Disk full and a disk gone read-only (SQLite): webhooks answer 429 with `Retry-After`
//! and the server keeps running; it recovers by itself when space returns, and after a
//! restart once the disk is repaired. Nothing answered 200 is lost.
//!
//! The database lives on a filesystem mounted for the test (a small tmpfs; an ext4 image
//! on a loop device that ext4's own `trigger_fs_error` turns read-only, as a failing disk
//! does), so this needs root. Ignored by default; `scripts/test.sh` runs it.

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
    let port = crate::common::free_port();
    let mut child = crate::common::start_process(&format!("sqlite://{}", db.display()), port, &[]);
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

/// An ext4 image on a loop device, mounted with `errors=remount-ro`; unmounted and
/// detached on drop.
struct Ext4 {
    dir: tempfile::TempDir,
    device: String,
}

impl Ext4 {
    fn mount() -> Ext4 {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image).unwrap().set_len(64 * 1024 * 1024).unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&image).output().expect("losetup runs");
        assert!(out.status.success(), "losetup failed: this test needs root and loop devices");
        let device = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let ext4 = Ext4 { dir, device };
        ext4.mount_rw();
        ext4
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn mount_rw(&self) {
        run("mount", &["-o", "errors=remount-ro", &self.device, self.mnt().to_str().unwrap()]);
    }

    /// What ext4 does on a disk error: the filesystem turns read-only at once, open files
    /// or not.
    fn fail(&self) {
        let name = self.device.trim_start_matches("/dev/");
        std::fs::write(format!("/sys/fs/ext4/{name}/trigger_fs_error"), "relance test").unwrap();
    }

    /// What an operator does: unmount, check, mount again.
    fn repair(&self) {
        run("umount", &[self.mnt().to_str().unwrap()]);
        let _ = Command::new("e2fsck").args(["-fy", &self.device]).status(); // exit 1: errors fixed
        self.mount_rw();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "mounts a loop device (root); run by scripts/test.sh"]
async fn a_disk_gone_read_only_answers_429_and_nothing_acknowledged_is_lost() {
    let disk = Ext4::mount();
    let db = disk.mnt().join("relance.db");
    let url = format!("sqlite://{}", db.display());
    let port = crate::common::free_port();
    let mut child = crate::common::start_process(&url, port, &[]);
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut acked = Vec::new();
    for n in 0..20 {
        let id = format!("before-{n}");
        assert_eq!(post_event(&client, port, &id, 100).await.status, 200);
        acked.push(id);
    }

    disk.fail();
    for n in 0..5 {
        let a = post_event(&client, port, &format!("ro-{n}"), 100).await;
        assert_eq!(a.status, 429, "a read-only disk refuses with 429");
        assert!(a.retry_after.is_some());
    }
    assert!(child.try_wait().unwrap().is_none(), "the server keeps running");
    let health = client.get(format!("http://127.0.0.1:{port}/webhook/health")).send().await.unwrap();
    assert!(matches!(health.status().as_u16(), 200 | 503));

    // Linux will not make an errored filesystem writable under open files: stop the
    // server (SIGTERM, a clean exit), repair the disk, start again.
    run("kill", &["-TERM", &child.id().to_string()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server stops on SIGTERM even with a read-only disk");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    disk.repair();
    let port = crate::common::free_port();
    let mut child = crate::common::start_process(&url, port, &[]);
    acked.push(until_accepted(&client, port, "after-repair", Duration::from_secs(15)).await);
    child.kill().unwrap();
    child.wait().unwrap();
    stored_once(&db, &acked);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let refused: i64 =
        conn.query_row("SELECT count(*) FROM events WHERE sender_event_id LIKE 'ro-%'", [], |r| r.get(0)).unwrap();
    assert_eq!(refused, 0, "nothing refused was stored");
}
