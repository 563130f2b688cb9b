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
    audit: crate::store::audit::Audit,
) -> Result<RuleSetRow, StoreError> {
    let from = live.current();
    let audit = audit.summary(format!("version {version} back in force (was {})", from.version));
    let row = store.activate_rule_set(version, via.to_owned(), audit).await?;
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

/// What a new rule set changes, rule by rule, for the audit log: `{from_version, added,
/// removed, changed}` (rule ids), and whether the declared scores changed.
pub fn diff(before: &RuleSet, before_version: i64, after: &RuleSet) -> serde_json::Value {
    let old = before.specs();
    let new = after.specs();
    let find = |list: &[relance_core::rules::RuleSpec], id: &str| list.iter().find(|r| r.rule_id == id).cloned();
    let added: Vec<&str> =
        new.iter().filter(|r| find(&old, &r.rule_id).is_none()).map(|r| r.rule_id.as_str()).collect();
    let removed: Vec<&str> =
        old.iter().filter(|r| find(&new, &r.rule_id).is_none()).map(|r| r.rule_id.as_str()).collect();
    let changed: Vec<&str> =
        new.iter().filter(|r| find(&old, &r.rule_id).is_some_and(|o| o != **r)).map(|r| r.rule_id.as_str()).collect();
    serde_json::json!({
        "from_version": before_version,
        "added": added,
        "removed": removed,
        "changed": changed,
        "scores_changed": before.scores() != after.scores(),
    })
}

/// A one-line summary of [`diff`].
pub fn diff_summary(diff: &serde_json::Value) -> String {
    let n = |k: &str| diff[k].as_array().map_or(0, Vec::len);
    format!(
        "from version {}: {} added, {} removed, {} changed",
        diff["from_version"],
        n("added"),
        n("removed"),
        n("changed")
    )
}
