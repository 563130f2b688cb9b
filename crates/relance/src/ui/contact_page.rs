//! One contact's story: profile, score over time and why, pending actions and caps,
//! follow-up runs, and the timeline of events with what each caused.

use std::collections::HashMap;

use maud::{Markup, html};
use relance_core::pressure::CapUsage;

use super::describe;
use super::layout::{json_data, state_badge, time};
use super::locale::Locale;
use super::text::T;
use crate::ops::explain::Explanation;
use crate::store::jobs::{JobRow, JobState};
use crate::store::{EventRow, HistoryRow, StoredContact};
use crate::web::session::Session;

/// Rule ids to their descriptions, so a page says what a rule does, not its id.
pub struct RuleNames(HashMap<String, String>);

impl RuleNames {
    pub fn of(rules: &[relance_core::rules::RuleSpec]) -> RuleNames {
        RuleNames(
            rules
                .iter()
                .filter(|r| !r.description.trim().is_empty())
                .map(|r| (r.rule_id.clone(), r.description.clone()))
                .collect(),
        )
    }

    /// The description with the id as its title; the id alone for a rule no longer in force.
    pub fn show(&self, rule_id: &str) -> Markup {
        match self.0.get(rule_id) {
            Some(d) => html! { span.rule title=(rule_id) { (d) } },
            None => html! { code { (rule_id) } },
        }
    }
}

pub struct ContactView<'a> {
    pub stored: &'a StoredContact,
    pub why: &'a Explanation,
    pub history: &'a [HistoryRow],
    pub events: &'a [EventRow],
    pub jobs: &'a [JobRow],
    pub usage: &'a [CapUsage],
    pub rules: &'a RuleNames,
    pub back: &'a str,
}

