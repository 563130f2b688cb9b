//! Follow-up sequences in a rule: a goal that ends the run, a re-entry policy, and
//! `skip_if` on delayed actions. Their specs, how the rule file walker reads them (every
//! problem reported with its path) and what only the whole rule can check.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::expression::CompiledExpression;
use crate::event::Trigger;

/// Something that happened to the contact: one of `triggers`, or `expression` true.
/// A goal's expression sees `contact` (after the event) and `event`; a `skip_if`'s sees
/// `contact` (as it is when the step is due) and `run` (`started_at`, `rule_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Happening {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReentryPolicy {
    /// A new run each time the rule fires; earlier runs go on.
    #[default]
    Always,
    /// One run per contact, ever.
    Once,
    /// A new run only if the last one started at least `days` ago.
    OncePer,
}

impl ReentryPolicy {
    pub const NAMES: &'static [&'static str] = &["always", "once", "once_per"];

    fn parse(s: &str) -> Option<ReentryPolicy> {
        Some(match s {
            "always" => ReentryPolicy::Always,
            "once" => ReentryPolicy::Once,
            "once_per" => ReentryPolicy::OncePer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reentry {
    #[serde(default)]
    pub policy: ReentryPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
}

/// A goal or `skip_if`, compiled: the triggers and the expression, checked at load.
#[derive(Debug, Clone)]
pub struct CompiledHappening {
    pub spec: Happening,
    pub expression: Option<CompiledExpression>,
}

impl CompiledHappening {
    /// Compiles the expression; an error names the expression's problem.
    pub fn compile(spec: Happening) -> Result<CompiledHappening, String> {
        let expression = match spec.expression.as_deref() {
            Some(src) => Some(CompiledExpression::compile(src).map_err(|e| e.to_string())?),
            None => None,
        };
        Ok(CompiledHappening { spec, expression })
    }

    pub fn has_trigger(&self, trigger: Trigger) -> bool {
        self.spec.triggers.contains(&trigger)
    }
}

/// Reads `goal` or `skip_if`: `{triggers = [...], expression = "..."}`, at least one.
pub(crate) fn read_happening(path: &str, value: &Value, err: &mut dyn FnMut(String, String)) -> Option<Happening> {
    let Some(obj) = value.as_object() else {
        err(path.into(), "expected a table with `triggers` (a list of trigger names) and/or `expression`".into());
        return None;
    };
    unknown_keys(path, obj, &["triggers", "expression"], err);
    let mut spec = Happening::default();
    match obj.get("triggers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(|s| (s, s.parse::<Trigger>())) {
                    Some((_, Ok(t))) => spec.triggers.push(t),
                    Some((s, Err(_))) => err(
                        format!("{path}.triggers[{i}]"),
                        format!("unknown trigger {s:?}; accepted: {}", Trigger::NAMES.join(", ")),
                    ),
                    None => err(format!("{path}.triggers[{i}]"), "expected a trigger name".into()),
                }
            }
        }
        Some(_) => err(format!("{path}.triggers"), "expected a list of trigger names".into()),
    }
    match obj.get("expression") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => spec.expression = Some(s.clone()),
        Some(_) => err(format!("{path}.expression"), "expected a string expression".into()),
    }
    if spec.triggers.is_empty() && spec.expression.is_none() && obj.get("triggers").is_none_or(Value::is_null) {
        err(path.into(), "needs `triggers` (a list of trigger names) or an `expression`".into());
    }
    Some(spec)
}

/// Reads `reentry`: `{policy = "always" | "once" | "once_per", days = N}`.
pub(crate) fn read_reentry(value: &Value, err: &mut dyn FnMut(String, String)) -> Option<Reentry> {
    let Some(obj) = value.as_object() else {
        err("reentry".into(), "expected a table with `policy` (always, once, once_per) and `days`".into());
        return None;
    };
    unknown_keys("reentry", obj, &["policy", "days"], err);
    let policy = match obj.get("policy") {
        None => ReentryPolicy::Always,
        Some(Value::String(s)) => match ReentryPolicy::parse(s) {
            Some(p) => p,
            None => {
                err(
                    "reentry.policy".into(),
                    format!("unknown policy {s:?}; accepted: {}", ReentryPolicy::NAMES.join(", ")),
                );
                ReentryPolicy::Always
            }
        },
        Some(_) => {
            err("reentry.policy".into(), format!("expected one of {}", ReentryPolicy::NAMES.join(", ")));
            ReentryPolicy::Always
        }
    };
    let days = match obj.get("days") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|d| u32::try_from(d).ok()) {
            Some(d) => Some(d),
            None => {
                err("reentry.days".into(), "expected a whole number of days ≥ 1".into());
                None
            }
        },
    };
    Some(Reentry { policy, days })
}

