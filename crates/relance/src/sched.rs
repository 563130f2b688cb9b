//! The scheduling policy of the Tokio threads and the writer when the store is SQLite
//! (Linux).
//!
//! On SQLite one writer thread commits every batch while the Tokio threads read the
//! requests it answers. Where they share a core, every request arriving woke a Tokio
//! thread that preempted the writer in the middle of a batch: under `serve` on one core,
//! in 5 s, 20,757 involuntary switches of the writer and 34,547 parkings of the Tokio
//! thread, with a tenth of the core in the kernel's switch path. A thread under
//! `SCHED_BATCH` does not preempt on wakeup: the writer finishes its batch, and the Tokio
//! thread then takes the requests that came meanwhile together. Measured on one core,
//! alternated rounds: 12.2k → 13.8k req/s (medians), p99 lower. On PostgreSQL the other
//! side is PostgreSQL's own processes, and the same policy measured 0.97× (seven
//! alternated rounds), so it is left out there.
//!
//! `SCHED_BATCH` keeps the thread's nice value and its fair share of the CPU, and needs
//! no privilege. Each thread sets its own policy, the first time it wakes after it is
//! asked to: the runtime's threads exist before the store is chosen.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static WANTED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static APPLIED: Cell<bool> = const { Cell::new(false) };
}

/// From now on, each Tokio thread moves itself to `SCHED_BATCH` as it next wakes or starts.
pub fn yield_to_the_writer() {
    WANTED.store(true, Ordering::Relaxed);
}

/// Moves the calling thread to `SCHED_BATCH`: the SQLite writer, so that it does not
/// preempt the Tokio thread either when a batch arrives. With both threads under the
/// policy, the Tokio thread reads every request that has come before the writer takes
/// the core, and the writer commits them in one batch. Measured on one core against the
/// Tokio threads alone under it: `chrt -b` on a running writer, seven alternated rounds,
/// medians 14,961 → 16,398 req/s; the build, nine rounds, paired ratios median 1.07.
pub fn batch_this_thread(name: &str) {
    if let Err(e) = batch_policy() {
        tracing::warn!(error = %e, thread = name, "could not set SCHED_BATCH; the thread keeps the default policy");
    }
}

/// The runtime's `on_thread_start` and `on_thread_unpark` hook (workers wake, blocking
/// threads start): one relaxed load per call, the policy set once per thread.
pub fn on_runtime_thread() {
    if !WANTED.load(Ordering::Relaxed) || APPLIED.get() {
        return;
    }
    APPLIED.set(true);
    batch_this_thread("tokio-rt-worker");
}

#[cfg(target_os = "linux")]
fn batch_policy() -> Result<(), String> {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let stat = std::fs::read_to_string("/proc/thread-self/stat").map_err(|e| format!("/proc/thread-self/stat: {e}"))?;
    let nice = nice_of(&stat).ok_or("no nice value in /proc/thread-self/stat")?;
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    // The crate sets a normal policy's nice value too, from its own 0–99 scale: the value
    // on that scale that gives the thread's own nice value keeps it unchanged.
    let same_nice = (0..=99u8)
        .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|p| p.to_posix(policy).is_ok_and(|n| n == nice))
        .ok_or_else(|| format!("nice value {nice} cannot be kept"))?;
    set_thread_priority_and_policy(thread_native_id(), same_nice, policy).map_err(|e| format!("{e:?}"))
}

#[cfg(not(target_os = "linux"))]
fn batch_policy() -> Result<(), String> {
    Ok(())
}

/// Field 19 of `/proc/<pid>/task/<tid>/stat`, counted after the command name's closing
/// parenthesis (the name may hold spaces and parentheses).
fn nice_of(stat: &str) -> Option<i32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
}

/// The scheduling policy in a `stat` line (field 41): 0 normal, 3 batch.
pub fn policy_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?.1.split_whitespace().nth(38)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real line, with a command name that holds a space and a parenthesis.
    const STAT: &str = "4242 (tokio-rt (w) x) S 4240 4240 1 0 -1 4194368 1105 0 0 0 71 23 0 0 20 -5 3 0 \
                        2265 1265115136 9795 18446744073709551615 1 1 0 0 0 0 0 4096 17642 0 0 0 -1 0 0 3 0 0 0 0 0 \
                        0 0 0 0 0 0 0";

    #[test]
    fn the_nice_value_and_policy_are_read_after_the_command_name() {
        assert_eq!(nice_of(STAT), Some(-5));
        assert_eq!(policy_of(STAT), Some(3));
        assert_eq!(nice_of("garbage"), None);
    }

    #[test]
    fn a_thread_asked_to_yield_moves_itself_to_batch_once() {
        std::thread::spawn(|| {
            let policy = || policy_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
            let nice = || nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
            let before = nice();
            assert_eq!(policy(), Some(0));
            yield_to_the_writer();
            on_runtime_thread();
            assert_eq!(policy(), Some(3));
            assert_eq!(nice(), before, "the nice value is kept");
        })
        .join()
        .unwrap();
    }
}
