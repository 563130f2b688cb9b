//! The rule set in force, swappable at run time: a new version saved through the API (on
//! any instance) is picked up by every instance within seconds, without a restart.

use std::sync::{Arc, RwLock};

use relance_core::{Engine, RuleSet};
use sha2::{Digest, Sha256};

/// One version of the rules, as a unit: whoever applies `engine` records `version`.
pub struct RulesInForce {
    pub engine: Engine,
    pub version: i64,
    pub hash: String,
    /// The activation this is (`RuleSetRow::activated_seq`); 0 before anything is stored.
    pub activation: i64,
}

pub struct LiveRules {
    current: RwLock<Arc<RulesInForce>>,
}

/// The hash of a rule set: SHA-256 of its seed-JSON export, so that the same rules in
/// TOML or JSON hash alike.
pub fn hash_rules(rules: &RuleSet) -> String {
    let digest = Sha256::digest(rules.to_seed_json().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl LiveRules {
    /// Rules not yet stored anywhere (version 0).
    pub fn new(rules: RuleSet) -> Arc<LiveRules> {
        let hash = hash_rules(&rules);
        Arc::new(LiveRules {
            current: RwLock::new(Arc::new(RulesInForce {
                engine: Engine::new(rules),
                version: 0,
                hash,
                activation: 0,
            })),
        })
    }

    /// The engine, version and hash in force, read together (a swap in between cannot
    /// pair one version's engine with another's number).
    pub fn current(&self) -> Arc<RulesInForce> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn version(&self) -> i64 {
        self.current().version
    }

    /// The activation in force.
    pub fn activation(&self) -> i64 {
        self.current().activation
    }

    /// Puts `rules` in force unless a newer activation already is: activations only move
    /// forward, so a reload that read the database before a `PUT /api/rules` cannot put
    /// the older rules back after it. `true` when swapped.
    pub fn swap(&self, rules: RuleSet, version: i64, activation: i64) -> bool {
        let next = Arc::new(RulesInForce { hash: hash_rules(&rules), engine: Engine::new(rules), version, activation });
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if activation <= current.activation {
            return false;
        }
        *current = next;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_only_move_forward() {
        let live = LiveRules::new(RuleSet::defaults());
        assert!(live.swap(RuleSet::defaults(), 1, 1));
        assert!(live.swap(RuleSet::defaults(), 2, 3));
        // A stale read of version 1's activation: refused.
        assert!(!live.swap(RuleSet::defaults(), 1, 1));
        assert_eq!((live.version(), live.activation()), (2, 3));
        // A rollback to version 1 is a new activation: taken.
        assert!(live.swap(RuleSet::defaults(), 1, 4));
        assert_eq!(live.version(), 1);
    }
}
