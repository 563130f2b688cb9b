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

/// Values an expression may walk through intervals given to functions (`map([0..100],
/// …)`): one interval's size, or the product of two (they may be nested, and a nested
/// walk runs its inner expression for every pair: `map([0..115], len(map([0..115],
/// # * 9^8.7)))` took 0.5 s per evaluation — found by the expression fuzz target).
pub const MAX_INTERVAL_VALUES: i64 = 100;
/// Intervals an expression may walk.
pub const MAX_WALKED_INTERVALS: usize = 2;
/// An expression that walks an interval runs its body once per value: it stays short.
pub const MAX_WALKING_EXPRESSION_LEN: usize = 512;

/// Intervals are the one way an expression can make a large amount of data:
/// `map([0..10000000], # + 1)` takes seconds and gigabytes, and it would run on every
/// event. Membership tests (`x in [1..1000000]`) cost nothing and stay unlimited; an
/// interval given to a function is limited to `MAX_INTERVAL_VALUES` values, at most
/// `MAX_WALKED_INTERVALS` of them (nesting multiplies). Bounds must be numbers written
/// in the rule, so that the cost is known at load.
fn check_intervals(source: &str) -> Result<(), ExpressionError> {
    let chars: Vec<char> = source.chars().collect();
    let mut walked = 0;
    let mut walked_values = 1.0_f64;
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
                walked_values *= (hi - lo).abs().max(1.0);
                if walked_values > MAX_INTERVAL_VALUES as f64 {
                    return Err(ExpressionError(format!(
                        "intervals walked by functions may hold at most {MAX_INTERVAL_VALUES} values (two: their product)"
                    )));
                }
                if source.len() > MAX_WALKING_EXPRESSION_LEN {
                    return Err(ExpressionError(format!(
                        "an expression that walks an interval may be at most {MAX_WALKING_EXPRESSION_LEN} characters long"
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

/// Positions of the characters outside string literals (`"…"`, `'…'`, with backslash
/// escapes), which is where operators and brackets live. A backtick is not a quote here:
/// it opens a template string, which `check_brackets` refuses on sight.
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
        None if matches!(c, '"' | '\'') => {
            quote = Some(c);
            None
        }
        None => Some(i),
    })
}

/// Nesting deeper than this is refused.
pub const MAX_NESTING: usize = 16;

/// Brackets of any kind an expression may hold when it has an interval. With a `..`
/// anywhere in the text, zen's parser tries every bracket as the start of an interval
/// first, parsing what follows, and parses it again as an array or a group when that
/// fails: the work doubles or more with each bracket (`[] + [[[](map([]))] + [[]]] +
/// ([2..1])`: 0.4 s and 450 MB; `e=()()(e=()()e=(map((([]()()e=(e=())))()))([0..0]))`:
/// 1.3 GB — both found by the expression fuzz target). Without an interval it does not
/// backtrack. Six brackets keep the worst case to milliseconds and are plenty for a
/// business condition (`len(map([0..100], # * 2)) > 0` has three).
pub const MAX_BRACKETS_WITH_INTERVAL: usize = 6;

/// zen-expression's parser takes time and memory exponential in stray closing brackets
/// (22 of them: 16 s and 7.8 GB; `some(x][)` twice: 15 s and 3.7 GB — found by the
/// expression fuzz target), so brackets must balance before the expression reaches it.
/// An interval is read as one unit, whatever brackets it mixes (`[1..5)`, `(1..5]`,
/// `]1..5[`); every other bracket closes exactly the one it opened. Template strings
/// (`` `…${x}…` ``) are refused: their `${…}` parts are expressions this scan would not
/// see, and a condition has no use for them.
fn check_brackets(source: &str) -> Result<(), ExpressionError> {
    let unbalanced = || ExpressionError("brackets do not balance".into());
    let chars: Vec<char> = source.chars().collect();
    // What zen's lexer sees as its range operator.
    let has_range = outside_strings(&chars).any(|i| chars[i] == '.' && chars.get(i + 1) == Some(&'.'));
    let mut stack: Vec<char> = Vec::new();
    let mut resume = 0;
    let mut brackets = 0;
    for i in outside_strings(&chars) {
        if i < resume {
            continue; // inside an interval already read
        }
        let c = chars[i];
        if c == '`' {
            return Err(ExpressionError("template strings (`…`) are not supported; use '…' or \"…\"".into()));
        }
        let interval = if matches!(c, '[' | '(' | ']') { interval_end(&chars, i) } else { None };
        if interval.is_some() || matches!(c, '(' | '[' | '{') {
            brackets += 1;
        }
        if let Some(end) = interval {
            resume = end + 1; // one unit, whatever brackets it mixes
            continue;
        }
        match c {
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let opened = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if stack.pop() != Some(opened) {
                    return Err(unbalanced());
                }
            }
            _ => {}
        }
        if stack.len() > MAX_NESTING {
            return Err(ExpressionError(format!("nested deeper than {MAX_NESTING} brackets")));
        }
    }
    if !stack.is_empty() {
        return Err(unbalanced());
    }
    if has_range && brackets > MAX_BRACKETS_WITH_INTERVAL {
        return Err(ExpressionError(format!(
            "an expression with an interval may hold at most {MAX_BRACKETS_WITH_INTERVAL} brackets (parentheses, arrays, intervals)"
        )));
    }
    Ok(())
}

/// When an interval literal (`[1..5]`, `(0..1.5]`, `]-3..3[`) opens at `open`, the
/// position of its closing bracket.
fn interval_end(chars: &[char], open: usize) -> Option<usize> {
    let skip_spaces = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let (lo, j) = number_after(chars, open + 1);
    lo?;
    let j = skip_spaces(j);
    if chars.get(j) != Some(&'.') || chars.get(j + 1) != Some(&'.') {
        return None;
    }
    let (hi, k) = number_after(chars, j + 2);
    hi?;
    let k = skip_spaces(k);
    matches!(chars.get(k), Some(']' | ')' | '[')).then_some(k)
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
            "event.amount in (10..20] or event.amount in [ 1 .. 5 ) or 3 in ]0..4[",
            "len(map([0..3], [#, [#]])) == 3",
            "event.amount in [1..2] and 'a' in ['a', 'b'] and (contact.score > 1) and some(contact.tags, # == 'x')",
            "((((((((contact.score > 1)))))))) and [[[[1]]]][0][0][0][0] == 1 and 'a..b' != ''",
            "event.page != 'it`s' and event.page != \"`\"",
        ] {
            assert!(CompiledExpression::compile(ok).is_ok(), "{ok}: {:?}", CompiledExpression::compile(ok).err());
        }
        for (bomb, why) in [
            ("len(map([0..10000000], # + 1)) > 0", "at most 100 values"),
            ("len(map([0..1000], # + 1)) > 0", "at most 100 values"),
            // Found by the fuzz target: 13,000 inner evaluations of a decimal power.
            ("len(map([0..115],len(map([0..115],#*9^8.7))>8))", "at most 100 values"),
            ("len(map([0..10], map([0..20], #))) > 0", "at most 100 values"),
            ("len(map([0..contact.purchases], #)) > 0", "numbers written in the rule"),
            ("contact.score in [0..contact.purchases]", "numbers written in the rule"),
            // Found by the fuzz target: an arithmetic bound allocated past the memory limit.
            ("len(map([0..10--2-333+33333333333333.3--3+333333--0], # * 2)) > 0", "numbers written in the rule"),
            ("len(map([1+2..5], #)) > 0", "numbers written in the rule"),
            ("map([0..3], map([0..3], map([0..3], #)))", "at most 2 intervals"),
            // Found by the fuzz target: 16 s and 7.8 GB in zen's parser.
            ("len(map(map(]]]]](]]]]]]]]]]]]]}]]]][0..10 ], # *$2)) >.91", "do not balance"),
            ("((((contact.score > 1", "do not balance"),
            // Found by the fuzz target: 3.7 GB in zen's parser, though every bracket had
            // a partner when `(…]` and `[…)` were accepted outside intervals.
            (
                "[n][[[n][]len(map([0..100].a+b some(c*nnm][))) ][][[[n][]len(map([0..100].a+b some(c*nnm][))) ][]",
                "do not balance",
            ),
            ("some(x][)", "do not balance"),
            // Found by the fuzz target with balanced brackets: 20 s and 8 GB in zen's parser.
            ("[][n[][n[][n[][n[]nnl[[]]](map([2..1].a.a)) >][]nnl[[]]](map([2..1].a.a)) >]", "at most 6 brackets"),
            ("[] + [[[](map([]))] + [[]]] + ([2..1])", "at most 6 brackets"),
            ("e=()()(e=()()e=(map((([]()()e=(e=())))()))([0..0]))", "at most 6 brackets"),
            // `${…}` would hide brackets from the checks (found by the fuzz target).
            ("len(map([0..100], #)) > 0 and `${[[[[[[[[[[[[1]]]]]]]]]]]]}` == ''", "template strings"),
            ("(contact.score > 1]", "do not balance"),
            ("]contact.score[", "do not balance"),
            // zen-expression 2.1 underflows on an empty template literal.
            ("``", "template strings"),
        ] {
            let err = CompiledExpression::compile(bomb).unwrap_err().to_string();
            assert!(err.contains(why), "{bomb}: {err}");
        }
    }
}
