//! Actions: jobs by state and type, each with its attempts, and retry / cancel.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use relance_core::ActionType;
use serde::Deserialize;

use super::contact_page::RuleNames;
use super::describe;
use super::layout::{self, Nav, contact_link, query, state_badge, time};
use super::locale::Locale;
use super::text::T;
use super::{CsrfForm, local_target, problem, store_problem};
use crate::store::audit::AuditKind;
use crate::store::jobs::{JobFilter, JobRow, JobState};
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::session::Session;

/// Jobs shown per list (newest first); filters narrow it down.
const LIMIT: usize = 200;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    state: Option<String>,
    action_type: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Query(q): Query<ListQuery>,
) -> Response {
    let l = &session.locale;
    // `deferred` is not a state: pending jobs contact pressure moved.
    let deferred = q.state.as_deref() == Some("deferred");
    let state = match q.state.as_deref().filter(|s| !s.is_empty() && *s != "deferred") {
        None => None,
        Some(s) => match JobState::parse(s) {
            Some(st) => Some(st),
            None => {
                let msg = l.f(T::AxUnknownState, &[&format!("{s:?}"), &JobState::NAMES.join(", ")]);
                return problem(StatusCode::BAD_REQUEST, &session, &msg);
            }
        },
    };
    let action_type = match q.action_type.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<ActionType>() {
            Ok(a) => Some(a),
            Err(_) => return problem(StatusCode::BAD_REQUEST, &session, &l.f(T::AxUnknownType, &[&format!("{s:?}")])),
        },
    };
    let filter = JobFilter { state, deferred, action_type, limit: LIMIT, ..JobFilter::default() };
    let jobs = match app.store.jobs(filter, None).await {
        Ok(j) => j,
        Err(e) => return store_problem(&session, e),
    };
    let filtered = q.state.as_deref().is_some_and(|s| !s.is_empty()) || action_type.is_some();
    let rules = RuleNames::of(&app.rules.current().engine.rules().specs());
    let here = format!("/ui/actions?{}", query(&[("state", q.state.clone()), ("action_type", q.action_type.clone())]));
    let body = html! {
        form.filters method="get" action="/ui/actions" {
            label { (l.t(T::State))
                select name="state" {
                    option value="" { (l.t(T::Any)) }
                    @for s in JobState::NAMES { option value=(s) selected[q.state.as_deref() == Some(*s)] { (super::text::state(s, l.lang)) } }
                    option value="deferred" selected[deferred] { (l.t(T::AxDeferred)) }
                }
            }
            label { (l.t(T::OvAction))
                select name="action_type" {
                    option value="" { (l.t(T::Any)) }
                    @for a in ActionType::ALL { option value=(a.as_str()) selected[q.action_type.as_deref() == Some(a.as_str())] { (describe::action_type(l, *a)) } }
                }
            }
            button.primary type="submit" { (l.t(T::Filter)) }
            a href="/ui/actions" { (l.t(T::Clear)) }
        }
        @if jobs.len() == LIMIT { p.muted { (l.f(T::AxShowingLatest, &[&LIMIT])) } }
        @if jobs.is_empty() && !filtered { p.muted { (l.t(T::AxNoActionsYet)) } }
        @else { (jobs_table_with_controls(l, &jobs, &rules, layout::can(&session, crate::access::Role::Editor).then_some((&here, &session)))) }
    };
    layout::page(l.t(T::Actions), Nav::Actions, &session, body).into_response()
}

/// A table of jobs (the overview uses it without controls).
pub fn jobs_table(l: &Locale, jobs: &[JobRow], rules: &RuleNames) -> Markup {
    jobs_table_with_controls(l, jobs, rules, None)
}

fn jobs_table_with_controls(
    l: &Locale,
    jobs: &[JobRow],
    rules: &RuleNames,
    controls: Option<(&str, &Session)>,
) -> Markup {
    let columns = if controls.is_some() { 8 } else { 7 };
    html! {
        div.scroll {
            table.jobs {
                thead { tr {
                    th scope="col" { (l.t(T::State)) } th scope="col" { (l.t(T::OvAction)) } th scope="col" { (l.t(T::Contact)) } th scope="col" { (l.t(T::Rule)) }
                    th scope="col" { (l.t(T::AxDue)) } th.num scope="col" { (l.t(T::AxAttempts)) } th scope="col" { (l.t(T::AxLastError)) }
                    @if controls.is_some() { th scope="col" { span.sr-only { (l.t(T::Controls)) } } }
                } }
                tbody {
                    @for j in jobs {
                        tr {
                            td { (state_badge(l, j.state.as_str())) }
                            td { a href={"/ui/actions/" (j.id)} { (describe::action_named(l, &j.action_type)) } }
                            td { (contact_link(j.contact_email.as_deref(), j.contact_client_code.as_deref())) }
                            td { (rules.show(&j.rule_id)) }
                            td { (time(l, j.due_at)) }
                            td.num { (j.attempts) }
                            td.error { @if let Some(e) = &j.last_error { (excerpt(e, 120)) } }
                            @if let Some((back, session)) = controls {
                                td.controls { (retry_form(l, j, back, session)) (cancel_form(l, j, back, session)) }
                            }
                        }
                    }
                    @if jobs.is_empty() { tr { td colspan=(columns) { (l.t(T::AxNoMatch)) } } }
                }
            }
        }
    }
}

fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A cancel button for a job that can still be cancelled.
pub fn cancel_form(l: &Locale, j: &JobRow, back: &str, session: &Session) -> Markup {
    html! {
        @if matches!(j.state, JobState::Pending | JobState::Failed) && layout::can(session, crate::access::Role::Editor) {
            form.inline method="post" action={"/ui/actions/" (j.id) "/cancel"} data-confirm=(l.t(T::CancelThis)) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="back" value=(back);
                button type="submit" aria-label={(l.t(T::Cancel)) " " (j.action_type) " " (j.id)} { (l.t(T::Cancel)) }
            }
        }
    }
}

fn retry_form(l: &Locale, j: &JobRow, back: &str, session: &Session) -> Markup {
    html! {
        @if matches!(j.state, JobState::Failed | JobState::Dead) && layout::can(session, crate::access::Role::Editor) {
            form.inline method="post" action={"/ui/actions/" (j.id) "/retry"} {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="back" value=(back);
                button type="submit" aria-label={(l.t(T::RetryNow)) " " (j.action_type) " " (j.id)} { (l.t(T::RetryNow)) }
            }
        }
    }
}

pub async fn detail(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
) -> Response {
    let l = &session.locale;
    let (job, attempts) = match app.store.job(id.clone()).await {
        Ok(Some(found)) => found,
        Ok(None) => return problem(StatusCode::NOT_FOUND, &session, &l.f(T::AxUnknown, &[&format!("{id:?}")])),
        Err(e) => return store_problem(&session, e),
    };
    let back = format!("/ui/actions/{}", job.id);
    let rules = RuleNames::of(&app.rules.current().engine.rules().specs());
    let config = serde_json::to_string_pretty(&job.config).unwrap_or_default();
    let body = html! {
        section.card {
            dl.facts {
                dt { (l.t(T::State)) } dd { (state_badge(l, job.state.as_str())) }
                dt { (l.t(T::Contact)) } dd { (contact_link(job.contact_email.as_deref(), job.contact_client_code.as_deref())) }
                dt { (l.t(T::Rule)) } dd { (rules.show(&job.rule_id)) " · " (describe::trigger_named(l, &job.trigger)) }
                dt { (l.t(T::AxDue)) } dd { (time(l, job.due_at)) }
                dt { (l.t(T::Created)) } dd { (time(l, job.created_at)) }
                dt { (l.t(T::Updated)) } dd { (time(l, job.updated_at)) }
                dt { (l.t(T::AxIdempotency)) } dd { code { (job.id) } }
                @if let Some(e) = &job.last_error { dt { (l.t(T::AxLastError)) } dd.error { (e) } }
            }
            h2 { (l.t(T::AxConfiguration)) }
            pre { (config) }
            div.controls { (retry_form(l, &job, &back, &session)) (cancel_form(l, &job, &back, &session)) }
        }
        section.card {
            h2 { (l.t(T::AxAttempts)) }
            div.scroll {
                table {
                    thead { tr { th scope="col" { (l.t(T::AxStarted)) } th.num scope="col" { "ms" } th scope="col" { (l.t(T::AxOutcome)) } th.num scope="col" { "HTTP" } th scope="col" { (l.t(T::AxResponse)) } } }
                    tbody {
                        @for a in &attempts {
                            tr {
                                td { (time(l, a.started_at)) } td.num { (a.duration_ms) } td { (a.status) }
                                td.num { @if let Some(s) = a.http_status { (s) } }
                                td { @if let Some(r) = &a.response { code.excerpt { (r) } } }
                            }
                        }
                        @if attempts.is_empty() { tr { td colspan="5" { (l.t(T::AxNotAttempted)) } } }
                    }
                }
            }
        }
    };
    let title = l.f(T::AxTitle, &[&describe::action_named(l, &job.action_type), &job.rule_id]);
    layout::page(&title, Nav::Actions, &session, body).into_response()
}

#[derive(Deserialize)]
pub struct Back {
    back: Option<String>,
}

pub async fn cancel(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    CsrfForm(session, form): CsrfForm<Back>,
) -> Response {
    let audit = actor.audit(AuditKind::Actions, "cancel").summary("cancelled from the dashboard");
    match audited(&app, audit, |a| app.store.cancel_job(id.clone(), a)).await {
        Ok(()) => {
            tracing::info!(job = %id, "job cancelled from the dashboard");
            Redirect::to(&local_target(form.back.as_deref())).into_response()
        }
        Err(e) => store_problem(&session, e),
    }
}

pub async fn retry(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    CsrfForm(session, form): CsrfForm<Back>,
) -> Response {
    let audit = actor.audit(AuditKind::Actions, "retry").summary("retried from the dashboard");
    match audited(&app, audit, |a| app.store.retry_job(id.clone(), a)).await {
        Ok(()) => {
            tracing::info!(job = %id, "job retried from the dashboard");
            app.store.jobs_ready().stored(None);
            Redirect::to(&local_target(form.back.as_deref())).into_response()
        }
        Err(e) => store_problem(&session, e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn excerpts_cut_on_characters() {
        assert_eq!(super::excerpt("été", 2), "ét…");
        assert_eq!(super::excerpt("abc", 5), "abc");
    }
}
