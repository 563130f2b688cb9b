//! Contacts: search and filters with server-side pages, and one contact's story — score
//! over time, timeline of events and what each caused, tags, suppression, pending actions.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use relance_core::pressure::{CapUsage, Channel, Pressure};
use serde::Deserialize;

use super::layout::{self, Nav, json_data, query, state_badge, time, urlencode};
use super::locale::Locale;
use super::text::T;
use super::{problem, store_problem};
use crate::ops::explain::{Explanation, explain};
use crate::store::jobs::{JobFilter, JobRow, JobState};
use crate::store::{ContactFilter, ContactKey, EventQuery, EventRow, HistoryRow, StoredContact};
use crate::web::AppState;
use crate::web::session::Session;

const PAGE: usize = 50;
/// Events on a contact's timeline: the newest ones.
const TIMELINE: usize = 500;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    search: Option<String>,
    segment: Option<String>,
    tag: Option<String>,
    score_min: Option<String>,
    score_max: Option<String>,
    cursor: Option<String>,
}

fn score_param(raw: Option<&str>, name: &str) -> Result<Option<u8>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.parse::<u8>() {
            Ok(v) if v <= 100 => Ok(Some(v)),
            _ => Err(format!("{name} must be a whole number from 0 to 100 (got {s:?}).")),
        },
    }
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

