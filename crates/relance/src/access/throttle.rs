//! Sign-in throttling: after a few failures in a row, each further failure locks the
//! name (or the address) for longer, up to an hour. The same policy serves the per-user
//! lock (stored: it holds on every instance) and the per-address one (in memory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// Failures allowed before the first lock.
pub const FREE_FAILURES: i64 = 5;
const LONGEST_LOCK_SECS: i64 = 3600;

/// How long `failures` consecutive failures lock for: none up to [`FREE_FAILURES`], then
/// 30 s, 1 min, 2 min… doubling, at most an hour.
pub fn lock_for(failures: i64) -> Option<Duration> {
    let over = failures - FREE_FAILURES;
    if over < 0 {
        return None;
    }
    let secs = 30i64.saturating_mul(1i64 << over.min(20)).min(LONGEST_LOCK_SECS);
    Some(Duration::seconds(secs))
}

/// Failed sign-ins per client address on this instance.
#[derive(Default)]
pub struct AddressThrottle {
    inner: Mutex<HashMap<IpAddr, Failures>>,
}

/// Failures in a row from one address, and the lock they earned.
type Failures = (i64, Option<DateTime<Utc>>);

/// Addresses tracked at most (a flood from many addresses cannot grow memory).
const MAX_ADDRESSES: usize = 10_000;

impl AddressThrottle {
    /// Until when this address may not try, if it is locked.
    pub fn locked_until(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let map = self.inner.lock().ok()?;
        map.get(&ip).and_then(|(_, until)| *until).filter(|until| *until > now)
    }

    /// Counts a failure; returns the lock it earned, if any.
    pub fn failed(&self, ip: IpAddr, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut map = self.inner.lock().ok()?;
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&ip) {
            // Forget addresses no longer locked; if all are, forget the oldest locks.
            map.retain(|_, (_, until)| until.is_some_and(|u| u > now));
            if map.len() >= MAX_ADDRESSES {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, None));
        entry.0 += 1;
        entry.1 = lock_for(entry.0).map(|d| now + d);
        entry.1
    }

    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_then_lock_capped_at_an_hour() {
        assert_eq!(lock_for(4), None);
        assert_eq!(lock_for(5), Some(Duration::seconds(30)));
        assert_eq!(lock_for(6), Some(Duration::seconds(60)));
        assert_eq!(lock_for(12), Some(Duration::seconds(3600)));
        assert_eq!(lock_for(10_000), Some(Duration::seconds(3600)));
    }

    #[test]
    fn addresses_lock_and_unlock() {
        let t = AddressThrottle::default();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for _ in 0..4 {
            assert_eq!(t.failed(ip, now), None);
        }
        let until = t.failed(ip, now).unwrap();
        assert_eq!(t.locked_until(ip, now), Some(until));
        assert_eq!(t.locked_until(ip, until), None, "the lock ends");
        t.succeeded(ip);
        assert_eq!(t.locked_until(ip, now), None);
    }
}
