use super::*;
use crate::rules::RuleSet;

fn errors_of(text: &str, format: RuleFormat) -> Vec<String> {
    match RuleSet::parse(text, format) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn every_problem_is_reported_with_rule_and_path() {
    let text = r#"[
          {"rule_id": "a", "trigger": "email_openned", "priority": 0,
           "actions": [{"action_type": "update_score", "config": {"score_delta": "5"}, "delay_minutes": -3}]},
          {"rule_id": "b", "trigger": "purchase", "priority": 50,
           "actions": [{"action_type": "add_tag", "config": {}},
                       {"action_type": "trigger_webhook", "config": {}},
                       {"action_type": "send_email", "config": {"subject": "x"}},
                       {"action_type": "fly"}]},
          {"rule_id": "b", "trigger": "purchase", "priority": 101, "conditions": {"segments": ["VIP"]},
           "actions": [{"action_type": "update_score", "config": {}}]},
          {"rule_id": "c", "trigger": "purchase", "priority": 5,
           "conditions": {"expression": "contact.score >"},
           "actions": [{"action_type": "update_score", "config": {"score_delta": 1}}]}
        ]"#;
    let errs = errors_of(text, RuleFormat::Json);
    let expect = [
        r#"rule "a" (#1) trigger: unknown trigger "email_openned""#,
        r#"rule "a" (#1) priority: 0 is outside 1..100"#,
        r#"rule "a" (#1) actions[0].delay_minutes: -3 is negative"#,
        r#"rule "b" (#2) actions[3].action_type: unknown action type "fly""#,
        r#"rule "b" (#3) conditions.segments: unknown field"#,
        r#"rule "b" (#3) priority: 101 is outside 1..100"#,
    ];
    for e in expect {
        assert!(errs.iter().any(|x| x.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    // A file with structural errors stops before semantic checks of the broken rules, so
    // check the semantic ones on a structurally sound file.
    let text2 = r#"[
          {"rule_id": "a", "trigger": "purchase", "priority": 5,
           "actions": [{"action_type": "update_score", "config": {"score_delta": "5"}}]},
          {"rule_id": "b", "trigger": "purchase", "priority": 50,
           "actions": [{"action_type": "add_tag", "config": {}},
                       {"action_type": "trigger_webhook", "config": {}},
                       {"action_type": "send_email", "config": {"subject": "x"}}]},
          {"rule_id": "b", "trigger": "purchase", "priority": 5,
           "actions": [{"action_type": "update_score", "config": {}}]},
          {"rule_id": "c", "trigger": "purchase", "priority": 5,
           "conditions": {"expression": "contact.score >"},
           "actions": [{"action_type": "update_score", "config": {"score_delta": 1}}]}
        ]"#;
    let errs = errors_of(text2, RuleFormat::Json);
    let expect = [
        r#"rule "a" (#1) actions[0].config.score_delta: expected an integer"#,
        r#"rule "b" (#2) actions[0].config.tag: add_tag needs"#,
        r#"rule "b" (#2) actions[1].config.url: missing"#,
        r#"rule "b" (#2) actions[2].config.template: send_email needs"#,
        r#"rule "b" (#3) rule_id: duplicate rule id (first used by rule #2)"#,
        r#"rule "b" (#3) actions[0].config.score_delta: missing"#,
        r#"rule "c" (#4) conditions.expression:"#,
    ];
    for e in expect {
        assert!(errs.iter().any(|x| x.starts_with(e)), "missing {e:?} in {errs:#?}");
    }
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
}

#[test]
fn toml_authoring_format() {
    let text = r#"
[[rule]]
rule_id = "vip_big_purchase"
trigger = "purchase"
priority = 70
description = "Big VIP purchases get a personal call"
[rule.conditions]
segment = ["VIP"]
minimum_amount = 500
expression = "event.amount > contact.total_spent / 2"
[[rule.actions]]
action_type = "schedule_call"
delay_minutes = 60
config = { reason = "Merci pour votre commande" }
"#;
    let set = RuleSet::parse(text, RuleFormat::Toml).unwrap();
    assert_eq!(set.rules()[0].actions[0].delay_minutes, 60);
    assert!(set.rules()[0].expression.is_some());

    let bad = "[[rule]]\nrule_id = \"x\"\ntrigger = \"purchase\"\npriority = 10\n";
    let errs = errors_of(bad, RuleFormat::Toml);
    assert!(errs[0].contains("actions: missing"), "{errs:?}");
    assert!(errors_of("rule = 3", RuleFormat::Toml)[0].contains("array of tables"));
    assert!(errors_of("[[rule]", RuleFormat::Toml)[0].contains("invalid TOML"));
}

#[test]
fn format_detection() {
    assert_eq!(RuleFormat::detect("r.toml", "["), RuleFormat::Toml);
    assert_eq!(RuleFormat::detect("r.txt", " [ {"), RuleFormat::Json);
    assert_eq!(RuleFormat::detect("-", "[[rule]]"), RuleFormat::Toml);
    assert_eq!(RuleFormat::detect("-", "rule_id = 1"), RuleFormat::Toml);
}
