//! Rules written as sentences for the marketer: "montant supérieur à 50,00 €", "après
//! 1 jour", "envoyer l’e-mail « thank_you » (modèle Brevo 12)". The TOML stays the
//! exact form; these are for reading.

use std::collections::HashMap;

use relance_core::rules::{ActionSpec, ConditionsSpec};
use relance_core::{ActionType, BounceType, Trigger};

use super::locale::{Lang, Locale};
use super::text::T;

/// A trigger's name in the reader's language.
pub fn trigger(l: &Locale, t: Trigger) -> &'static str {
    l.t(match t {
        Trigger::EmailOpened => T::TrEmailOpened,
        Trigger::EmailClicked => T::TrEmailClicked,
        Trigger::EmailBounce => T::TrEmailBounce,
        Trigger::PageVisit => T::TrPageVisit,
        Trigger::Purchase => T::TrPurchase,
        Trigger::FormSubmit => T::TrFormSubmit,
        Trigger::TimeBased => T::TrTimeBased,
        Trigger::Unsubscribe => T::TrUnsubscribe,
        Trigger::LeadScoreHigh => T::TrLeadScoreHigh,
    })
}

/// A trigger named by its stored text (unknown ones as they are).
pub fn trigger_named(l: &Locale, name: &str) -> String {
    name.parse::<Trigger>().map_or_else(|_| name.to_owned(), |t| trigger(l, t).to_owned())
}

/// An action type's name.
pub fn action_type(l: &Locale, a: ActionType) -> &'static str {
    l.t(match a {
        ActionType::SendEmail => T::AcSendEmail,
        ActionType::UpdateScore => T::AcUpdateScore,
        ActionType::AddTag => T::AcAddTag,
        ActionType::CreateTask => T::AcCreateTask,
        ActionType::ScheduleCall => T::AcScheduleCall,
        ActionType::PauseCampaign => T::AcPauseCampaign,
        ActionType::SendSms => T::AcSendSms,
        ActionType::TriggerWebhook => T::AcTriggerWebhook,
        ActionType::RemoveTag => T::AcRemoveTag,
        ActionType::SetSegment => T::AcSetSegment,
    })
}

/// An action type named by its stored text.
pub fn action_named(l: &Locale, name: &str) -> String {
    name.parse::<ActionType>().map_or_else(|_| name.to_owned(), |a| action_type(l, a).to_owned())
}

/// `« engaged »` / `“engaged”`.
fn quoted(l: &Locale, s: &str) -> String {
    match l.lang {
        Lang::Fr => format!("«\u{a0}{s}\u{a0}»"),
        Lang::En => format!("“{s}”"),
    }
}

/// A delay as a reader says it: at once, after 5 min, after 2 h 30 min, after 1 day.
pub fn delay(l: &Locale, minutes: u32) -> String {
    if minutes == 0 {
        return l.t(T::DlAtOnce).to_owned();
    }
    let (days, hours, mins) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(l.f(if days == 1 { T::DlDay } else { T::DlDays }, &[&days]));
    }
    if hours > 0 {
        parts.push(format!("{hours}\u{a0}h"));
    }
    if mins > 0 {
        parts.push(format!("{mins}\u{a0}min"));
    }
    l.f(T::DlAfter, &[&parts.join(" ")])
}

/// One action as a sentence, naming the email's template and its Brevo id when mapped.
pub fn action(l: &Locale, a: &ActionSpec, templates: &HashMap<String, i64>) -> String {
    let text = |key: &str| a.config.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let what = match a.action_type {
        ActionType::SendEmail => match text("template") {
            Some(name) => match templates.get(&name) {
                Some(id) => l.f(T::AcEmailTemplateMapped, &[&quoted(l, &name), id]),
                None => l.f(T::AcEmailTemplate, &[&quoted(l, &name)]),
            },
            None => action_type(l, a.action_type).to_owned(),
        },
        ActionType::UpdateScore => {
            let delta = a.config.get("score_delta").and_then(|v| v.as_i64()).unwrap_or(0);
            let score = text("score").map(|s| quoted(l, &s));
            match (delta >= 0, score) {
                (true, None) => l.f(T::AcScorePlus, &[&delta]),
                (false, None) => l.f(T::AcScoreMinus, &[&delta.unsigned_abs()]),
                (true, Some(s)) => l.f(T::AcNamedScorePlus, &[&delta, &s]),
                (false, Some(s)) => l.f(T::AcNamedScoreMinus, &[&delta.unsigned_abs(), &s]),
            }
        }
        ActionType::AddTag | ActionType::RemoveTag | ActionType::SetSegment => {
            let key = if a.action_type == ActionType::SetSegment { "segment" } else { "tag" };
            match text(key) {
                Some(v) => format!("{} {}", action_type(l, a.action_type), quoted(l, &v)),
                None => action_type(l, a.action_type).to_owned(),
            }
        }
        ActionType::CreateTask => match text("title").or_else(|| text("task")) {
            Some(v) => format!("{} {}", action_type(l, a.action_type), quoted(l, &v)),
            None => action_type(l, a.action_type).to_owned(),
        },
        _ => action_type(l, a.action_type).to_owned(),
    };
    let mut out = format!("{what}, {}", delay(l, a.delay_minutes));
    if a.transactional {
        out.push_str(&format!(" ({})", l.t(T::AcTransactional)));
    }
    if let Some(skip) = &a.skip_if {
        let triggers: Vec<String> = skip.triggers.iter().map(|t| trigger(l, *t).to_owned()).collect();
        let mut why = triggers.join(&format!(" {} ", l.t(T::CoOr)));
        if let Some(e) = &skip.expression {
            if !why.is_empty() {
                why.push_str(&format!(" {} ", l.t(T::CoOr)));
            }
            why.push_str(e);
        }
        out.push_str(&format!(" — {}", l.f(T::AcSkippedIf, &[&why])));
    }
    out
}

