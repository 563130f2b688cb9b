//! Backtest against the stored history: the candidate rules and the live ones, from the
//! same starting contacts, over the same events; no side effects.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use relance_core::backtest::{Backtest, BacktestReport, baseline};
use relance_core::{Contact, Engine, RuleSet};

use crate::store::{ContactFilter, Store, StoreError};

/// Pages of events read from the store at a time.
const PAGE: usize = 20_000;

pub async fn against_history<S: Store + ?Sized>(
    store: &S,
    live: &Engine,
    candidate: RuleSet,
    since: Option<DateTime<Utc>>,
    max_examples: usize,
    now: DateTime<Utc>,
    pressure: &relance_core::pressure::Pressure,
    sync: std::sync::Arc<relance_core::sync_fields::SyncFields>,
) -> Result<BacktestReport, StoreError> {
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
