//! Backtest against the stored history: the candidate rules and the live ones, from the
//! same starting contacts, over the same events; no side effects.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use relance_core::backtest::{Backtest, BacktestReport, baseline};
use relance_core::{Contact, Engine, RuleSet};

use crate::store::{ContactFilter, Store, StoreError};

/// Pages of events read from the store at a time.
const PAGE: usize = 20_000;

/// How a backtest replays and what it reports besides the rules' differences.
pub struct Replay<'a> {
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub max_examples: usize,
    pub now: DateTime<Utc>,
    pub pressure: &'a relance_core::pressure::Pressure,
    /// The `[brevo.sync]` mapping (empty: not reported).
    pub sync: std::sync::Arc<relance_core::sync_fields::SyncFields>,
}

pub async fn against_history<S: Store + ?Sized>(
    store: &S,
    live: &Engine,
    candidate: RuleSet,
    replay: Replay<'_>,
) -> Result<BacktestReport, StoreError> {
    let Replay { since, max_examples, now, pressure, sync } = replay;
    // Starting states: every contact's CRM baseline (see `baseline`).
    let mut start: HashMap<i64, Contact> = HashMap::new();
    let mut after = 0;
    loop {
        let page =
            store.list_contacts(ContactFilter { after_id: after, limit: 5_000, ..ContactFilter::default() }).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for c in page {
            start.insert(c.id, baseline(&c.contact, now));
        }
    }
    let candidate = Engine::new(candidate);
    let mut bt = Backtest::new(live, &candidate, start).with_pressure(pressure.clone()).with_sync(sync);
    let mut after_seq = 0;
    loop {
        let page = store.replay_events(since, after_seq, PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after_seq = *last;
        let events: Vec<_> = page.into_iter().map(|(_, e)| e).collect();
        bt.feed(&events);
    }
    Ok(bt.finish(max_examples))
}
