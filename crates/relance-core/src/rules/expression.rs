//! Expression conditions, compiled once at load with `zen-expression`.

use std::fmt;

use zen_expression::Isolate;
use zen_expression::expression::Standard;
use zen_expression::vm::VM;

/// Longer expressions are refused at load: a rule is a business condition, not a program.
pub const MAX_EXPRESSION_LEN: usize = 2048;

/// A compiled boolean expression over `contact` and `event`.
#[derive(Clone)]
pub struct CompiledExpression {
    source: String,
    compiled: zen_expression::Expression<Standard>,
}

impl fmt::Debug for CompiledExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledExpression").field(&self.source).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpressionError(String);

const CRASHED: &str = "the expression engine crashed";

/// Values an interval may hold when a function walks it (`map([0..100], …)`).
pub const MAX_INTERVAL_VALUES: i64 = 1_000;
/// Intervals an expression may walk.
pub const MAX_WALKED_INTERVALS: usize = 2;

/// Intervals are the one way an expression can make a large amount of data:
/// `map([0..10000000], # + 1)` takes seconds and gigabytes, and it would run on every
/// event. Membership tests (`x in [1..1000000]`) cost nothing and stay unlimited; an
/// interval given to a function is limited to `MAX_INTERVAL_VALUES` values, at most
/// `MAX_WALKED_INTERVALS` of them (nesting multiplies). Bounds must be numbers written
/// in the rule, so that the cost is known at load.
fn check_intervals(source: &str) -> Result<(), ExpressionError> {
    let chars: Vec<char> = source.chars().collect();
    let mut walked = 0;
    for i in outside_strings(&chars) {
        // The first dot of `..` (a third dot belongs to the same operator).
        if chars[i] == '.' && chars.get(i + 1) == Some(&'.') && (i == 0 || chars[i - 1] != '.') {
            let (lo, opening) = number_before(&chars, i);
            let (hi, end) = number_after(&chars, i + 2);
            // Each bound is one number between the bracket and `..`: `[0..10-1e9]`
            // must not pass for `[0..10]`.
            let closed = chars[end..].iter().find(|c| !c.is_whitespace()).is_some_and(|c| matches!(c, ']' | ')' | '['));
            let (Some(lo), Some(hi), Some(_), true) = (lo, hi, opening, closed) else {
                return Err(ExpressionError(
                    "interval bounds must be numbers written in the rule (e.g. [1..10])".into(),
                ));
            };
            let membership = opening.is_some_and(|o| word_before(&chars, o).is_some_and(|w| w == "in"));
            if !membership {
                walked += 1;
                if (hi - lo).abs() > MAX_INTERVAL_VALUES as f64 {
                    return Err(ExpressionError(format!(
                        "an interval walked by a function may hold at most {MAX_INTERVAL_VALUES} values"
                    )));
                }
                if walked > MAX_WALKED_INTERVALS {
                    return Err(ExpressionError(format!(
                        "at most {MAX_WALKED_INTERVALS} intervals may be walked by functions"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Positions of the characters outside string literals (`"…"`, `'…'`, `` `…` ``, with
/// backslash escapes), which is where operators and brackets live.
fn outside_strings(chars: &[char]) -> impl Iterator<Item = usize> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    chars.iter().enumerate().filter_map(move |(i, &c)| match quote {
        Some(_) if escaped => {
            escaped = false;
            None
        }
        Some(_) if c == '\\' => {
            escaped = true;
            None
        }
        Some(q) => {
            if c == q {
                quote = None;
            }
            None
        }
        None if matches!(c, '"' | '\'' | '`') => {
            quote = Some(c);
            None
        }
        None => Some(i),
    })
}

/// Nesting deeper than this is refused.
pub const MAX_NESTING: usize = 32;

/// zen-expression's parser takes time and memory exponential in the number of stray
/// closing brackets (22 of them: 16 s and 7.8 GB, found by the expression fuzz target),
/// so brackets must balance before the expression reaches it. Intervals may mix
/// brackets (`[1..5)`, `(1..5]`) or open with `]` and close with `[` (`]1..5[`).
fn check_brackets(source: &str) -> Result<(), ExpressionError> {
    let unbalanced = || ExpressionError("brackets do not balance".into());
    let chars: Vec<char> = source.chars().collect();
    let mut stack: Vec<char> = Vec::new();
    for i in outside_strings(&chars) {
        match chars[i] {
            c @ ('(' | '{') => stack.push(c),
            '[' if stack.last() == Some(&']') => {
                stack.pop();
            }
            '[' => stack.push('['),
            ')' if matches!(stack.last(), Some('(') | Some('[')) => {
                stack.pop();
            }
            '}' if stack.last() == Some(&'{') => {
                stack.pop();
            }
            ']' if matches!(stack.last(), Some('[') | Some('(')) => {
                stack.pop();
            }
            ']' if chars[i + 1..]
                .iter()
                .find(|c| !c.is_whitespace())
                .is_some_and(|c| c.is_ascii_digit() || *c == '-') =>
            {
                stack.push(']')
            }
            ')' | '}' | ']' => return Err(unbalanced()),
            _ => {}
        }
        if stack.len() > MAX_NESTING {
            return Err(ExpressionError(format!("nested deeper than {MAX_NESTING} brackets")));
        }
    }
    if stack.is_empty() { Ok(()) } else { Err(unbalanced()) }
}

/// The number ending just before `end` (spaces skipped), and the position of the bracket
/// that opens the interval.
fn number_before(chars: &[char], end: usize) -> (Option<f64>, Option<usize>) {
    let mut j = end;
    while j > 0 && chars[j - 1].is_whitespace() {
        j -= 1;
    }
    let stop = j;
    while j > 0 && (chars[j - 1].is_ascii_digit() || matches!(chars[j - 1], '.' | '-' | '_')) {
        j -= 1;
    }
    let number = chars[j..stop].iter().filter(|c| **c != '_').collect::<String>().parse().ok();
    while j > 0 && chars[j - 1].is_whitespace() {
        j -= 1;
    }
    let opening = (j > 0 && matches!(chars[j - 1], '[' | '(' | ']')).then(|| j - 1);
    (number, opening)
}

fn number_after(chars: &[char], start: usize) -> (Option<f64>, usize) {
    let mut j = start;
    while j < chars.len() && chars[j].is_whitespace() {
        j += 1;
    }
    let begin = j;
    if j < chars.len() && chars[j] == '-' {
        j += 1;
    }
    while j < chars.len()
        && (chars[j].is_ascii_digit() || chars[j] == '_' || (chars[j] == '.' && chars.get(j + 1) != Some(&'.')))
    {
        j += 1;
    }
    (chars[begin..j].iter().filter(|c| **c != '_').collect::<String>().parse().ok(), j)
}

/// The word ending before position `end` (spaces skipped).
fn word_before(chars: &[char], end: usize) -> Option<String> {
    let mut j = end;
    while j > 0 && chars[j - 1].is_whitespace() {
        j -= 1;
    }
    let stop = j;
    while j > 0 && chars[j - 1].is_ascii_alphanumeric() {
        j -= 1;
    }
    (j < stop).then(|| chars[j..stop].iter().collect())
}

impl CompiledExpression {
    pub fn compile(source: &str) -> Result<CompiledExpression, ExpressionError> {
        if source.trim().is_empty() {
            return Err(ExpressionError("empty expression".into()));
        }
        if source.len() > MAX_EXPRESSION_LEN {
            return Err(ExpressionError(format!("longer than {MAX_EXPRESSION_LEN} characters")));
        }
        check_brackets(source)?;
        check_intervals(source)?;
        let compiled =
            Isolate::new().compile_standard(source).map_err(|e| ExpressionError(format!("does not parse: {e}")))?;
        let expression = CompiledExpression { source: source.to_owned(), compiled };
        // A trial run on empty data finds expressions the engine cannot run at all (a
        // missing field is fine: that is an error, not a crash).
        let sample: zen_expression::Variable = serde_json::json!({"contact": {}, "event": {}}).into();
        if let Err(e) = expression.matches(&sample, &mut VM::new())
            && e.contains(CRASHED)
        {
            return Err(ExpressionError("the expression engine cannot evaluate this expression".into()));
        }
        Ok(expression)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True only when the expression evaluates to boolean `true`. Anything else (another
    /// type, a runtime error such as a missing field) is false, with the reason.
    ///
    /// zen-expression can panic on some inputs (an empty template literal underflows in
    /// 2.1); a panic here would take down the writer, so it is caught, reported as a
    /// failure, and the VM, whose state it may have left behind, is replaced.
    pub fn matches(&self, context: &zen_expression::Variable, vm: &mut VM) -> Result<bool, String> {
        let run =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.compiled.evaluate_with(context.clone(), vm)));
        match run {
            Ok(Ok(v)) => match v.as_bool() {
                Some(b) => Ok(b),
                None => Err(format!("expression {:?} did not give true or false", self.source)),
            },
            Ok(Err(e)) => Err(format!("expression {:?} failed: {e}", self.source)),
            Err(_) => {
                *vm = VM::new();
                Err(format!("expression {:?}: {CRASHED}", self.source))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_that_would_build_large_data_are_refused_at_load() {
        for ok in [
            "event.amount in [50..100]",
            "contact.score not in [0..1000000]",
            "len(map([0..100], # * 2)) > 0",
            "some(map([1..10], #), # > 5) and some(map([1..10], #), # < 3)",
            "event.page == \"a..b\"",
            "1.5 in [1.0..2.0]",
            "-3 in [-5..-1]",
            "5 in ]1..10[ and 5 in [1..10]",
            "(contact.score > 1) and (contact.segment == ')')",
        ] {
            assert!(CompiledExpression::compile(ok).is_ok(), "{ok}: {:?}", CompiledExpression::compile(ok).err());
        }
        for (bomb, why) in [
            ("len(map([0..10000000], # + 1)) > 0", "at most 1000 values"),
            ("len(map([0..contact.purchases], #)) > 0", "numbers written in the rule"),
            ("contact.score in [0..contact.purchases]", "numbers written in the rule"),
            // Found by the fuzz target: an arithmetic bound allocated past the memory limit.
            ("len(map([0..10--2-333+33333333333333.3--3+333333--0], # * 2)) > 0", "numbers written in the rule"),
            ("len(map([1+2..5], #)) > 0", "numbers written in the rule"),
            ("len(map([0..900], map([0..900], map([0..900], #)))) > 0", "at most 2 intervals"),
            // Found by the fuzz target: 16 s and 7.8 GB in zen's parser.
            ("len(map(map(]]]]](]]]]]]]]]]]]]}]]]][0..10 ], # *$2)) >.91", "do not balance"),
            ("((((contact.score > 1", "do not balance"),
            // zen-expression 2.1 underflows on an empty template literal.
            ("``", "cannot evaluate"),
        ] {
            let err = CompiledExpression::compile(bomb).unwrap_err().to_string();
            assert!(err.contains(why), "{bomb}: {err}");
        }
    }
}
