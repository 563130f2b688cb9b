//! The seed's six default rules, exactly as PHASE_3_GUIDE.md states them. Where the guide
//! is loose the choice is written down in `docs/rules.md`:
//! - the purchase rule fires for amount > 50 (50.00 does not);
//! - the bounce rule fires on hard bounces only;
//! - the high-score threshold is 80.

use serde_json::json;

use super::RuleSpec;

pub fn default_rule_specs() -> Vec<RuleSpec> {
    let rules = json!([
        {
            "rule_id": "rule_email_opened",
            "trigger": "email_opened",
            "conditions": {"segment": ["Standard", "VIP"]},
            "actions": [
                {"action_type": "update_score", "config": {"score_delta": 5}, "delay_minutes": 0}
            ],
            "enabled": true,
            "priority": 40,
            "description": "Email opened → +5 score"
        },
        {
            "rule_id": "rule_email_clicked",
            "trigger": "email_clicked",
            "conditions": {"segment": ["Standard", "VIP"]},
            "actions": [
                {"action_type": "update_score", "config": {"score_delta": 15}, "delay_minutes": 0},
                {"action_type": "add_tag", "config": {"tag": "engaged"}, "delay_minutes": 0}
            ],
            "enabled": true,
            "priority": 60,
            "description": "Link clicked → +15 score + tag \"engaged\""
        },
        {
            "rule_id": "rule_email_bounce",
            "trigger": "email_bounce",
            "conditions": {"bounce_type": "hard"},
            "actions": [
                {"action_type": "update_score", "config": {"score_delta": -20}, "delay_minutes": 0},
                {"action_type": "add_tag", "config": {"tag": "invalid_email"}, "delay_minutes": 0}
            ],
            "enabled": true,
            "priority": 80,
            "description": "Email bounce (hard) → -20 score + flag"
        },
        {
            "rule_id": "rule_purchase",
            "trigger": "purchase",
            "conditions": {"minimum_amount": 50.0},
            "actions": [
                {"action_type": "update_score", "config": {"score_delta": 50}, "delay_minutes": 0},
                {"action_type": "send_email", "config": {"template": "thank_you"}, "delay_minutes": 5},
                {"action_type": "create_task",
                 "config": {"task": "follow_up_purchase", "title": "Relancer le client après son achat"},
                 "delay_minutes": 1440}
            ],
            "enabled": true,
            "priority": 90,
            "description": "Purchase completed (amount > 50€) → +50 score + thank-you email + follow-up task"
        },
        {
            "rule_id": "rule_high_score",
            "trigger": "lead_score_high",
            "conditions": {"score_threshold": 80},
            "actions": [
                {"action_type": "send_email", "config": {"template": "vip_offer"}, "delay_minutes": 0},
                {"action_type": "schedule_call", "config": {"reason": "vip_follow_up"}, "delay_minutes": 120}
            ],
            "enabled": true,
            "priority": 95,
            "description": "High score (crosses 80) → VIP workflow"
        },
        {
            "rule_id": "rule_unsubscribe",
            "trigger": "unsubscribe",
            "conditions": {},
            "actions": [
                {"action_type": "update_score", "config": {"score_delta": -100}, "delay_minutes": 0},
                {"action_type": "add_tag", "config": {"tag": "unsubscribed"}, "delay_minutes": 0}
            ],
            "enabled": true,
            "priority": 100,
            "description": "Unsubscribe → respect opt-out"
        }
    ]);
    serde_json::from_value(rules).expect("default rules deserialize")
}
