//! The rule set in force, swappable at run time: a new version saved through the API (on
//! any instance) is picked up by every instance within seconds, without a restart.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use relance_core::{Engine, RuleSet};
use sha2::{Digest, Sha256};

pub struct LiveRules {
    engine: RwLock<Arc<Engine>>,
    version: AtomicI64,
    hash: RwLock<String>,
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
            engine: RwLock::new(Arc::new(Engine::new(rules))),
            version: AtomicI64::new(0),
            hash: RwLock::new(hash),
        })
    }

    pub fn engine(&self) -> Arc<Engine> {
        match self.engine.read() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn hash(&self) -> String {
        self.hash.read().map(|h| h.clone()).unwrap_or_default()
    }

    pub fn swap(&self, rules: RuleSet, version: i64) {
        let hash = hash_rules(&rules);
        if let Ok(mut e) = self.engine.write() {
            *e = Arc::new(Engine::new(rules));
        }
        if let Ok(mut h) = self.hash.write() {
            *h = hash;
        }
        self.version.store(version, Ordering::Release);
    }
}