pub fn body(v: &ContactView<'_>, session: &Session) -> Markup {
    let l = &session.locale;
    let (stored, why, rules) = (v.stored, v.why, v.rules);
    let c = &stored.contact;
    // The score chart: the starting score, then every change.
    let mut points: Vec<(i64, i64)> = Vec::new();
    if let Some(first) = why.score.changes.first() {
        points.push((stored.created_at.timestamp_millis().min(first.at.timestamp_millis()), why.score.baseline));
    } else {
        points.push((stored.created_at.timestamp_millis(), why.score.current));
    }
    points.extend(why.score.changes.iter().map(|s| (s.at.timestamp_millis(), s.after)));
    let none = html! { span.muted { (l.t(T::None_)) } };
    html! {
        div.grid {
            section.card #profile {
                h2 { (l.t(T::CtProfile)) }
                dl.facts {
                    dt { (l.t(T::CtEmail)) } dd { @if let Some(e) = &c.email { (e.as_str()) } @else { (none) } }
                    dt { (l.t(T::CtClientCode)) } dd { @if let Some(k) = &c.client_code { (k.as_str()) } @else { (none) } }
                    dt { (l.t(T::CtSegment)) } dd { (c.segment) }
                    dt { (l.t(T::CtScore)) } dd #score { strong { (c.score.value()) } " / 100" }
                    @for s in &why.scores {
                        dt { (l.t(T::CtScore)) " " (s.name) } dd.named-score { strong { (s.value) } }
                    }
                    dt { (l.t(T::CtPurchases)) } dd { (l.f(T::CtSpent, &[&c.purchases, &l.amount(c.total_spent)])) }
                    dt { (l.t(T::CtTags)) } dd #tags {
                        @for t in &why.tags {
                            span.tag title=[t.rule_id.as_deref().map(|r| l.f(T::CtAddedBy, &[&r]))] { (t.tag) }
                            " "
                        }
                        @if why.tags.is_empty() { (none) }
                    }
                    dt { (l.t(T::CtEmailStatus)) } dd #suppression { (super::contacts::email_status(l, stored)) }
                    dt { (l.t(T::CtSms)) } dd #sms {
                        @match (&why.suppression.sms, &c.phone) {
                            (Some(r), _) => span.badge.state-dead { (l.f(T::CtSuppressed, &[&r.as_str()])) },
                            (None, None) => span.muted { (l.t(T::CtNoPhone)) },
                            (None, Some(_)) => span.badge.state-done { (l.t(T::CtSmsAllowed)) },
                        }
                    }
                    dt { (l.t(T::Created)) } dd { (time(l, stored.created_at)) }
                }
                @if !why.suppression.causes.is_empty() {
                    h3 { (l.t(T::CtWhySuppressed)) }
                    ul { @for h in &why.suppression.causes {
                        li {
                            (l.f(T::CtSince, &[&h.field, &l.datetime(h.at)]))
                            @if let Some(r) = &h.rule_id { " (" (rules.show(r)) ")" }
                        }
                    } }
                }
            }
            section.card.wide #score-history {
                h2 { (l.t(T::CtScoreOverTime)) }
                div.chart.small { canvas #contact-score-chart role="img" aria-label=(l.t(T::CtScoreChartLabel)) {} }
                (json_data("contact-score-data", &points))
            }
            section.card #explain {
                h2 { (l.t(T::CtWhyScore)) }
                table {
                    thead { tr {
                        th scope="col" { (l.t(T::CtWhen)) } th scope="col" { (l.t(T::CtCause)) }
                        th.num scope="col" { (l.t(T::CtChange)) } th.num scope="col" { (l.t(T::CtScore)) }
                    } }
                    tbody {
                        tr { td { (l.t(T::CtStart)) } td { (l.t(T::CtFormula)) } td.num {} td.num { (why.score.baseline) } }
                        @for s in &why.score.changes {
                            tr {
                                td { (time(l, s.at)) }
                                td { @if let Some(r) = &s.rule_id { (rules.show(r)) } @else { (l.t(T::CtByHand)) } }
                                td.num { @if s.delta >= 0 { "+" } (s.delta) }
                                td.num { (s.after) }
                            }
                        }
                    }
                    tfoot { tr { th scope="row" colspan="3" { (l.t(T::CtNow)) } td.num { strong { (why.score.current) } } } }
                }
            }
            @if !why.scores.is_empty() {
                section.card #named-scores {
                    h2 { (l.t(T::CtWhyScores)) }
                    @for s in &why.scores {
                        table {
                            caption { (s.name) ": " strong { (s.value) } }
                            thead { tr { th scope="col" { (l.t(T::CtCause)) } th.num scope="col" { (l.t(T::CtPoints)) } } }
                            tbody {
                                @for cause in &s.causes {
                                    tr { td { (cause.cause) } td.num { @if cause.points >= 0 && cause.cause != "initial" { "+" } (cause.points) } }
                                }
                            }
                        }
                    }
                }
            }
            (pending(v, session))
            (super::runs::contact_runs_card(l, &why.runs, rules))
            section.card.wide #timeline {
                h2 { (l.t(T::CtTimeline)) }
                (timeline(l, v))
            }
        }
    }
}

fn pending(v: &ContactView<'_>, session: &Session) -> Markup {
    let l = &session.locale;
    let (why, rules) = (v.why, v.rules);
    html! {
        section.card #pending {
            h2 { (l.t(T::CtPending)) }
            @if why.pending_actions.is_empty() { p { (l.t(T::CtNothingWaiting)) } }
            ul.plain {
                @for j in &why.pending_actions {
                    li {
                        (state_badge(l, j.state.as_str())) " "
                        a href={"/ui/actions/" (j.id)} { (describe::action_named(l, &j.action_type)) } " "
                        (l.t(T::By)) " " (rules.show(&j.rule_id)) ", " (l.f(T::CtDue, &[&l.datetime(j.due_at)])) " "
                        @if let Some(r) = &j.reason { span.muted { "(" (r) ") " } }
                        (super::actions::cancel_form(l, j, v.back, session))
                    }
                }
            }
            @if !why.skipped_by_pressure.is_empty() {
                h3 { (l.t(T::CtSkippedByPressure)) }
                ul.plain #skipped-by-pressure {
                    @for j in why.skipped_by_pressure.iter().take(10) {
                        li {
                            a href={"/ui/actions/" (j.id)} { (describe::action_named(l, &j.action_type)) } " "
                            (l.t(T::By)) " " (rules.show(&j.rule_id)) ", " (time(l, j.updated_at)) " — "
                            (l.f(T::CtSkipped, &[&j.last_error.as_deref().unwrap_or("")]))
                        }
                    }
                }
            }
            @if !v.usage.is_empty() {
                h3 { (l.t(T::CtCapWindows)) }
                ul.plain #cap-usage {
                    @for u in v.usage {
                        li {
                            (u.channel.as_str()) ": " strong { (l.f(T::CtCapUse, &[&u.used, &u.max])) } (l.f(T::CtInDays, &[&u.per_days]))
                            @if let Some(at) = u.frees_at { span.muted { (l.f(T::CtCapFull, &[&l.datetime(at)])) } }
                        }
                    }
                }
            }
        }
    }
}

