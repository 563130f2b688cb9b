//! Reading rule files. The file is walked by hand rather than with `serde` so that every
//! problem is reported at once, each with its rule and field path.

use serde_json::{Map, Value};

use super::{ActionSpec, ConditionsSpec, RuleError, RuleSpec};
use crate::event::{ActionType, BounceType, Trigger};
use crate::named_score::ScoreSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleFormat {
    /// The seed's export: a JSON array of rules.
    Json,
    /// `[[rule]]` tables with the same fields.
    Toml,
}

impl RuleFormat {
    /// Guesses from a file name, then from the content.
    pub fn detect(file_name: &str, text: &str) -> RuleFormat {
        let trimmed = text.trim_start();
        if file_name.ends_with(".toml") || trimmed.starts_with("[[") {
            RuleFormat::Toml
        } else if file_name.ends_with(".json") || trimmed.starts_with(['[', '{']) {
            RuleFormat::Json
        } else {
            RuleFormat::Toml
        }
    }
}

const RULE_KEYS: &[&str] = &[
    "rule_id",
    "trigger",
    "conditions",
    "actions",
    "enabled",
    "priority",
    "description",
    "schedule",
    "timezone",
    "goal",
    "reentry",
    "max_per_day",
];
const ACTION_KEYS: &[&str] = &["action_type", "config", "delay_minutes", "skip_if", "transactional", "on_cap"];
const CONDITION_KEYS: &[&str] = &[
    "segment",
    "minimum_amount",
    "score_threshold",
    "maximum_amount",
    "score_min",
    "score_max",
    "tags_any",
    "tags_all",
    "tags_none",
    "bounce_type",
    "min_days_since_purchase",
    "min_days_since_activity",
    "expression",
    "in_run",
    "not_in_run",
    "score",
];

fn file_error(message: String) -> Vec<RuleError> {
    vec![RuleError { index: None, rule_id: None, path: String::new(), message }]
}

/// A rule file: the scores it declares (`[[score]]`) and its rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleFile {
    pub scores: Vec<ScoreSpec>,
    pub rules: Vec<RuleSpec>,
}

/// Parses a rule file into specs; structural and semantic problems are all reported.
pub fn parse_rule_specs(text: &str, format: RuleFormat) -> Result<Vec<RuleSpec>, Vec<RuleError>> {
    parse_rule_file(text, format).map(|f| f.rules)
}

/// Parses a rule file with its score declarations. JSON: the seed's array of rules, or
/// `{"scores": [...], "rules": [...]}`; TOML: `[[score]]` and `[[rule]]` tables.
pub fn parse_rule_file(text: &str, format: RuleFormat) -> Result<RuleFile, Vec<RuleError>> {
    let (score_items, items) = match format {
        RuleFormat::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => (Vec::new(), items),
            // `{"rules": [...]}` is accepted too: it is what GET /api/rules answers.
            Ok(Value::Object(mut o)) if o.get("rules").is_some_and(Value::is_array) => {
                if let Some(k) = o.keys().find(|k| *k != "rules" && *k != "scores") {
                    return Err(file_error(format!("unknown top-level key {k:?}: accepted: scores, rules")));
                }
                let scores = match o.remove("scores") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(s)) => s,
                    Some(_) => return Err(file_error("`scores` must be an array of score declarations".into())),
                };
                match o.remove("rules") {
                    Some(Value::Array(items)) => (scores, items),
                    _ => (scores, Vec::new()),
                }
            }
            Ok(_) => return Err(file_error("expected a JSON array of rules".into())),
            Err(e) => return Err(file_error(format!("invalid JSON: {e}"))),
        },
        RuleFormat::Toml => {
            let table: toml::Table = toml::from_str(text).map_err(|e| file_error(format!("invalid TOML: {e}")))?;
            let mut extra: Vec<&String> = table.keys().filter(|k| *k != "rule" && *k != "score").collect();
            if let Some(k) = extra.pop() {
                return Err(file_error(format!(
                    "unknown top-level key {k:?}: a rule file holds [[score]] and [[rule]] tables only"
                )));
            }
            let array = |key: &str| match table.get(key) {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(items)) => {
                    Ok(items.iter().map(|v| serde_json::to_value(v).unwrap_or(Value::Null)).collect())
                }
                Some(_) => Err(file_error(format!("`{key}` must be an array of tables ([[{key}]])"))),
            };
            (array("score")?, array("rule")?)
        }
    };

    let mut errors = Vec::new();
    let scores = read_scores(&score_items, &mut errors);
    let mut specs = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let mut walker = Walker { index, rule_id: None, errors: &mut errors };
        if let Some(spec) = walker.rule(item) {
            specs.push(spec);
        }
    }
    if errors.is_empty() {
        return Ok(RuleFile { scores, rules: specs });
    }
    // Report semantic problems of the rules that did parse too, so one pass shows all.
    for (i, spec) in specs.iter().enumerate() {
        let mut err = |path, message| {
            errors.push(RuleError { index: Some(i), rule_id: Some(spec.rule_id.clone()), path, message })
        };
        check_semantics(spec, &mut err);
        super::check_score_references(spec, &scores, &mut err);
    }
    Err(errors)
}