/// Each condition as a short sentence; empty when the rule always holds.
pub fn conditions(l: &Locale, c: &ConditionsSpec) -> Vec<String> {
    let mut out = Vec::new();
    let list =
        |items: &[String]| items.iter().map(|s| quoted(l, s)).collect::<Vec<_>>().join(&format!(" {} ", l.t(T::CoOr)));
    let all =
        |items: &[String]| items.iter().map(|s| quoted(l, s)).collect::<Vec<_>>().join(&format!(" {} ", l.t(T::CoAnd)));
    if let Some(s) = &c.segment {
        out.push(l.f(T::CoSegment, &[&list(s)]));
    }
    if let Some(a) = c.minimum_amount {
        out.push(l.f(T::CoAmountOver, &[&l.amount(a)]));
    }
    if let Some(a) = c.maximum_amount {
        out.push(l.f(T::CoAmountAtMost, &[&l.amount(a)]));
    }
    let score = c.score.as_deref().map_or_else(|| l.t(T::CoLeadScore).to_owned(), |s| quoted(l, s));
    if let Some(t) = c.score_threshold {
        out.push(l.f(T::CoScoreAtLeast, &[&score, &t]));
    }
    match (c.score_min, c.score_max) {
        (Some(a), Some(b)) => out.push(l.f(T::CoScoreBetween, &[&score, &a, &b])),
        (Some(a), None) => out.push(l.f(T::CoScoreAtLeast, &[&score, &a])),
        (None, Some(b)) => out.push(l.f(T::CoScoreAtMost, &[&score, &b])),
        (None, None) => {}
    }
    if !c.tags_any.is_empty() {
        out.push(l.f(T::CoTagsAny, &[&list(&c.tags_any)]));
    }
    if !c.tags_all.is_empty() {
        out.push(l.f(T::CoTagsAll, &[&all(&c.tags_all)]));
    }
    if !c.tags_none.is_empty() {
        out.push(l.f(T::CoTagsNone, &[&list(&c.tags_none)]));
    }
    if let Some(b) = c.bounce_type {
        out.push(l.t(if b == BounceType::Hard { T::CoHardBounce } else { T::CoSoftBounce }).to_owned());
    }
    if let Some(d) = c.min_days_since_purchase {
        out.push(l.f(T::CoDaysSincePurchase, &[&d]));
    }
    if let Some(d) = c.min_days_since_activity {
        out.push(l.f(T::CoDaysSinceActivity, &[&d]));
    }
    if let Some(e) = &c.expression {
        out.push(l.f(T::CoExpression, &[e]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fr() -> Locale {
        Locale { lang: Lang::Fr, ..Locale::default() }
    }

    fn en() -> Locale {
        Locale { lang: Lang::En, ..Locale::default() }
    }

    #[test]
    fn delays_are_said_in_days_hours_and_minutes() {
        assert_eq!(delay(&en(), 0), "at once");
        assert_eq!(delay(&en(), 1440), "after 1 day");
        assert_eq!(delay(&fr(), 1440), "après 1 jour");
        assert_eq!(delay(&en(), 150), "after 2\u{a0}h 30\u{a0}min");
        assert_eq!(delay(&fr(), 4320), "après 3 jours");
    }

    #[test]
    fn conditions_read_as_sentences_with_the_currency() {
        let c = ConditionsSpec { minimum_amount: Some(50.0), tags_none: vec!["vip".into()], ..Default::default() };
        assert_eq!(conditions(&en(), &c), ["amount over €50.00", "no tag “vip”"]);
        assert_eq!(conditions(&fr(), &c), ["montant supérieur à 50,00\u{a0}€", "aucune étiquette «\u{a0}vip\u{a0}»"]);
        assert!(conditions(&en(), &ConditionsSpec::default()).is_empty());
    }

    #[test]
    fn an_email_names_its_template_and_brevo_id() {
        let spec: ActionSpec = serde_json::from_value(serde_json::json!(
            {"action_type": "send_email", "config": {"template": "thank_you"}, "delay_minutes": 5}
        ))
        .unwrap();
        let templates = HashMap::from([("thank_you".to_owned(), 12)]);
        assert_eq!(
            action(&en(), &spec, &templates),
            "send the email “thank_you” (Brevo template 12), after 5\u{a0}min"
        );
        assert_eq!(action(&fr(), &spec, &HashMap::new()), "envoyer l’e-mail «\u{a0}thank_you\u{a0}», après 5\u{a0}min");
        let score: ActionSpec = serde_json::from_value(serde_json::json!(
            {"action_type": "update_score", "config": {"score_delta": -20}}
        ))
        .unwrap();
        assert_eq!(action(&fr(), &score, &templates), "retirer 20 points au score, immédiatement");
    }
}
