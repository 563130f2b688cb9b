//! Putting a stored rule-set version back in force, from the API, the dashboard or the CLI.

use relance_core::{RuleFormat, RuleSet};

use crate::live_rules::LiveRules;
use crate::store::{RuleSetRow, Store, StoreError};

/// Puts a stored version back in force here (other instances follow within seconds),
/// recording who asked (`api`, `dashboard`, `cli`).
pub async fn activate_version(
    store: &dyn Store,
    live: &LiveRules,
    version: i64,
    via: &str,
) -> Result<RuleSetRow, StoreError> {
    let row = store.activate_rule_set(version, via.to_owned()).await?;
    let rules = RuleSet::parse(&row.body, RuleFormat::Json).map_err(|errors| {
        StoreError::Unavailable(anyhow::anyhow!("stored version {version} is invalid: {}", errors[0]))
    })?;
    live.swap(rules, row.version, row.activated_seq);
    tracing::info!(version, via, "rule set rolled back");
    Ok(row)
}

/// What runs of a removed rule record when an operator cancels them.
pub const RULE_REMOVED: &str = "rule removed";

/// Rules of `before` that `after` removes or disables.
pub fn removed_rules(before: &RuleSet, after: &RuleSet) -> Vec<String> {
    before
        .rules()
        .iter()
        .filter(|old| after.rules().iter().find(|r| r.rule_id == old.rule_id).is_none_or(|r| !r.enabled))
        .map(|r| r.rule_id.to_string())
        .collect()
}
