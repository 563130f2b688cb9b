//! Rules: the set in force with each rule's hits, a TOML editor that validates as one
//! types, a backtest against history before activating, and versions with rollback.
//! The editor talks to the operator API (`/api/rules/validate`, `/api/simulate`,
//! `PUT /api/rules`) with the session's CSRF token.

use std::collections::HashMap;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use maud::html;
use serde::Deserialize;

use super::describe;
use super::layout::{self, Nav, time};
use super::locale::Locale;
use super::text::T;
use super::{CsrfForm, Empty, problem, store_problem};
use crate::store::StoreError;
use crate::store::audit::AuditKind;
use crate::store::dashboard::{CounterKind, HOUR_MS};
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::session::Session;

pub async fn page(State(app): State<AppState>, Extension(session): Extension<Session>) -> Response {
    let l = &session.locale;
    let now = (app.clock)();
    let loaded = async {
        let counts = app.store.hourly_counts(now - Duration::days(7)).await?;
        let versions = app.store.rule_set_versions().await?;
        let week = app.store.run_counts(now - Duration::days(7)).await?;
        let month = app.store.run_counts(now - Duration::days(30)).await?;
        let paused = app.store.paused_rules().await?;
        Ok::<_, StoreError>((counts, versions, week, month, paused))
    };
    let (counts, versions, week_runs, month_runs, paused) = match loaded.await {
        Ok(v) => v,
        Err(e) => return store_problem(&session, e),
    };
    let day_start = (now.timestamp_millis().div_euclid(HOUR_MS) - 23) * HOUR_MS;
    let mut hits: HashMap<&str, (i64, i64)> = HashMap::new();
    for c in counts.iter().filter(|c| c.kind == CounterKind::Rule) {
        let h = hits.entry(c.name.as_str()).or_default();
        h.1 += c.count;
        if c.hour >= day_start {
            h.0 += c.count;
        }
    }
    let live = app.rules.current();
    let specs = live.engine.rules().specs();
    let toml = live.engine.rules().to_toml();
    let replaced = versions.iter().find(|v| v.active).and_then(|v| v.replaced_version.map(|r| (v, r)));
    // Viewers see the rules but no control that would be refused.
    let editor = layout::can(&session, crate::access::Role::Editor);
    let templates = app.settings.dispatch.brevo.as_ref().map(|b| b.templates.clone()).unwrap_or_default();
    let body = html! {
        @if let Some((active, previous)) = replaced {
            @let via = versions.iter().find(|v| v.version == previous).map(|v| v.activated_via.as_str()).unwrap_or("dashboard");
            section.banner.warn #rules-replaced role="alert" {
                p {
                    (l.f(T::RuReplaced, &[&active.version, &active.source.trim_start_matches("file:"), &previous, &origin(l, via)]))
                }
                @if editor {
                    form.inline method="post" action={"/ui/rules/versions/" (previous) "/activate"} data-confirm=(l.f(T::RuPutBack, &[&previous])) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button.primary type="submit" { (l.f(T::RuRollBackTo, &[&previous])) }
                    }
                }
            }
        }
        p #live {
            (l.t(T::RuVersion)) " " strong #live-version { (live.version) } " "
            (l.f(T::RuInForce, &[&specs.len(), &&live.hash[..12.min(live.hash.len())]]))
        }
        section.card.wide {
            h2 { (l.t(T::RuRulesInForce)) }
            div.scroll {
                table #rules-table {
                    thead { tr {
                        th scope="col" { (l.t(T::Rule)) } th scope="col" { (l.t(T::RuTrigger)) } th.num scope="col" { (l.t(T::RuPriority)) }
                        th scope="col" { (l.t(T::RuConditions)) } th scope="col" { (l.t(T::Actions)) } th.num scope="col" { (l.t(T::RuHits24h)) } th.num scope="col" { (l.t(T::RuHits7d)) }
                        th scope="col" { (l.t(T::RuKillSwitch)) }
                    } }
                    tbody {
                        @for r in &specs {
                            @let (day, week) = hits.get(r.rule_id.as_str()).copied().unwrap_or_default();
                            tr.disabled[!r.enabled] {
                                th scope="row" {
                                    @if r.description.is_empty() { (r.rule_id) } @else { (r.description) br; code.muted { (r.rule_id) } }
                                    @if !r.enabled { " " span.badge { (l.t(T::RuDisabled)) } }
                                }
                                td { (describe::trigger(l, r.trigger)) @if let Some(s) = &r.schedule { br; code.muted { (s) } } }
                                td.num { (r.priority) }
                                td {
                                    @let conditions = describe::conditions(l, &r.conditions);
                                    @if conditions.is_empty() { span.muted { (l.t(T::CoAlways)) } }
                                    @else { ul.plain { @for c in &conditions { li { (c) } } } }
                                }
                                td { ul.plain { @for a in &r.actions { li { (describe::action(l, a, &templates)) } } } }
                                td.num { (day) } td.num { (week) }
                                td {
                                    @let since = paused.iter().find(|(id, _)| *id == r.rule_id).map(|(_, at)| *at);
                                    @if let Some(at) = since {
                                        span.badge.state-held { (l.f(T::RuPausedSince, &[&l.datetime(at)])) } " "
                                        @if editor { form.inline method="post" action={"/ui/rules/" (r.rule_id) "/resume"} data-confirm=(l.f(T::RuResumeConfirm, &[&r.rule_id])) {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            button type="submit" { (l.t(T::RuResume)) }
                                        } }
                                    } @else if editor {
                                        form.inline method="post" action={"/ui/rules/" (r.rule_id) "/pause"} data-confirm=(l.f(T::RuPauseConfirm, &[&r.rule_id])) {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            button type="submit" { (l.t(T::RuPause)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (super::runs::rule_runs_card(l, &week_runs, &month_runs))
        section.card.wide #editor-card {
            h2 { (l.t(T::RuEdit)) }
            p.muted { (l.t(T::RuEditHint)) }
            div.editor {
                pre.gutter #rules-gutter aria-hidden="true" {}
                textarea #rules-editor spellcheck="false" aria-label=(l.t(T::RuEditorLabel)) aria-describedby="rules-status" { (toml) }
            }
            p #rules-status aria-live="polite" { (l.t(T::RuNotChanged)) }
            ol #rules-errors.errors {}
            label.check {
                input #cancel-removed-runs type="checkbox";
                (l.t(T::RuCancelRemoved))
            }
            div.controls {
                button #backtest type="button" { (l.t(T::RuBacktest)) }
                button.primary #activate type="button" disabled { (l.t(T::RuActivate)) }
            }
            div #backtest-report aria-live="polite" {}
        }
        section.card.wide #versions {
            h2 { (l.t(T::RuVersions)) }
            table {
                thead { tr {
                    th.num scope="col" { (l.t(T::RuVersion)) } th scope="col" { (l.t(T::RuSaved)) } th scope="col" { (l.t(T::RuFrom)) }
                    th.num scope="col" { (l.t(T::Rules)) } th scope="col" { (l.t(T::RuHash)) } th scope="col" { (l.t(T::State)) }
                } }
                tbody {
                    @for v in &versions {
                        tr {
                            td.num { (v.version) }
                            td { (time(l, v.created_at)) }
                            td { (origin(l, &v.source)) }
                            td.num { (serde_json::from_str::<Vec<serde_json::Value>>(&v.body).map(|r| r.len()).unwrap_or(0)) }
                            td { code { (&v.hash[..12.min(v.hash.len())]) } }
                            td {
                                @if v.active { strong { (l.t(T::RuInForceState)) } } @else if editor {
                                    form.inline method="post" action={"/ui/rules/versions/" (v.version) "/activate"} data-confirm=(l.f(T::RuPutBack, &[&v.version])) {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button type="submit" { (l.t(T::RuRollBackThis)) }
                                    }
                                }
                            }
                        }
                    }
                    @if versions.is_empty() { tr { td colspan="6" { (l.t(T::RuNoVersion)) } } }
                }
            }
        }
    };
    layout::page(l.t(T::Rules), Nav::Rules, &session, body).into_response()
}

/// Where a version came from, in words.
fn origin(l: &Locale, source: &str) -> String {
    match source {
        "api" => l.t(T::RuFromApi).into(),
        "dashboard" => l.t(T::RuFromDashboard).into(),
        "cli" => "relance rules import".into(),
        "defaults" => l.t(T::RuFromDefaults).into(),
        s if s.starts_with("file:") => l.f(T::RuFromFile, &[&&s[5..]]),
        _ => "—".into(),
    }
}

#[derive(Deserialize)]
pub struct VersionPath {
    version: i64,
}

pub async fn activate(
    State(app): State<AppState>,
    actor: Actor,
    Path(VersionPath { version }): Path<VersionPath>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    let via = crate::web::auth::Caller::Dashboard.as_str();
    let audit = actor.audit(AuditKind::Rules, "activate");
    match audited(&app, audit, |a| crate::ops::rules::activate_version(&*app.store, &app.rules, version, via, a)).await
    {
        Ok(_) => Redirect::to("/ui/rules").into_response(),
        Err(e @ StoreError::NotFound(_)) => problem(StatusCode::NOT_FOUND, &session, &e.to_string()),
        Err(e) => {
            tracing::warn!(error = %e, version, "dashboard rollback failed");
            problem(StatusCode::SERVICE_UNAVAILABLE, &session, session.locale.t(T::RuRollbackFailed))
        }
    }
}

#[derive(Deserialize)]
pub struct RulePath {
    rule_id: String,
}

/// The kill switch from the rules page: pause or resume a rule.
pub async fn pause(
    State(app): State<AppState>,
    actor: Actor,
    Path(RulePath { rule_id }): Path<RulePath>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    switch(app, actor, rule_id, session, true).await
}

pub async fn resume(
    State(app): State<AppState>,
    actor: Actor,
    Path(RulePath { rule_id }): Path<RulePath>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    switch(app, actor, rule_id, session, false).await
}

async fn switch(app: AppState, actor: Actor, rule_id: String, session: Session, pause: bool) -> Response {
    let known = app.rules.current().engine.rules().rules().iter().any(|r| *r.rule_id == *rule_id);
    if pause && !known {
        return problem(StatusCode::NOT_FOUND, &session, &session.locale.f(T::RuNoRule, &[&format!("{rule_id:?}")]));
    }
    let done = if pause {
        app.store.pause_rule(rule_id.clone(), actor.audit(AuditKind::Rules, "pause").summary("kill switch on")).await
    } else {
        app.store.resume_rule(rule_id.clone(), actor.audit(AuditKind::Rules, "resume").summary("kill switch off")).await
    };
    match done {
        Ok(jobs) => {
            tracing::info!(rule = %rule_id, pause, jobs, "kill switch from the dashboard");
            Redirect::to("/ui/rules").into_response()
        }
        Err(e) => store_problem(&session, e),
    }
}