pub async fn list(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(cache): Extension<std::sync::Arc<super::OverviewCache>>,
    Query(q): Query<ListQuery>,
) -> Response {
    let l = &session.locale;
    let (score_min, score_max) = match (
        score_param(q.score_min.as_deref(), "Minimum score"),
        score_param(q.score_max.as_deref(), "Maximum score"),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return problem(StatusCode::BAD_REQUEST, &session, &e),
    };
    let after_id = q.cursor.as_deref().and_then(|c| c.parse::<i64>().ok()).unwrap_or(0);
    let filter = ContactFilter {
        search: nonempty(&q.search),
        segment: nonempty(&q.segment),
        tag: nonempty(&q.tag),
        score_min,
        score_max,
        updated_since: None,
        after_id,
        limit: PAGE,
    };
    let contacts = match app.store.list_contacts(filter).await {
        Ok(c) => c,
        Err(e) => return store_problem(&session, e),
    };
    // The segment list comes with the overview's aggregates (shared a few seconds): counting
    // contacts per segment on every page would scan them all.
    let segments = match super::overview::cached(&app, &cache).await {
        Ok(agg) => agg.segments().to_vec(),
        Err(e) => return store_problem(&session, e),
    };
    let next = (contacts.len() == PAGE).then(|| contacts.last().map(|c| c.id)).flatten();
    let filters = [
        ("search", nonempty(&q.search)),
        ("segment", nonempty(&q.segment)),
        ("tag", nonempty(&q.tag)),
        ("score_min", score_min.map(|s| s.to_string())),
        ("score_max", score_max.map(|s| s.to_string())),
    ];
    let body = html! {
        form.filters method="get" action="/ui/contacts" role="search" {
            label { "Email or client code" input type="search" name="search" value=[q.search.as_deref()] placeholder="starts with…"; }
            label { "Segment"
                select name="segment" {
                    option value="" { "Any" }
                    @for (s, n) in &segments {
                        option value=(s) selected[q.segment.as_deref() == Some(s.as_str())] { (s) " (" (n) ")" }
                    }
                }
            }
            label { "Tag" input type="text" name="tag" value=[q.tag.as_deref()]; }
            label { "Score from" input type="number" name="score_min" min="0" max="100" value=[score_min]; }
            label { "to" input type="number" name="score_max" min="0" max="100" value=[score_max]; }
            button.primary type="submit" { "Filter" }
            a href="/ui/contacts" { "Clear" }
        }
        div.scroll {
            table #contacts {
                thead { tr {
                    th scope="col" { "Contact" } th scope="col" { "Client code" } th scope="col" { "Segment" }
                    th.num scope="col" { "Score" } th scope="col" { "Tags" } th scope="col" { "Email status" }
                    th scope="col" { "Updated" }
                } }
                tbody {
                    @for c in &contacts { (row(l, c)) }
                    @if contacts.is_empty() { tr { td colspan="7" { "No contact matches these filters." } } }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if after_id > 0 { a href={"/ui/contacts?" (query(&filters))} { "« First page" } }
            @if let Some(id) = next {
                a rel="next" href={"/ui/contacts?" (query(&[filters.as_slice(), &[("cursor", Some(id.to_string()))]].concat()))} { "Next page »" }
            }
        }
    };
    layout::page(l.t(T::Contacts), Nav::Contacts, &session, body).into_response()
}

fn key_of(c: &StoredContact) -> Option<&str> {
    c.contact.email.as_ref().map(|e| e.as_str()).or(c.contact.client_code.as_ref().map(|k| k.as_str()))
}

fn email_status(c: &StoredContact) -> Markup {
    match c.contact.email_suppression() {
        Some(reason) => {
            html! { span.badge.state-dead { span aria-hidden="true" { "⊘ " } "suppressed: " (reason.as_str()) } }
        }
        None => html! { span.badge.state-done { span aria-hidden="true" { "✓ " } "mailable" } },
    }
}

fn row(l: &Locale, c: &StoredContact) -> Markup {
    let k = &c.contact;
    html! {
        tr {
            td { (layout::contact_link(k.email.as_ref().map(|e| e.as_str()), k.client_code.as_ref().map(|c| c.as_str()))) }
            td { @if let Some(code) = &k.client_code { (code.as_str()) } }
            td { (k.segment) }
            td.num { (k.score.value()) }
            td { @for t in &k.tags { span.tag { (t) } " " } }
            td { (email_status(c)) }
            td { (time(l, c.updated_at)) }
        }
    }
}

pub async fn detail(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Path(raw): Path<String>,
) -> Response {
    let key = match ContactKey::parse(&raw) {
        Ok(k) => k,
        Err(_) => return problem(StatusCode::BAD_REQUEST, &session, "That is neither an email nor a client code."),
    };
    let loaded = async {
        let Some(stored) = app.store.contact(key.clone()).await? else { return Ok(None) };
        let history = app.store.history(key.clone(), 10_000).await?;
        let events = app
            .store
            .events(EventQuery { contact: Some(key.clone()), newest: true, limit: TIMELINE, ..EventQuery::default() })
            .await?;
        let jobs = app.store.jobs(JobFilter { limit: 1000, ..JobFilter::default() }, Some(key.clone())).await?;
        let since = (app.clock)() - chrono::Duration::days(90);
        let filter = crate::store::runs::RunFilter { ended_since: Some(since), limit: 200, ..Default::default() };
        let runs = app.store.runs(filter, Some(key.clone())).await?;
        Ok::<_, crate::store::StoreError>(Some((stored, history, events, jobs, runs)))
    };
    let (stored, history, events, jobs, runs) = match loaded.await {
        Ok(Some(v)) => v,
        Ok(None) => return problem(StatusCode::NOT_FOUND, &session, &format!("No contact {raw:?}.")),
        Err(e) => return store_problem(&session, e),
    };
    let open: Vec<JobRow> =
        jobs.iter().filter(|j| matches!(j.state, JobState::Pending | JobState::Failed)).cloned().collect();
    let mut why = explain(&stored, &history, open);
    let specs = app.rules.current().engine.rules().scores().to_vec();
    why.scores = crate::ops::explain_scores::explain_scores(&stored, &history, &specs, (app.clock)());
    why.runs = runs;
    why.skipped_by_pressure = crate::ops::explain::skipped_by_pressure(
        jobs.iter().filter(|j| j.state == JobState::Skipped).cloned().collect(),
    );
    let title = key_of(&stored).unwrap_or("Contact").to_owned();
    let back = format!("/ui/contacts/{}", urlencode(&raw));
    let usage = cap_usage(&app.settings.dispatch.pressure, &jobs, (app.clock)());
    let body = contact_body(&stored, &why, &history, &events, (&jobs, &usage), &back, &session);
    layout::page(&title, Nav::Contacts, &session, body).into_response()
}

fn contact_body(
    stored: &StoredContact,
    why: &Explanation,
    history: &[HistoryRow],
    events: &[EventRow],
    (jobs, usage): (&[JobRow], &[CapUsage]),
    back: &str,
    session: &Session,
) -> Markup {
    let l = &session.locale;
    let c = &stored.contact;
    // The score chart: the starting score, then every change.
    let mut points: Vec<(i64, i64)> = Vec::new();
    if let Some(first) = why.score.changes.first() {
        points.push((stored.created_at.timestamp_millis().min(first.at.timestamp_millis()), why.score.baseline));
    } else {
        points.push((stored.created_at.timestamp_millis(), why.score.current));
    }
    points.extend(why.score.changes.iter().map(|s| (s.at.timestamp_millis(), s.after)));
    html! {
        div.grid {
            section.card #profile {
                h2 { "Profile" }
                dl.facts {
                    dt { "Email" } dd { @if let Some(e) = &c.email { (e.as_str()) } @else { span.muted { "none" } } }
                    dt { "Client code" } dd { @if let Some(k) = &c.client_code { (k.as_str()) } @else { span.muted { "none" } } }
                    dt { "Segment" } dd { (c.segment) }
                    dt { "Score" } dd #score { strong { (c.score.value()) } " / 100" }
                    @for s in &why.scores {
                        dt { "Score " (s.name) } dd.named-score { strong { (s.value) } }
                    }
                    dt { "Purchases" } dd { (c.purchases) " · " (format!("{:.2}", c.total_spent)) " spent" }
                    dt { "Tags" } dd #tags {
                        @for t in &why.tags {
                            span.tag title=[t.rule_id.as_deref().map(|r| format!("added by {r}"))] { (t.tag) }
                            " "
                        }
                        @if why.tags.is_empty() { span.muted { "none" } }
                    }
                    dt { "Email status" } dd #suppression { (email_status(stored)) }
                    dt { "SMS" } dd {
                        @match &why.suppression.sms {
                            Some(r) => span.badge.state-dead { "suppressed: " (r.as_str()) },
                            None => span.badge.state-done { "allowed" },
                        }
                    }
                    dt { "Created" } dd { (time(l, stored.created_at)) }
                }
                @if !why.suppression.causes.is_empty() {
                    h3 { "Why suppressed" }
                    ul { @for h in &why.suppression.causes {
                        li { (h.field) " since " (time(l, h.at)) @if let Some(r) = &h.rule_id { " (rule " (r) ")" } }
                    } }
                }
            }
            section.card.wide #score-history {
                h2 { "Score over time" }
                div.chart.small { canvas #contact-score-chart role="img" aria-label="The contact's score over time; the breakdown below lists every change" {} }
                (json_data("contact-score-data", &points))
            }
            section.card #explain {
                h2 { "Why this score" }
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Cause" } th.num scope="col" { "Change" } th.num scope="col" { "Score" } } }
                    tbody {
                        tr { td { "start" } td { "formula at creation" } td.num {} td.num { (why.score.baseline) } }
                        @for s in &why.score.changes {
                            tr {
                                td { (time(l, s.at)) }
                                td { @if let Some(r) = &s.rule_id { "rule " (r) } @else { "set by hand or import" } }
                                td.num { @if s.delta >= 0 { "+" } (s.delta) }
                                td.num { (s.after) }
                            }
                        }
                    }
                    tfoot { tr { th scope="row" colspan="3" { "Now" } td.num { strong { (why.score.current) } } } }
                }
            }
            @if !why.scores.is_empty() {
                section.card #named-scores {
                    h2 { "Why these scores" }
                    @for s in &why.scores {
                        table {
                            caption { (s.name) ": " strong { (s.value) } }
                            thead { tr { th scope="col" { "Cause" } th.num scope="col" { "Points" } } }
                            tbody {
                                @for cause in &s.causes {
                                    tr { td { (cause.cause) } td.num { @if cause.points >= 0 && cause.cause != "initial" { "+" } (cause.points) } }
                                }
                            }
                        }
                    }
                }
            }
            section.card #pending {
                h2 { "Pending actions" }
                @if why.pending_actions.is_empty() { p { "Nothing waiting." } }
                ul.plain {
                    @for j in &why.pending_actions {
                        li {
                            (state_badge(l, j.state.as_str())) " "
                            a href={"/ui/actions/" (j.id)} { (j.action_type) } " by " (j.rule_id) ", due " (time(l, j.due_at)) " "
                            @if let Some(r) = &j.reason { span.muted { "(" (r) ") " } }
                            (super::actions::cancel_form(j, back, session))
                        }
                    }
                }
                @if !why.skipped_by_pressure.is_empty() {
                    h3 { "Skipped by contact pressure" }
                    ul.plain #skipped-by-pressure {
                        @for j in why.skipped_by_pressure.iter().take(10) {
                            li { a href={"/ui/actions/" (j.id)} { (j.action_type) } " by " (j.rule_id) ", " (time(l, j.updated_at)) " — skipped: " (j.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
                @if !usage.is_empty() {
                    h3 { "Messages in the current cap windows" }
                    ul.plain #cap-usage {
                        @for u in usage {
                            li {
                                (u.channel.as_str()) ": " strong { (u.used) " of " (u.max) } " in " (u.per_days) " days"
                                @if let Some(at) = u.frees_at { span.muted { " — full; the next slot frees " (time(l, at)) } }
                            }
                        }
                    }
                }
            }
            (super::runs::contact_runs_card(l, &why.runs))
            section.card.wide #timeline {
                h2 { "Timeline" }
                (timeline(l, history, events, jobs))
            }
        }
    }
}

