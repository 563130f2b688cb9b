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

use super::layout::{self, Nav, time};
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
    let body = html! {
        @if let Some((active, previous)) = replaced {
            @let via = versions.iter().find(|v| v.version == previous).map(|v| v.activated_via.as_str()).unwrap_or("dashboard");
            section.banner.warn #rules-replaced role="alert" {
                p {
                    strong { "Version " (active.version) " came from " code { (active.source.trim_start_matches("file:")) } }
                    " when the server started, and replaced version " (previous) ", which had been activated from the " (via) "."
                    " The rules file had changed since it was last imported."
                }
                @if editor {
                    form.inline method="post" action={"/ui/rules/versions/" (previous) "/activate"} data-confirm={"Put version " (previous) " back in force?"} {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button.primary type="submit" { "Roll back to version " (previous) }
                    }
                }
            }
        }
        p { "Version " strong #live-version { (live.version) } " is in force · " (specs.len()) " rules · hash " code { (&live.hash[..12.min(live.hash.len())]) } }
        section.card.wide {
            h2 { "Rules in force" }
            div.scroll {
                table #rules-table {
                    thead { tr {
                        th scope="col" { "Rule" } th scope="col" { "Trigger" } th.num scope="col" { "Priority" }
                        th scope="col" { "Conditions" } th scope="col" { "Actions" } th.num scope="col" { "Hits 24 h" } th.num scope="col" { "Hits 7 days" }
                        th scope="col" { "Kill switch" }
                    } }
                    tbody {
                        @for r in &specs {
                            @let (day, week) = hits.get(r.rule_id.as_str()).copied().unwrap_or_default();
                            tr.disabled[!r.enabled] {
                                th scope="row" { (r.rule_id) @if !r.enabled { " " span.badge { "disabled" } } @if !r.description.is_empty() { br; span.muted { (r.description) } } }
                                td { code { (r.trigger.as_str()) } @if let Some(s) = &r.schedule { br; span.muted { (s) } } }
                                td.num { (r.priority) }
                                td { code.wrap { (serde_json::to_string(&r.conditions).unwrap_or_default()) } }
                                td { ul.plain { @for a in &r.actions {
                                    li { (a.action_type.as_str()) @if a.delay_minutes > 0 { " after " (a.delay_minutes) " min" } }
                                } } }
                                td.num { (day) } td.num { (week) }
                                td {
                                    @let since = paused.iter().find(|(id, _)| *id == r.rule_id).map(|(_, at)| *at);
                                    @if let Some(at) = since {
                                        span.badge.state-held { "paused since " (time(l, at)) } " "
                                        @if editor { form.inline method="post" action={"/ui/rules/" (r.rule_id) "/resume"} data-confirm={"Resume " (r.rule_id) "? Its held jobs run when due."} {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            button type="submit" { "Resume" }
                                        } }
                                    } @else if editor {
                                        form.inline method="post" action={"/ui/rules/" (r.rule_id) "/pause"} data-confirm={"Pause " (r.rule_id) "? It fires no more and its pending jobs are held."} {
                                            input type="hidden" name="csrf" value=(session.csrf);
                                            button type="submit" { "Pause" }
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
            h2 { "Edit (TOML)" }
            p.muted { "Checked as you type. Backtest the change against the stored events, then activate it: it becomes a new version, in force on every instance within seconds." }
            div.editor {
                pre.gutter #rules-gutter aria-hidden="true" {}
                textarea #rules-editor spellcheck="false" aria-label="Rule set in TOML" aria-describedby="rules-status" { (toml) }
            }
            p #rules-status aria-live="polite" { "Not changed." }
            ol #rules-errors.errors {}
            label.check {
                input #cancel-removed-runs type="checkbox";
                " Cancel the active runs of rules this version removes or disables (otherwise they go on to their end)"
            }
            div.controls {
                button #backtest type="button" { "Backtest against history" }
                button.primary #activate type="button" disabled { "Activate" }
            }
            div #backtest-report aria-live="polite" {}
        }
        section.card.wide #versions {
            h2 { "Versions" }
            table {
                thead { tr { th.num scope="col" { "Version" } th scope="col" { "Saved" } th scope="col" { "From" } th.num scope="col" { "Rules" } th scope="col" { "Hash" } th scope="col" { "State" } } }
                tbody {
                    @for v in &versions {
                        tr {
                            td.num { (v.version) }
                            td { (time(l, v.created_at)) }
                            td { (origin(&v.source)) }
                            td.num { (serde_json::from_str::<Vec<serde_json::Value>>(&v.body).map(|r| r.len()).unwrap_or(0)) }
                            td { code { (&v.hash[..12.min(v.hash.len())]) } }
                            td {
                                @if v.active { strong { "in force" } } @else if editor {
                                    form.inline method="post" action={"/ui/rules/versions/" (v.version) "/activate"} data-confirm={"Put version " (v.version) " back in force?"} {
                                        input type="hidden" name="csrf" value=(session.csrf);
                                        button type="submit" { "Roll back to this" }
                                    }
                                }
                            }
                        }
                    }
                    @if versions.is_empty() { tr { td colspan="6" { "No stored version yet." } } }
                }
            }
        }
    };
    layout::page("Rules", Nav::Rules, &session, body).into_response()
}

/// Where a version came from, in words.
fn origin(source: &str) -> String {
    match source {
        "api" => "the API".into(),
        "dashboard" => "the dashboard".into(),
        "cli" => "relance rules import".into(),
        "defaults" => "the built-in defaults".into(),
        s if s.starts_with("file:") => format!("rules file {}", &s[5..]),
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
            problem(StatusCode::SERVICE_UNAVAILABLE, &session, "The rollback did not go through; try again.")
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
        return problem(StatusCode::NOT_FOUND, &session, &format!("No rule {rule_id:?} in force."));
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
