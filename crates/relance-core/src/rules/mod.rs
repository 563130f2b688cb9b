//! Rules: their serialisable form (`RuleSpec`, the seed's JSON export format and our TOML
//! authoring format share it), validation with every problem reported, and the compiled
//! form the engine runs.

mod defaults;
mod expression;
mod load;
mod locate;
mod schedule;
mod sequence;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{ActionType, BounceType, Trigger};
use crate::named_score::{LEAD, ScoreSpec};

pub use defaults::default_rule_specs;
pub use expression::{CompiledExpression, ExpressionError, MAX_EXPRESSION_LEN};
pub use load::{RuleFile, RuleFormat, parse_rule_file, parse_rule_specs};
pub use locate::error_line;
pub use schedule::{DEFAULT_TIMEZONE, Schedule};
pub use sequence::{CompiledHappening, Happening, Reentry, ReentryPolicy};

/// A rule as written in a file or exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleSpec {
    pub rule_id: String,
    pub trigger: Trigger,
    #[serde(default)]
    pub conditions: ConditionsSpec,
    pub actions: Vec<ActionSpec>,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub priority: u8,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// For `time_based` rules: `daily HH:MM` or a five-field cron expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// The schedule's time zone (default Europe/Paris).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The run ends as soon as this happens to the contact (its pending steps cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Happening>,
    /// What a second firing does while a run exists or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reentry: Option<Reentry>,
    /// A budget on the messages (email, SMS, calls) the rule sends per day in the
    /// estate's time zone; beyond it they wait for the next morning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<u32>,
}

impl RuleSpec {
    /// Whether each firing starts a run (see `docs/rules.md`, "Follow-up sequences").
    pub fn starts_runs(&self) -> bool {
        self.goal.is_some() || self.reentry.is_some() || self.actions.iter().any(|a| a.skip_if.is_some())
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionSpec {
    pub action_type: ActionType,
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    #[serde(default)]
    pub delay_minutes: u32,
    /// Checked when the delayed action is due: if it happened, the step is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_if: Option<Happening>,
    /// A message that passes caps and quiet hours (a thank-you for an order).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transactional: bool,
    /// Over a cap: wait (`defer`, the default) or give up (`skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_cap: Option<crate::pressure::OnCap>,
}

/// Every condition a rule can hold; all present ones must be true. The first three are
/// the seed's own keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConditionsSpec {
    /// The contact's segment is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Vec<String>>,
    /// The event's amount is strictly greater (the seed's "Amount > 50€").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_amount: Option<f64>,
    /// For `lead_score_high`: the threshold whose upward crossing fires the rule. For other
    /// triggers: the contact's score is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<i64>,
    /// The event's amount is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_amount: Option<f64>,
    /// The contact's score is within `score_min..=score_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_max: Option<i64>,
    /// Which score `score_threshold`, `score_min` and `score_max` (and a
    /// `lead_score_high` crossing) read: a declared `[[score]]`; none: the lead score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_any: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_all: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_none: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<BounceType>,
    /// The contact bought, and not for at least this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_days_since_purchase: Option<u32>,
    /// No activity (open, click, visit, form, purchase) for at least this many days; a
    /// contact with no activity on record holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_days_since_activity: Option<u32>,
    /// A zen-expression over `contact` and `event` that must evaluate to `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The contact has an active run of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_run: Option<String>,
    /// The contact has no active run of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_in_run: Option<String>,
}

/// The threshold `lead_score_high` rules use when they do not state one.
pub const DEFAULT_HIGH_SCORE_THRESHOLD: i64 = 80;

/// One problem in a rule file, located by rule and field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleError {
    /// Position of the rule in the file, from 0.
    pub index: Option<usize>,
    pub rule_id: Option<String>,
    /// Field path inside the rule, e.g. `actions[1].config.score_delta`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for RuleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.rule_id, self.index) {
            (Some(id), Some(i)) => write!(f, "rule {id:?} (#{}) ", i + 1)?,
            (None, Some(i)) => write!(f, "rule #{} ", i + 1)?,
            _ => {}
        }
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// A compiled action.
#[derive(Debug, Clone)]
pub struct Action {
    pub action_type: ActionType,
    /// Shared so that fired actions do not copy it.
    pub config: Arc<Value>,
    pub delay_minutes: u32,
    /// Shared with the jobs it schedules.
    pub skip_if: Option<Arc<Happening>>,
    pub transactional: bool,
    pub on_cap: Option<crate::pressure::OnCap>,
}

/// A compiled, validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub rule_id: Arc<str>,
    pub trigger: Trigger,
    pub conditions: ConditionsSpec,
    pub expression: Option<CompiledExpression>,
    pub actions: Vec<Action>,
    pub enabled: bool,
    pub priority: u8,
    pub description: String,
    pub schedule: Option<Schedule>,
    pub timezone: Option<String>,
    pub goal: Option<CompiledHappening>,
    pub reentry: Option<Reentry>,
    pub max_per_day: Option<u32>,
    /// Each firing starts a run: a goal, a re-entry policy or a `skip_if` is set.
    pub starts_runs: bool,
}

