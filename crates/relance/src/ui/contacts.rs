//! Contacts: search and filters with server-side pages, and the handler of one contact's
//! page (drawn by `contact_page`).

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use relance_core::pressure::{CapUsage, Channel, Pressure};
use serde::Deserialize;

use super::contact_page::{ContactView, RuleNames};
use super::layout::{self, Nav, query, time, urlencode};
use super::locale::Locale;
use super::text::T;
use super::{problem, store_problem};
use crate::ops::explain::explain;
use crate::store::jobs::{JobFilter, JobRow, JobState};
use crate::store::{ContactFilter, ContactKey, EventQuery, StoredContact};
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

fn score_param(l: &Locale, raw: Option<&str>, name: T) -> Result<Option<u8>, String> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => match s.parse::<u8>() {
            Ok(v) if v <= 100 => Ok(Some(v)),
            _ => Err(l.f(T::CtScoreRange, &[&l.t(name), &format!("{s:?}")])),
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
        score_param(l, q.score_min.as_deref(), T::CtScoreFrom),
        score_param(l, q.score_max.as_deref(), T::CtScoreTo),
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
    let filtered = filters.iter().any(|(_, v)| v.is_some());
    let body = html! {
        @if layout::can(&session, crate::access::Role::Editor) { (super::contact_import::upload_form(l, &session)) }
        form.filters method="get" action="/ui/contacts" role="search" {
            label { (l.t(T::CtSearch)) input type="search" name="search" value=[q.search.as_deref()] placeholder=(l.t(T::CtStartsWith)); }
            label { (l.t(T::CtSegment))
                select name="segment" {
                    option value="" { (l.t(T::Any)) }
                    @for (s, n) in &segments {
                        option value=(s) selected[q.segment.as_deref() == Some(s.as_str())] { (s) " (" (n) ")" }
                    }
                }
            }
            label { (l.t(T::CtTag)) input type="text" name="tag" value=[q.tag.as_deref()]; }
            label { (l.t(T::CtScoreFrom)) input type="number" name="score_min" min="0" max="100" value=[score_min]; }
            label { (l.t(T::CtScoreTo)) input type="number" name="score_max" min="0" max="100" value=[score_max]; }
            button.primary type="submit" { (l.t(T::Filter)) }
            a href="/ui/contacts" { (l.t(T::Clear)) }
        }
        div.scroll {
            table #contacts {
                thead { tr {
                    th scope="col" { (l.t(T::Contact)) } th scope="col" { (l.t(T::CtClientCode)) } th scope="col" { (l.t(T::CtSegment)) }
                    th.num scope="col" { (l.t(T::CtScore)) } th scope="col" { (l.t(T::CtTags)) } th scope="col" { (l.t(T::CtEmailStatus)) }
                    th scope="col" { (l.t(T::Updated)) }
                } }
                tbody {
                    @for c in &contacts { (row(l, c)) }
                    @if contacts.is_empty() {
                        tr { td colspan="7" {
                            // Without a filter, an empty list means no contact at all.
                            @if filtered || after_id > 0 { (l.t(T::CtNoMatch)) } @else { (l.t(T::CtNoContacts)) }
                        } }
                    }
                }
            }
        }
        nav.pager aria-label=(l.t(T::CtPages)) {
            @if after_id > 0 { a href={"/ui/contacts?" (query(&filters))} { (l.t(T::CtFirstPage)) } }
            @if let Some(id) = next {
                a rel="next" href={"/ui/contacts?" (query(&[filters.as_slice(), &[("cursor", Some(id.to_string()))]].concat()))} { (l.t(T::CtNextPage)) }
            }
        }
    };
    layout::page(l.t(T::Contacts), Nav::Contacts, &session, body).into_response()
}

fn key_of(c: &StoredContact) -> Option<&str> {
    c.contact.email.as_ref().map(|e| e.as_str()).or(c.contact.client_code.as_ref().map(|k| k.as_str()))
}

pub fn email_status(l: &Locale, c: &StoredContact) -> Markup {
    match c.contact.email_suppression() {
        Some(reason) => html! {
            span.badge.state-dead { span aria-hidden="true" { "⊘ " } (l.f(T::CtSuppressed, &[&reason.as_str()])) }
        },
        None => html! { span.badge.state-done { span aria-hidden="true" { "✓ " } (l.t(T::CtMailable)) } },
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
            td { (email_status(l, c)) }
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
        Err(_) => return not_found(&session, StatusCode::BAD_REQUEST, session.locale.t(T::CtBadKey), &raw),
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
        Ok(None) => {
            let message = session.locale.f(T::CtUnknown, &[&format!("{raw:?}")]);
            return not_found(&session, StatusCode::NOT_FOUND, &message, &raw);
        }
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
    let rules = RuleNames::of(&app.rules.current().engine.rules().specs());
    let view = ContactView {
        stored: &stored,
        why: &why,
        history: &history,
        events: &events,
        jobs: &jobs,
        usage: &usage,
        rules: &rules,
        back: &back,
    };
    let body = super::contact_page::body(&view, &session);
    layout::page(&title, Nav::Contacts, &session, body).into_response()
}

/// A contact that is not there: say so, and offer the search with what was asked.
fn not_found(session: &Session, status: StatusCode, message: &str, asked: &str) -> Response {
    let l = &session.locale;
    let body = html! {
        p.notice.bad role="alert" { (message) }
        form.filters method="get" action="/ui/contacts" role="search" {
            label { (l.t(T::CtFindAnother)) input type="search" name="search" value=(asked) placeholder=(l.t(T::CtStartsWith)); }
            button.primary type="submit" { (l.t(T::Filter)) }
        }
    };
    (status, layout::page(l.t(T::CtNotFoundTitle), Nav::Contacts, session, body)).into_response()
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