/// `[[score]]` tables; a problem is reported as `score[i].field`.
fn read_scores(items: &[Value], errors: &mut Vec<RuleError>) -> Vec<ScoreSpec> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match serde_json::from_value::<ScoreSpec>(item.clone()) {
            Ok(spec) => out.push(spec),
            Err(e) => errors.push(RuleError {
                index: None,
                rule_id: None,
                path: format!("score[{i}]"),
                message: format!("{e} (fields: name, initial, range, decay, description)"),
            }),
        }
    }
    out
}

struct Walker<'a> {
    index: usize,
    rule_id: Option<String>,
    errors: &'a mut Vec<RuleError>,
}

impl Walker<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(RuleError {
            index: Some(self.index),
            rule_id: self.rule_id.clone(),
            path: path.into(),
            message: message.into(),
        });
    }

    /// Runs a reader that reports through `err(path, message)`.
    fn with_err<T>(&mut self, read: impl FnOnce(&mut dyn FnMut(String, String)) -> T) -> T {
        let mut found = Vec::new();
        let value = read(&mut |path, message| found.push((path, message)));
        for (path, message) in found {
            self.err(path, message);
        }
        value
    }

    fn unknown_keys(&mut self, obj: &Map<String, Value>, known: &[&str], prefix: &str) {
        for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            self.err(format!("{prefix}{key}"), format!("unknown field; accepted: {}", known.join(", ")));
        }
    }

    fn rule(&mut self, item: &Value) -> Option<RuleSpec> {
        let Some(obj) = item.as_object() else {
            self.err("", "expected a rule object");
            return None;
        };
        let before = self.errors.len();
        self.rule_id = obj.get("rule_id").and_then(Value::as_str).map(str::to_owned);
        let rule_id = match obj.get("rule_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => {
                self.err("rule_id", "must not be empty");
                String::new()
            }
            Some(_) => {
                self.err("rule_id", "expected a string");
                String::new()
            }
            None => {
                self.err("rule_id", "missing");
                String::new()
            }
        };
        self.unknown_keys(obj, RULE_KEYS, "");

        let trigger = match obj.get("trigger") {
            Some(Value::String(s)) => s.parse::<Trigger>().ok().or_else(|| {
                self.err("trigger", format!("unknown trigger {s:?}; accepted: {}", Trigger::NAMES.join(", ")));
                None
            }),
            Some(_) => {
                self.err("trigger", "expected a string");
                None
            }
            None => {
                self.err("trigger", format!("missing; accepted: {}", Trigger::NAMES.join(", ")));
                None
            }
        };

        let priority = match obj.get("priority") {
            Some(v) => match v.as_i64() {
                Some(p) if (1..=100).contains(&p) => p as u8,
                Some(p) => {
                    self.err("priority", format!("{p} is outside 1..100"));
                    1
                }
                None => {
                    self.err("priority", "expected an integer between 1 and 100");
                    1
                }
            },
            None => {
                self.err("priority", "missing (an integer between 1 and 100, higher runs first)");
                1
            }
        };

        let enabled = match obj.get("enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err("enabled", "expected true or false");
                true
            }
        };

        let description = match obj.get("description") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                self.err("description", "expected a string");
                String::new()
            }
        };

        let mut optional_text = |key: &str| match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(key, "expected a string");
                None
            }
        };
        let schedule = optional_text("schedule");
        let timezone = optional_text("timezone");

        let conditions = match obj.get("conditions") {
            None | Some(Value::Null) => ConditionsSpec::default(),
            Some(Value::Object(c)) => self.conditions(c),
            Some(_) => {
                self.err("conditions", "expected an object");
                ConditionsSpec::default()
            }
        };

        let actions = match obj.get("actions") {
            Some(Value::Array(list)) => list.iter().enumerate().filter_map(|(i, a)| self.action(i, a)).collect(),
            Some(_) => {
                self.err("actions", "expected an array of actions");
                Vec::new()
            }
            None => {
                self.err("actions", "missing");
                Vec::new()
            }
        };

        let goal = match obj.get("goal") {
            None | Some(Value::Null) => None,
            Some(v) => self.with_err(|err| super::sequence::read_happening("goal", v, err)),
        };
        let reentry = match obj.get("reentry") {
            None | Some(Value::Null) => None,
            Some(v) => self.with_err(|err| super::sequence::read_reentry(v, err)),
        };

        let max_per_day = match obj.get("max_per_day") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
                _ => {
                    self.err("max_per_day", format!("{v} is not a budget; expected an integer 1..1000000"));
                    None
                }
            },
        };

        let trigger = trigger?;
        (self.errors.len() == before).then_some(RuleSpec {
            goal,
            reentry,
            max_per_day,
            rule_id,
            trigger,
            conditions,
            actions,
            enabled,
            priority,
            description,
            schedule,
            timezone,
        })
    }

    fn action(&mut self, i: usize, item: &Value) -> Option<ActionSpec> {
        let path = format!("actions[{i}]");
        let Some(obj) = item.as_object() else {
            self.err(path, "expected an action object");
            return None;
        };
        self.unknown_keys(obj, ACTION_KEYS, &format!("{path}."));
        let action_type = match obj.get("action_type") {
            Some(Value::String(s)) => s.parse::<ActionType>().ok().or_else(|| {
                self.err(
                    format!("{path}.action_type"),
                    format!("unknown action type {s:?}; accepted: {}", ActionType::NAMES.join(", ")),
                );
                None
            }),
            _ => {
                self.err(
                    format!("{path}.action_type"),
                    format!("missing or not a string; accepted: {}", ActionType::NAMES.join(", ")),
                );
                None
            }
        };
        let config = match obj.get("config") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(c)) => c.clone(),
            Some(_) => {
                self.err(format!("{path}.config"), "expected an object");
                Map::new()
            }
        };
        let delay_minutes = match obj.get("delay_minutes") {
            None | Some(Value::Null) => 0,
            Some(v) => match v.as_i64() {
                Some(d) if d < 0 => {
                    self.err(format!("{path}.delay_minutes"), format!("{d} is negative; a delay is ≥ 0 minutes"));
                    0
                }
                Some(d) => u32::try_from(d).unwrap_or_else(|_| {
                    self.err(format!("{path}.delay_minutes"), "too large");
                    0
                }),
                None => {
                    self.err(format!("{path}.delay_minutes"), "expected a whole number of minutes");
                    0
                }
            },
        };
        let skip_if = match obj.get("skip_if") {
            None | Some(Value::Null) => None,
            Some(v) => self.with_err(|err| super::sequence::read_happening(&format!("{path}.skip_if"), v, err)),
        };
        let transactional = match obj.get("transactional") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.err(format!("{path}.transactional"), "expected true or false");
                false
            }
        };
        let on_cap = match obj.get("on_cap").map(|v| (v, serde_json::from_value(v.clone()))) {
            None | Some((Value::Null, _)) => None,
            Some((_, Ok(policy))) => Some(policy),
            Some((v, Err(_))) => {
                self.err(format!("{path}.on_cap"), format!("{v} is not a policy; accepted: defer, skip"));
                None
            }
        };
        Some(ActionSpec { action_type: action_type?, config, delay_minutes, skip_if, transactional, on_cap })
    }

    fn conditions(&mut self, c: &Map<String, Value>) -> ConditionsSpec {
        self.unknown_keys(c, CONDITION_KEYS, "conditions.");
        let mut spec = ConditionsSpec::default();
        for (key, value) in c {
            let path = format!("conditions.{key}");
            match key.as_str() {
                "segment" => spec.segment = self.string_list(&path, value),
                "tags_any" => spec.tags_any = self.string_list(&path, value).unwrap_or_default(),
                "tags_all" => spec.tags_all = self.string_list(&path, value).unwrap_or_default(),
                "tags_none" => spec.tags_none = self.string_list(&path, value).unwrap_or_default(),
                "minimum_amount" | "maximum_amount" => {
                    let n = value.as_f64().filter(|n| n.is_finite());
                    if n.is_none() {
                        self.err(path, "expected a number");
                    }
                    if key == "minimum_amount" {
                        spec.minimum_amount = n;
                    } else {
                        spec.maximum_amount = n;
                    }
                }
                "score_threshold" | "score_min" | "score_max" => {
                    // The range is checked against the score it reads once declarations are known.
                    let n = value.as_i64();
                    if n.is_none() {
                        self.err(path, "expected an integer score");
                    }
                    match key.as_str() {
                        "score_threshold" => spec.score_threshold = n,
                        "score_min" => spec.score_min = n,
                        _ => spec.score_max = n,
                    }
                }
                "min_days_since_purchase" | "min_days_since_activity" => {
                    let n = value.as_u64().and_then(|n| u32::try_from(n).ok());
                    if n.is_none() {
                        self.err(path, "expected a whole number of days ≥ 0");
                    }
                    if key == "min_days_since_purchase" {
                        spec.min_days_since_purchase = n;
                    } else {
                        spec.min_days_since_activity = n;
                    }
                }
                "bounce_type" => {
                    spec.bounce_type = value.as_str().and_then(|s| s.parse::<BounceType>().ok());
                    if spec.bounce_type.is_none() {
                        self.err(path, format!("accepted: {}", BounceType::NAMES.join(", ")));
                    }
                }
                "expression" => match value.as_str() {
                    Some(s) => spec.expression = Some(s.to_owned()),
                    None => self.err(path, "expected a string expression"),
                },
                "score" => match value.as_str() {
                    Some(s) => spec.score = Some(s.to_owned()),
                    None => self.err(path, "expected the name of a declared [[score]] (or \"lead\")"),
                },
                "in_run" | "not_in_run" => match value.as_str().filter(|s| !s.trim().is_empty()) {
                    Some(s) if key == "in_run" => spec.in_run = Some(s.to_owned()),
                    Some(s) => spec.not_in_run = Some(s.to_owned()),
                    None => self.err(path, "expected the rule_id of a rule with runs"),
                },
                _ => {}
            }
        }
        if spec.score.is_none() {
            // The lead score's range is known here; a named score's once declarations are.
            for (key, v) in [
                ("score_threshold", spec.score_threshold),
                ("score_min", spec.score_min),
                ("score_max", spec.score_max),
            ] {
                if let Some(v) = v.filter(|v| !(0..=100).contains(v)) {
                    self.err(format!("conditions.{key}"), format!("{v} is outside the lead score's range 0..100"));
                }
            }
        }
        spec
    }

    fn string_list(&mut self, path: &str, value: &Value) -> Option<Vec<String>> {
        match value {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) if items.iter().all(Value::is_string) => {
                Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            }
            _ => {
                self.err(path, "expected a string or a list of strings");
                None
            }
        }
    }
}