impl Rule {
    /// The crossing threshold of a `lead_score_high` rule.
    pub fn high_score_threshold(&self) -> i64 {
        self.conditions.score_threshold.unwrap_or(DEFAULT_HIGH_SCORE_THRESHOLD)
    }

    pub fn to_spec(&self) -> RuleSpec {
        RuleSpec {
            rule_id: self.rule_id.to_string(),
            trigger: self.trigger,
            conditions: self.conditions.clone(),
            actions: self
                .actions
                .iter()
                .map(|a| ActionSpec {
                    action_type: a.action_type,
                    config: a.config.as_object().cloned().unwrap_or_default(),
                    delay_minutes: a.delay_minutes,
                    skip_if: a.skip_if.as_deref().cloned(),
                    transactional: a.transactional,
                    on_cap: a.on_cap,
                })
                .collect(),
            enabled: self.enabled,
            priority: self.priority,
            description: self.description.clone(),
            schedule: self.schedule.as_ref().map(|s| s.source().to_owned()),
            timezone: self.timezone.clone(),
            goal: self.goal.as_ref().map(|g| g.spec.clone()),
            reentry: self.reentry.clone(),
            max_per_day: self.max_per_day,
        }
    }
}

/// A validated rule set, in file order, with the scores it declares.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    scores: Vec<ScoreSpec>,
}

impl RuleSet {
    /// The seed's six default rules.
    pub fn defaults() -> RuleSet {
        RuleSet::compile(default_rule_specs()).expect("the default rules are valid")
    }

    /// Parses and validates a rule file; every problem is reported.
    pub fn parse(text: &str, format: RuleFormat) -> Result<RuleSet, Vec<RuleError>> {
        let file = parse_rule_file(text, format)?;
        RuleSet::compile_file(file)
    }

    /// Validates specs that are already typed (defaults, API) and compiles expressions.
    pub fn compile(specs: Vec<RuleSpec>) -> Result<RuleSet, Vec<RuleError>> {
        RuleSet::compile_file(RuleFile { scores: Vec::new(), rules: specs })
    }

    /// [`RuleSet::compile`] with score declarations, which rules may name.
    pub fn compile_file(file: RuleFile) -> Result<RuleSet, Vec<RuleError>> {
        let RuleFile { scores, rules: specs } = file;
        let mut errors = Vec::new();
        check_scores(&scores, &mut errors);
        sequence::check_run_references(&specs, &mut errors);
        let mut rules = Vec::with_capacity(specs.len());
        let mut seen = std::collections::HashMap::new();
        for (index, spec) in specs.into_iter().enumerate() {
            let mut err = |path: String, message: String| {
                errors.push(RuleError { index: Some(index), rule_id: Some(spec.rule_id.clone()), path, message })
            };
            if let Some(first) = seen.insert(spec.rule_id.clone(), index) {
                err("rule_id".into(), format!("duplicate rule id (first used by rule #{})", first + 1));
            }
            load::check_semantics(&spec, &mut err);
            check_score_references(&spec, &scores, &mut err);
            let expression = match spec.conditions.expression.as_deref() {
                Some(src) => match CompiledExpression::compile(src) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        err("conditions.expression".into(), e.to_string());
                        None
                    }
                },
                None => None,
            };
            let schedule = match spec.schedule.as_deref() {
                Some(src) => match Schedule::parse(src, spec.timezone.as_deref()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        err("schedule".into(), e);
                        None
                    }
                },
                None => None,
            };
            let goal = spec.goal.clone().and_then(|g| CompiledHappening::compile(g).ok());
            rules.push(Rule {
                starts_runs: spec.starts_runs(),
                goal,
                reentry: spec.reentry.clone(),
                max_per_day: spec.max_per_day,
                rule_id: Arc::from(spec.rule_id.as_str()),
                schedule,
                timezone: spec.timezone.clone(),
                trigger: spec.trigger,
                expression,
                actions: spec
                    .actions
                    .into_iter()
                    .map(|a| Action {
                        action_type: a.action_type,
                        config: Arc::new(Value::Object(a.config)),
                        delay_minutes: a.delay_minutes,
                        skip_if: a.skip_if.map(Arc::new),
                        transactional: a.transactional,
                        on_cap: a.on_cap,
                    })
                    .collect(),
                conditions: spec.conditions,
                enabled: spec.enabled,
                priority: spec.priority,
                description: spec.description,
            });
        }
        if errors.is_empty() { Ok(RuleSet { rules, scores }) } else { Err(errors) }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The declared named scores, in file order.
    pub fn scores(&self) -> &[ScoreSpec] {
        &self.scores
    }

    /// A declared named score.
    pub fn score(&self, name: &str) -> Option<&ScoreSpec> {
        self.scores.iter().find(|s| s.name == name)
    }

    pub fn specs(&self) -> Vec<RuleSpec> {
        self.rules.iter().map(Rule::to_spec).collect()
    }

    /// The seed's JSON export: an array of rules, pretty-printed; with declared scores,
    /// `{"scores": [...], "rules": [...]}` (the seed's format has no place for them).
    pub fn to_seed_json(&self) -> String {
        let text = if self.scores.is_empty() {
            serde_json::to_string_pretty(&self.specs())
        } else {
            serde_json::to_string_pretty(&serde_json::json!({"scores": self.scores, "rules": self.specs()}))
        };
        text.unwrap_or_else(|_| "[]".into())
    }

    /// The TOML authoring format: `[[rule]]` tables.
    pub fn to_toml(&self) -> String {
        #[derive(Serialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        struct File<'a> {
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            score: &'a [ScoreSpec],
            rule: Vec<RuleSpec>,
        }
        toml::to_string_pretty(&File { score: &self.scores, rule: self.specs() }).unwrap_or_default()
    }
}

