//! The expression language's view of a contact, an event and a run. Built field by
//! field: going through `serde_json::Value` first cost twice as much, and this runs once
//! per event that reaches an expression.

use chrono::{DateTime, Utc};
use serde_json::Value;
use zen_expression::Variable;

use crate::contact::Contact;
use crate::event::{BounceType, Event, Trigger};

/// `{contact: …, event: …}`, for conditions and goals.
pub(crate) fn expression_context(contact: &Contact, event: &Event) -> Variable {
    let contact_var = contact_variable(contact, Some(event.occurred_at));
    object([("contact", contact_var), ("event", event_variable(event))])
}

/// `{contact: …, run: {rule_id, started_at}}`, for a step's `skip_if` (no event: the step
/// is due, nothing happened; `days_since_purchase` counts to `now`).
pub(crate) fn run_expression_context(
    contact: &Contact,
    rule_id: &str,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Variable {
    let run = object([("rule_id", text(rule_id)), ("started_at", time(Some(started_at)))]);
    object([("contact", contact_variable(contact, Some(now))), ("run", run)])
}

fn text(s: &str) -> Variable {
    Variable::String(s.into())
}
fn opt_text(s: Option<&str>) -> Variable {
    s.map(text).unwrap_or(Variable::Null)
}
fn num(n: impl Into<serde_json::Number>) -> Variable {
    Variable::from(Value::Number(n.into()))
}
fn float(f: f64) -> Variable {
    serde_json::Number::from_f64(f).map(num).unwrap_or(Variable::Null)
}
fn time(t: Option<DateTime<Utc>>) -> Variable {
    t.map(|t| text(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))).unwrap_or(Variable::Null)
}
fn object<const N: usize>(fields: [(&str, Variable); N]) -> Variable {
    let mut map = zen_expression::variable::VariableMap::with_capacity(N);
    for (k, v) in fields {
        map.insert(k.into(), v);
    }
    Variable::from_object(map)
}
fn attributes(map: &serde_json::Map<String, Value>) -> Variable {
    if map.is_empty() {
        return Variable::empty_object();
    }
    Variable::from(Value::Object(map.clone()))
}

/// The contact as expressions see it; `days_since_purchase` counts to `at` (the event's
/// time; `None`: unknown, null).
fn contact_variable(contact: &Contact, at: Option<DateTime<Utc>>) -> Variable {
    let e = &contact.engagement;
    object([
        ("email", opt_text(contact.email.as_ref().map(|e| e.as_str()))),
        ("client_code", opt_text(contact.client_code.as_ref().map(|c| c.as_str()))),
        ("first_name", opt_text(contact.first_name.as_deref())),
        ("last_name", opt_text(contact.last_name.as_deref())),
        ("phone", opt_text(contact.phone.as_deref())),
        ("segment", text(&contact.segment)),
        ("score", num(contact.score.value())),
        ("tags", Variable::from_array(contact.tags.iter().map(|t| text(t)).collect())),
        ("rfm_score", contact.rfm_score.map(float).unwrap_or(Variable::Null)),
        ("purchases", num(contact.purchases)),
        ("total_spent", float(contact.total_spent)),
        ("last_purchase_at", time(contact.last_purchase_at)),
        ("last_activity_at", time(contact.last_activity_at)),
        (
            "engagement",
            object([
                ("opens", num(e.opens)),
                ("clicks", num(e.clicks)),
                ("page_visits", num(e.page_visits)),
                ("form_submits", num(e.form_submits)),
                ("soft_bounces", num(e.soft_bounces)),
            ]),
        ),
        ("engagement_events", num(e.events())),
        (
            "days_since_purchase",
            contact
                .last_purchase_at
                .zip(at)
                .map(|(bought, at)| num((at - bought).num_days()))
                .unwrap_or(Variable::Null),
        ),
        ("unsubscribed", Variable::Bool(contact.unsubscribed)),
        ("complained", Variable::Bool(contact.complained)),
        ("email_invalid", Variable::Bool(contact.email_invalid)),
        ("attributes", attributes(&contact.attributes)),
        ("scores", scores(&contact.scores)),
    ])
}

/// `contact.scores.<name>`: each named score's value (settled to `now` before any
/// condition reads it).
fn scores(scores: &crate::named_score::Scores) -> Variable {
    let mut map = zen_expression::variable::VariableMap::with_capacity(scores.len());
    for (name, v) in scores {
        map.insert(name.as_str().into(), num(v.value));
    }
    Variable::from_object(map)
}

fn event_variable(event: &Event) -> Variable {
    object([
        ("source", text(event.source.as_str())),
        ("name", text(&event.name)),
        ("trigger", opt_text(event.trigger.map(Trigger::as_str))),
        ("occurred_at", time(Some(event.occurred_at))),
        ("amount", event.amount.map(float).unwrap_or(Variable::Null)),
        ("link", opt_text(event.link.as_deref())),
        ("bounce_type", opt_text(event.bounce_type.map(BounceType::as_str))),
        ("page", opt_text(event.page.as_deref())),
        ("product_id", opt_text(event.product_id.as_deref())),
        ("message_id", opt_text(event.message_id.as_deref())),
        ("campaign_id", event.campaign_id.map(num).unwrap_or(Variable::Null)),
        ("complaint", Variable::Bool(event.complaint)),
        ("attributes", attributes(&event.attributes)),
    ])
}
