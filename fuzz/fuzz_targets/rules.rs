//! Arbitrary text as a rule file, in both formats; valid sets export and load back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relance_core::{RuleFormat, RuleSet};

fuzz_target!(
    // Expressions are trial-run at load, and zen-expression's own panics are caught there
    // (see `CompiledExpression::matches`); libfuzzer-sys's hook would abort on them first.
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [RuleFormat::Json, RuleFormat::Toml] {
        if let Ok(set) = RuleSet::parse(text, format) {
            let again = RuleSet::parse(&set.to_seed_json(), RuleFormat::Json).expect("exported rules load back");
            assert_eq!(again.specs(), set.specs());
        }
    }
});