/// Events newest first, each with the changes and actions it caused; changes made by
/// hand or import (no event) appear on their own. An event is placed when it happened;
/// when it was received noticeably later (a delayed webhook, an import), both are shown.
fn timeline(l: &Locale, v: &ContactView<'_>) -> Markup {
    let mut changes: HashMap<&str, Vec<&HistoryRow>> = HashMap::new();
    let mut loose: Vec<&HistoryRow> = Vec::new();
    for h in v.history {
        match h.event_id.as_deref() {
            Some(id) if v.events.iter().any(|e| e.id == id) => changes.entry(id).or_default().push(h),
            _ => loose.push(h),
        }
    }
    let mut actions: HashMap<&str, Vec<&JobRow>> = HashMap::new();
    for j in v.jobs {
        if let Some(id) = j.event_id.as_deref() {
            actions.entry(id).or_default().push(j);
        }
    }
    let late = |e: &EventRow| (e.received_at - e.timestamp).num_seconds().abs() >= 60;
    html! {
        ol.timeline {
            @for e in v.events.iter().rev() {
                li {
                    div.when {
                        (time(l, e.timestamp))
                        @if late(e) { br; span.muted.received { (l.f(T::CtReceived, &[&l.datetime(e.received_at)])) } }
                    }
                    div {
                        strong { (e.event_type) }
                        @if let Some(t) = &e.trigger { (l.t(T::CtToTrigger)) (describe::trigger_named(l, t)) }
                        " " span.muted { "(" (e.source) ")" }
                        @if let Some(link) = &e.link { " " span.muted { (link) } }
                        ul.effects {
                            @for h in changes.get(e.id.as_str()).into_iter().flatten() { li { (change(l, v.rules, h, true)) } }
                            @for j in actions.get(e.id.as_str()).into_iter().flatten() {
                                li {
                                    (state_badge(l, j.state.as_str())) " "
                                    a href={"/ui/actions/" (j.id)} { (describe::action_named(l, &j.action_type)) } " "
                                    (l.t(T::By)) " " (v.rules.show(&j.rule_id))
                                    @if j.state == JobState::Pending { ", " (l.f(T::CtDue, &[&l.datetime(j.due_at)])) }
                                }
                            }
                        }
                    }
                }
            }
            @for h in loose.iter().rev() {
                li { div.when { (time(l, h.at)) } div { (change(l, v.rules, h, false)) } }
            }
            @if v.events.is_empty() && loose.is_empty() { li { (l.t(T::CtNoEvents)) } }
        }
    }
}

/// One change; `from_event` when it is listed under the event that made it.
fn change(l: &Locale, rules: &RuleNames, h: &HistoryRow, from_event: bool) -> Markup {
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    };
    html! {
        span.field { (h.field) } ": " (show(&h.before)) " → " strong { (show(&h.after)) }
        @if let Some(r) = &h.rule_id {
            " " span.muted { (l.t(T::By)) " " (rules.show(r)) }
        } @else if from_event {
            " " span.muted { (l.t(T::CtFromEvent)) }
        } @else {
            " " span.muted { (l.t(T::CtHandOrImport)) }
        }
    }
}
