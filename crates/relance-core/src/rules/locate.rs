//! Finds the line of a rule file that an error is about, so that an editor can mark it.
//! Errors are located by rule and field path (the walker reads values, not text); this
//! maps them back onto the text: the rule's `[[rule]]` table, then each path segment's
//! key or sub-table inside it. A segment that cannot be found leaves the line at the
//! closest enclosing one found.

use super::{RuleError, RuleFormat};

/// The 1-based line an error points at, when it can be told.
pub fn error_line(text: &str, format: RuleFormat, error: &RuleError) -> Option<usize> {
    match format {
        RuleFormat::Toml => toml_line(text, error),
        RuleFormat::Json => match (error.index, serde_json::from_str::<serde_json::Value>(text)) {
            (None, Err(e)) => Some(e.line()),
            _ => None,
        },
    }
}

fn toml_line(text: &str, error: &RuleError) -> Option<usize> {
    let Some(index) = error.index else {
        let e = toml::from_str::<toml::Table>(text).err()?;
        let at = e.span()?.start;
        return Some(text[..at.min(text.len())].matches('\n').count() + 1);
    };
    let lines: Vec<String> = text.lines().map(|l| l.split('#').next().unwrap_or("").replace([' ', '\t'], "")).collect();
    let rule_starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i] == "[[rule]]").collect();
    let start = *rule_starts.get(index)?;
    let end = rule_starts.get(index + 1).copied().unwrap_or(lines.len());
    let mut at = start;
    for segment in error.path.split('.').filter(|s| !s.is_empty()) {
        let (name, nth) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let found = match nth {
            // `[[rule.actions]]` tables: the nth one after the current line.
            Some(n) => {
                let header = format!(".{name}]]");
                (at..end).filter(|&i| lines[i].starts_with("[[") && lines[i].ends_with(&header)).nth(n)
            }
            None => {
                let key = format!("{name}=");
                let table = format!(".{name}]");
                (at..end)
                    .find(|&i| lines[i].starts_with(&key) || (lines[i].starts_with('[') && lines[i].ends_with(&table)))
            }
        };
        match found {
            Some(i) => at = i,
            // An inline table or array (`config = { … }`): the key is on the line found so far.
            None => {
                if let Some(i) = (at..end).find(|&i| lines[i].contains(&format!("{name}="))) {
                    at = i;
                }
                break;
            }
        }
    }
    Some(at + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RuleSet;

    const FILE: &str = r#"# two rules
[[rule]]
rule_id = "ok"
trigger = "email_opened"

[[rule.actions]]
action_type = "add_tag"
config = { tag = "x" }

[[rule]]
rule_id = "bad"
trigger = "email_openned"
priority = 5

[rule.conditions]
score_min = 500

[[rule.actions]]
action_type = "add_tag"
config = { tag = "a" }

[[rule.actions]]
action_type = "add_score"
config = { score_delta = "ten" }
"#;

    fn lines_of(text: &str) -> Vec<(String, Option<usize>)> {
        let errors = match RuleSet::parse(text, RuleFormat::Toml) {
            Err(e) => e,
            Ok(_) => panic!("expected errors"),
        };
        errors.iter().map(|e| (e.path.clone(), error_line(text, RuleFormat::Toml, e))).collect()
    }

    #[test]
    fn points_at_the_key_inside_the_right_rule() {
        let found = lines_of(FILE);
        let line = |path: &str| found.iter().find(|(p, _)| p.starts_with(path)).and_then(|(_, l)| *l);
        assert_eq!(line("trigger"), Some(12), "{found:?}");
        assert_eq!(line("conditions.score_min"), Some(16), "{found:?}");
        assert_eq!(line("actions[1]"), Some(23), "{found:?}");
        assert_eq!(line("priority"), Some(2), "a missing key points at its rule: {found:?}");
    }

    #[test]
    fn syntax_errors_point_at_their_line() {
        let text = "[[rule]]\nrule_id = \"a\"\ntrigger = = \"x\"\n";
        let found = lines_of(text);
        assert_eq!(found[0].1, Some(3), "{found:?}");
    }
}
