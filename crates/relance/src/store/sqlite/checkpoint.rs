//! WAL checkpoints beside the writer instead of inside its commits.
//!
//! SQLite's automatic checkpoint runs in the commit that takes the WAL past 1,000 pages:
//! that commit copies the pages into the database file and syncs it before the writer
//! can answer anyone. Measured under `serve`, one batch in thirty took 2.5–3.5 ms longer,
//! and those batches set the p99. Here the writer only counts the WAL's frames (SQLite
//! reports them after each commit) and wakes a thread of its own, which runs PASSIVE
//! checkpoints on its own connection: WAL lets a checkpoint copy pages while the writer
//! appends more.
//!
//! A checkpoint that runs while commits land cannot start the WAL over: the frames
//! committed meanwhile are not yet copied, and SQLite rewinds the WAL only when a write
//! begins with every frame copied. Under sustained load the file would grow without end,
//! so past a limit ([`Thresholds::wal_limit`]) the writer checkpoints itself between two
//! batches. By then the thread has copied nearly everything, so that checkpoint is short,
//! and the next write starts the WAL over. SQLite refuses a second checkpoint while one
//! runs, so the writer first waits for the thread's copy to end (they share a lock): a
//! WAL past the limit means the thread is falling behind, and the writer's wait is the
//! back-pressure that bounds the file (without it, a starved thread held the writer off
//! until the WAL reached 29,899 frames in a CI run). Either way a checkpoint is SQLite's
//! own, crash-safe operation; the writer's durability (WAL, `synchronous=FULL`) does not
//! depend on it.
//!
//! The two thresholds were measured under `serve` on one core (bench/README.md, twelfth
//! pass). Each checkpoint of the writer's own holds every request of the next batch for
//! 3–10 ms (it syncs the database file); at a limit of 8,000 frames it came every 0.4 s
//! and was 38 of the 90 batches over 4 ms. A batch that commits while the thread copies
//! takes about twice as long, because the copy (a read and a write per page) competes
//! for the same core; so the thread copies less at a time: 500 frames per wake-up
//! instead of 1,000 shortened each copy by a fifth and the batches it overlaps; 250 cost
//! throughput, 3,000 doubled the p99. A copier under `SCHED_IDLE` would not compete, but
//! on a saturated core it falls behind (measured; not kept).

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Instant;

use anyhow::Context;
use rusqlite::Connection;
use rusqlite::hooks::Wal;

/// When the WAL is copied back into the database file, in WAL frames (one page each).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Thresholds {
    /// Frames the WAL takes before the thread is woken to copy them.
    pub every: usize,
    /// Frames past which the writer checkpoints itself, which starts the WAL over.
    pub wal_limit: usize,
}

impl Thresholds {
    /// Copies of 2 MiB, and a WAL of at most 128 MiB of 4 KiB pages.
    pub const SERVE: Thresholds = Thresholds { every: 500, wal_limit: 32_000 };
}

thread_local! {
    /// The WAL's length in frames after the last commit on this thread's write
    /// connection. A thread-local because SQLite's WAL hook is a plain function; the
    /// writer owns its connection and commits on its own thread.
    static WAL_FRAMES: Cell<usize> = const { Cell::new(0) };
}

fn record_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(usize::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// The writer's side: told of each commit, decides who checkpoints.
pub(crate) struct Checkpoints {
    thresholds: Thresholds,
    wake: mpsc::SyncSender<()>,
    /// The WAL length at which the thread is next woken.
    wake_at: usize,
    /// The WAL length at which the writer next checkpoints itself.
    self_at: usize,
    /// The WAL length after the previous commit: a shorter one means it started over.
    last: usize,
    /// Held by whoever checkpoints, the thread or the writer.
    copying: Arc<Mutex<()>>,
}

impl Checkpoints {
    /// Takes over checkpoints of `writer`'s database: installing the WAL hook turns
    /// SQLite's automatic checkpoint off on that connection. The thread stops when the
    /// returned value (the writer) is dropped.
    pub fn start(path: &Path, writer: &Connection, thresholds: Thresholds) -> anyhow::Result<Checkpoints> {
        let conn = Connection::open(path).with_context(|| format!("opening {} to checkpoint it", path.display()))?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let copying = Arc::new(Mutex::new(()));
        let thread_copying = copying.clone();
        std::thread::Builder::new()
            .name("sqlite-ckpt".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    let _copying = thread_copying.lock().unwrap_or_else(PoisonError::into_inner);
                    let started = Instant::now();
                    if let Err(e) = checkpoint(&conn) {
                        tracing::warn!(error = %e, "WAL checkpoint failed; retried at the next wake-up");
                    }
                    tracing::debug!(ms = started.elapsed().as_secs_f64() * 1000.0, "background checkpoint");
                }
            })
            .context("starting the checkpoint thread")?;
        writer.wal_hook(Some(record_frames));
        Ok(Checkpoints { thresholds, wake, wake_at: thresholds.every, self_at: thresholds.wal_limit, last: 0, copying })
    }

    /// Called on the writer's thread after each commit.
    pub fn after_commit(&mut self, writer: &Connection) {
        let frames = WAL_FRAMES.with(Cell::get);
        let Thresholds { every, wal_limit } = self.thresholds;
        if frames < self.last {
            self.wake_at = every;
            self.self_at = wal_limit;
        }
        self.last = frames;
        if frames >= self.self_at {
            // After the thread's copy, if one is running. Another process's checkpoint
            // (a backup) still makes this one report busy: tried again a few batches on.
            let started = Instant::now();
            let _copying = self.copying.lock().unwrap_or_else(PoisonError::into_inner);
            let waited = started.elapsed();
            if let Err(e) = checkpoint(writer) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
            tracing::debug!(
                frames,
                waited_ms = waited.as_secs_f64() * 1000.0,
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "writer checkpoint"
            );
            self.self_at = frames + every / 4;
        } else if frames >= self.wake_at {
            // Full means a wake-up is already pending.
            let _ = self.wake.try_send(());
            self.wake_at = frames + every;
        }
    }

    /// At a clean stop, after the last batch: copies the whole WAL back into the database
    /// file and truncates the log to nothing, so that the file alone holds everything and
    /// the disk gets the log's space back (SQLite would do so itself only when the last
    /// connection closes, and the readers' pool outlives the writer). A reader still in a
    /// transaction makes it wait (the busy timeout) and then give up, which is safe: the
    /// next start reads the log.
    pub fn finish(&self, writer: &Connection) {
        let _copying = self.copying.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match outcome {
            Ok((0, frames, _)) => tracing::debug!(frames, "WAL copied back and truncated"),
            Ok((_, frames, copied)) => tracing::warn!(
                frames,
                copied,
                "the WAL could not be truncated at stop (a reader was still open); the next start carries on from it"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "the final WAL checkpoint failed; the next start carries on from the WAL")
            }
        }
    }
}

