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
            current: RwLock::new(Arc::new(RulesInForce { engine: Engine::new(rules), version: 0, hash })),
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

    pub fn swap(&self, rules: RuleSet, version: i64) {
        let next = Arc::new(RulesInForce { hash: hash_rules(&rules), engine: Engine::new(rules), version });
        match self.current.write() {
            Ok(mut c) => *c = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}