/// Events newest first, each with the changes and actions it caused; changes made by
/// hand or import (no event) appear on their own.
fn timeline(l: &Locale, history: &[HistoryRow], events: &[EventRow], jobs: &[JobRow]) -> Markup {
    let mut changes: HashMap<&str, Vec<&HistoryRow>> = HashMap::new();
    let mut loose: Vec<&HistoryRow> = Vec::new();
    for h in history {
        match h.event_id.as_deref() {
            Some(id) if events.iter().any(|e| e.id == id) => changes.entry(id).or_default().push(h),
            _ => loose.push(h),
        }
    }
    let mut actions: HashMap<&str, Vec<&JobRow>> = HashMap::new();
    for j in jobs {
        if let Some(id) = j.event_id.as_deref() {
            actions.entry(id).or_default().push(j);
        }
    }
    html! {
        ol.timeline {
            @for e in events.iter().rev() {
                li {
                    div.when { (time(l, e.received_at)) }
                    div {
                        strong { (e.event_type) }
                        @if let Some(t) = &e.trigger { " → trigger " code { (t) } }
                        " " span.muted { "(" (e.source) ")" }
                        @if let Some(link) = &e.link { " " span.muted { (link) } }
                        ul.effects {
                            @for h in changes.get(e.id.as_str()).into_iter().flatten() { li { (change(h, true)) } }
                            @for j in actions.get(e.id.as_str()).into_iter().flatten() {
                                li {
                                    (state_badge(l, j.state.as_str())) " "
                                    a href={"/ui/actions/" (j.id)} { (j.action_type) } " by rule " (j.rule_id)
                                    @if j.state == JobState::Pending { ", due " (time(l, j.due_at)) }
                                }
                            }
                        }
                    }
                }
            }
            @for h in loose.iter().rev() {
                li { div.when { (time(l, h.at)) } div { (change(h, false)) } }
            }
            @if events.is_empty() && loose.is_empty() { li { "No events yet." } }
        }
    }
}

/// One change; `from_event` when it is listed under the event that made it.
fn change(h: &HistoryRow, from_event: bool) -> Markup {
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    };
    html! {
        span.field { (h.field) } ": " (show(&h.before)) " → " strong { (show(&h.after)) }
        @if let Some(r) = &h.rule_id {
            " " span.muted { "by rule " (r) }
        } @else if from_event {
            " " span.muted { "(recorded from the event)" }
        } @else {
            " " span.muted { "(by hand or import)" }
        }
    }
}

/// How full the contact's caps are, from its jobs sent (`done`) or being sent.
fn cap_usage(pressure: &Pressure, jobs: &[JobRow], now: DateTime<Utc>) -> Vec<CapUsage> {
    let sent: Vec<(Channel, DateTime<Utc>)> = jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Done | JobState::Running))
        .filter_map(|j| j.action_type.parse().ok().and_then(Channel::of).map(|c| (c, j.updated_at)))
        .collect();
    pressure.usage(&sent, now)
}