/// Declarations: each valid, names unique.
fn check_scores(scores: &[ScoreSpec], errors: &mut Vec<RuleError>) {
    for (i, score) in scores.iter().enumerate() {
        let mut problems = score.problems();
        if scores[..i].iter().any(|s| s.name == score.name) {
            problems.push(("name", format!("{:?} is declared twice", score.name)));
        }
        for (field, message) in problems {
            errors.push(RuleError { index: None, rule_id: None, path: format!("score[{i}].{field}"), message });
        }
    }
}

/// A rule names only declared scores, with thresholds inside their range.
pub(crate) fn check_score_references(spec: &RuleSpec, scores: &[ScoreSpec], err: &mut dyn FnMut(String, String)) {
    let declared = || {
        let names: Vec<&str> = scores.iter().map(|s| s.name.as_str()).collect();
        if names.is_empty() {
            "none is declared ([[score]])".to_owned()
        } else {
            format!("declared: {}", names.join(", "))
        }
    };
    let range_of = |name: Option<&str>| match name {
        None | Some(LEAD) => Some([0, 100]),
        Some(n) => scores.iter().find(|s| s.name == n).map(|s| s.range),
    };
    let c = &spec.conditions;
    let range = range_of(c.score.as_deref());
    if range.is_none() {
        err("conditions.score".into(), format!("unknown score {:?}; {}", c.score.as_deref().unwrap_or(""), declared()));
    }
    if let Some([lo, hi]) = range.filter(|_| c.score.is_some()) {
        for (field, v) in
            [("score_threshold", c.score_threshold), ("score_min", c.score_min), ("score_max", c.score_max)]
        {
            if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
                err(format!("conditions.{field}"), format!("{v} is outside the score's range [{lo}, {hi}]"));
            }
        }
    }
    for (i, action) in spec.actions.iter().enumerate() {
        if action.action_type != ActionType::UpdateScore {
            continue;
        }
        match action.config.get("score") {
            None | Some(Value::Null) => {}
            Some(Value::String(n)) if range_of(Some(n)).is_some() => {}
            Some(Value::String(n)) => {
                err(format!("actions[{i}].config.score"), format!("unknown score {n:?}; {}", declared()))
            }
            Some(_) => err(format!("actions[{i}].config.score"), "expected the name of a declared score".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_json_round_trips() {
        let defaults = RuleSet::defaults();
        let json = defaults.to_seed_json();
        let again = RuleSet::parse(&json, RuleFormat::Json).unwrap();
        assert_eq!(again.specs(), defaults.specs());
    }

    #[test]
    fn toml_round_trips() {
        let defaults = RuleSet::defaults();
        let text = defaults.to_toml();
        let again = RuleSet::parse(&text, RuleFormat::Toml).unwrap();
        assert_eq!(again.specs(), defaults.specs());
    }

    #[test]
    fn the_seed_snippet_loads_exactly_as_printed() {
        // From PHASE_3_GUIDE.md, "Automation Rules Export".
        let seed = r#"[
  {
    "rule_id": "rule_email_opened",
    "trigger": "email_opened",
    "conditions": {"segment": ["Standard", "VIP"]},
    "actions": [
      {
        "action_type": "update_score",
        "config": {"score_delta": 5},
        "delay_minutes": 0
      }
    ],
    "enabled": true,
    "priority": 40
  }
]"#;
        let set = RuleSet::parse(seed, RuleFormat::Json).unwrap();
        let rule = &set.rules()[0];
        assert_eq!(&*rule.rule_id, "rule_email_opened");
        assert_eq!(rule.priority, 40);
        assert_eq!(rule.actions[0].config["score_delta"], 5);
    }
}
