//! Arbitrary bytes as a CRM CSV import: every row is either accepted with a key or
//! rejected with a line number and a reason; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (rows, rejected) = relance::import::parse(data);
    for r in &rejected {
        assert!(r.line >= 1 && !r.reason.is_empty());
    }
    let mut lines: Vec<usize> = rows.iter().map(|r| r.line).chain(rejected.iter().map(|r| r.line)).collect();
    let total = lines.len();
    lines.sort_unstable();
    lines.dedup();
    assert!(lines.len() == total || rejected.iter().any(|r| r.line == 1), "one outcome per line");
});