fn unknown_keys(path: &str, obj: &Map<String, Value>, known: &[&str], err: &mut dyn FnMut(String, String)) {
    for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        err(format!("{path}.{key}"), format!("unknown field; accepted: {}", known.join(", ")));
    }
}

/// What only the whole rule can tell about its sequence fields.
pub(crate) fn check(spec: &super::RuleSpec, err: &mut dyn FnMut(String, String)) {
    if let Some(goal) = &spec.goal {
        if goal.triggers.is_empty() && goal.expression.is_none() {
            err("goal".into(), "needs `triggers` (a list of trigger names) or an `expression`".into());
        }
        not_events("goal.triggers", &goal.triggers, err);
        if goal.triggers.contains(&spec.trigger) && spec.trigger != Trigger::TimeBased {
            err(
                "goal.triggers".into(),
                format!("{} is the rule's own trigger: every new run would end its previous one", spec.trigger),
            );
        }
        check_expression("goal.expression", goal.expression.as_deref(), err);
    }
    if let Some(r) = &spec.reentry {
        match (r.policy, r.days) {
            (ReentryPolicy::OncePer, None) => {
                err("reentry.days".into(), "missing: once_per needs `days` (a new run after that many days)".into())
            }
            (ReentryPolicy::OncePer, Some(0)) => err("reentry.days".into(), "must be at least 1".into()),
            (ReentryPolicy::Always | ReentryPolicy::Once, Some(_)) => {
                err("reentry.days".into(), "only policy = \"once_per\" takes `days`".into())
            }
            _ => {}
        }
    }
    for (i, action) in spec.actions.iter().enumerate() {
        let Some(skip) = &action.skip_if else { continue };
        let path = format!("actions[{i}].skip_if");
        if action.delay_minutes == 0 {
            err(
                path.clone(),
                "only a delayed action can be skipped (it is checked when due); give it a delay_minutes".into(),
            );
        }
        not_events(&format!("{path}.triggers"), &skip.triggers, err);
        if skip.triggers.is_empty() && skip.expression.is_none() {
            err(path.clone(), "needs `triggers` (a list of trigger names) or an `expression`".into());
        }
        check_expression(&format!("{path}.expression"), skip.expression.as_deref(), err);
    }
}

/// `time_based` and `lead_score_high` are not events that reach a contact's runs.
fn not_events(path: &str, triggers: &[Trigger], err: &mut dyn FnMut(String, String)) {
    for t in triggers {
        match t {
            Trigger::TimeBased => err(path.into(), "time_based is not something a contact does; name an event".into()),
            Trigger::LeadScoreHigh => err(
                path.into(),
                "lead_score_high is not an event; use an expression such as \"contact.score >= 80\"".into(),
            ),
            _ => {}
        }
    }
}

fn check_expression(path: &str, source: Option<&str>, err: &mut dyn FnMut(String, String)) {
    let Some(src) = source else { return };
    if src.len() > super::MAX_EXPRESSION_LEN {
        err(path.into(), format!("longer than {} characters", super::MAX_EXPRESSION_LEN));
    } else if let Err(e) = CompiledExpression::compile(src) {
        err(path.into(), e.to_string());
    }
}

/// `in_run` and `not_in_run` must name a rule of the set that starts runs.
pub(crate) fn check_run_references(specs: &[super::RuleSpec], errors: &mut Vec<super::RuleError>) {
    for (index, spec) in specs.iter().enumerate() {
        for (key, target) in [("in_run", &spec.conditions.in_run), ("not_in_run", &spec.conditions.not_in_run)] {
            let Some(target) = target else { continue };
            let message = match specs.iter().find(|s| &s.rule_id == target) {
                None => format!("no rule {target:?} in this rule set"),
                Some(s) if !s.starts_runs() => {
                    format!("rule {target:?} has no runs: give it a goal, a reentry policy or a skip_if so that it has")
                }
                Some(_) => continue,
            };
            errors.push(super::RuleError {
                index: Some(index),
                rule_id: Some(spec.rule_id.clone()),
                path: format!("conditions.{key}"),
                message,
            });
        }
    }
}