/// Checks what types alone cannot: ranges, required action config, conditions that
/// cannot apply to the trigger. Reports through `err(path, message)`.
pub(crate) fn check_semantics(spec: &RuleSpec, err: &mut dyn FnMut(String, String)) {
    if spec.rule_id.trim().is_empty() {
        err("rule_id".into(), "must not be empty".into());
    } else if spec.rule_id.starts_with("__") {
        err("rule_id".into(), "ids starting with __ are reserved for Relance's own tasks".into());
    }
    if !(1..=100).contains(&spec.priority) {
        err("priority".into(), format!("{} is outside 1..100", spec.priority));
    }
    if spec.actions.is_empty() {
        err("actions".into(), "a rule needs at least one action".into());
    }
    match (spec.trigger, &spec.schedule) {
        (Trigger::TimeBased, None) => {
            err("schedule".into(), "a time_based rule needs a schedule (\"daily 09:00\" or a cron expression)".into())
        }
        (t, Some(_)) if t != Trigger::TimeBased => {
            err("schedule".into(), format!("only time_based rules have a schedule; this rule's trigger is {t}"))
        }
        _ => {}
    }
    if spec.timezone.is_some() && spec.schedule.is_none() {
        err("timezone".into(), "a timezone only applies to a schedule".into());
    }
    super::sequence::check(spec, err);
    if let Some(n) = spec.max_per_day {
        if n == 0 {
            err("max_per_day".into(), "must be at least 1 (pause the rule to send nothing)".into());
        } else if !spec.actions.iter().any(|a| crate::pressure::Channel::of(a.action_type).is_some()) {
            err(
                "max_per_day".into(),
                "the rule sends no message (send_email, send_sms, schedule_call, create_task)".into(),
            );
        }
    }
    let c = &spec.conditions;
    if let (Some(lo), Some(hi)) = (c.score_min, c.score_max)
        && lo > hi
    {
        err("conditions.score_min".into(), format!("{lo} is above score_max {hi}"));
    }
    if let Some(src) = &c.expression
        && src.len() > super::MAX_EXPRESSION_LEN
    {
        err("conditions.expression".into(), format!("longer than {} characters", super::MAX_EXPRESSION_LEN));
    }
    for (i, action) in spec.actions.iter().enumerate() {
        if (action.transactional || action.on_cap.is_some())
            && crate::pressure::Channel::of(action.action_type).is_none()
        {
            let field = if action.transactional { "transactional" } else { "on_cap" };
            err(
                format!("actions[{i}].{field}"),
                format!("{} reaches no one: only emails, SMS, calls and tasks are governed", action.action_type),
            );
        }
        let path = |field: &str| format!("actions[{i}].config.{field}");
        let cfg = &action.config;
        let non_empty = |k: &str| cfg.get(k).and_then(Value::as_str).is_some_and(|s| !s.trim().is_empty());
        match action.action_type {
            ActionType::UpdateScore => match cfg.get("score_delta") {
                Some(v) if v.is_i64() || v.is_u64() => {}
                Some(_) => err(path("score_delta"), "expected an integer (e.g. 5 or -20)".into()),
                None => err(path("score_delta"), "missing: update_score needs an integer score_delta".into()),
            },
            ActionType::AddTag | ActionType::RemoveTag => {
                if !non_empty("tag") {
                    err(path("tag"), format!("{} needs a non-empty string tag", action.action_type));
                }
            }
            ActionType::SetSegment => {
                if !non_empty("segment") {
                    err(path("segment"), "set_segment needs a non-empty string segment".into());
                }
            }
            ActionType::TriggerWebhook => match cfg.get("url").and_then(Value::as_str) {
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {}
                Some(_) => err(path("url"), "expected an http:// or https:// URL".into()),
                None => err(path("url"), "missing: trigger_webhook needs a url".into()),
            },
            ActionType::SendEmail => {
                let has_content = ["html_content", "text_content", "content"].iter().any(|k| non_empty(k));
                let has_template = non_empty("template");
                if !(has_template || non_empty("subject") && has_content) {
                    err(
                        path("template"),
                        "send_email needs a template, or a subject with html_content or text_content".into(),
                    );
                }
            }
            ActionType::SendSms => {
                if !non_empty("content") && !non_empty("template") {
                    err(path("content"), "send_sms needs a content (or template) string".into());
                }
            }
            ActionType::CreateTask | ActionType::ScheduleCall | ActionType::PauseCampaign => {}
        }
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