/// A PASSIVE checkpoint: copies what no reader still needs and waits for no one (while
/// another checkpoint runs it reports busy and does nothing).
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Smaller than the server's, so that the tests write a few MiB, not hundreds.
    const SMALL: Thresholds = Thresholds { every: 250, wal_limit: 2000 };

    /// A WAL database in a fresh folder (kept alive by the returned guard) and its
    /// writer, whose checkpoints are taken over; each row is ~3 KB, about two frames.
    fn writer() -> (tempfile::TempDir, std::path::PathBuf, Connection, Checkpoints) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL").expect("wal");
        // The test is about who checkpoints, not about durability.
        conn.pragma_update(None, "synchronous", "OFF").expect("sync");
        conn.execute("CREATE TABLE t (b BLOB)", []).expect("table");
        let checkpoints = Checkpoints::start(&path, &conn, SMALL).expect("start");
        (dir, path, conn, checkpoints)
    }

    fn write_row(conn: &Connection, checkpoints: &mut Checkpoints) -> usize {
        conn.execute("INSERT INTO t VALUES (zeroblob(3000))", []).expect("insert");
        checkpoints.after_commit(conn);
        WAL_FRAMES.with(Cell::get)
    }

    #[test]
    fn the_thread_copies_the_wal_into_the_database_file() {
        let (_dir, path, conn, mut checkpoints) = writer();
        while write_row(&conn, &mut checkpoints) < SMALL.every + 250 {}
        // The writer no longer checkpoints (the hook replaced SQLite's own), so only the
        // thread can have grown the database file past its first pages.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).expect("size").len() < 500_000 {
            assert!(Instant::now() < deadline, "no checkpoint within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_clean_stop_leaves_everything_in_the_database_file_and_an_empty_wal() {
        let (_dir, path, conn, mut checkpoints) = writer();
        let mut written = 0;
        while write_row(&conn, &mut checkpoints) < SMALL.every / 2 {
            written += 1;
        }
        written += 1;
        // Fewer frames than a wake-up: nothing copied yet, the rows live in the WAL only.
        let wal = path.with_extension("db-wal");
        assert!(std::fs::metadata(&wal).expect("wal").len() > 0);
        checkpoints.finish(&conn);
        assert_eq!(std::fs::metadata(&wal).expect("wal").len(), 0, "the WAL is truncated");
        let in_file = Connection::open(&path).expect("reopen");
        let rows: i64 = in_file.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(rows, written);
        // With an empty WAL, the rows can only be in the file: 3 KB each.
        assert!(std::fs::metadata(&path).expect("db").len() >= 3000 * written as u64);
    }

    #[test]
    fn sustained_writes_keep_the_wal_bounded_and_start_it_over() {
        let (_dir, _, conn, mut checkpoints) = writer();
        let (mut longest, mut last, mut restarts) = (0, 0, 0);
        // Four times the limit in frames, with no pause for the thread to catch up.
        for _ in 0..2 * SMALL.wal_limit {
            let frames = write_row(&conn, &mut checkpoints);
            restarts += usize::from(frames < last);
            (longest, last) = (longest.max(frames), frames);
        }
        assert!(restarts >= 2, "the WAL started over {restarts} times");
        assert!(longest < SMALL.wal_limit + SMALL.every, "the WAL reached {longest} frames");
        let rows: i64 = conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(rows, 2 * SMALL.wal_limit as i64);
    }
}
