//! The audit log (admins): every change, newest first, filtered by actor and kind.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav, query, time};
use super::store_problem;
use super::text::T;
use crate::store::audit::{AuditKind, AuditQuery};
use crate::web::AppState;
use crate::web::session::Session;

const PAGE: usize = 200;

#[derive(Deserialize, Default)]
pub struct Filter {
    actor: Option<String>,
    kind: Option<String>,
    before: Option<i64>,
}

pub async fn page(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Query(f): Query<Filter>,
) -> Response {
    let l = &session.locale;
    let kind = f.kind.as_deref().and_then(AuditKind::parse);
    let actor = f.actor.clone().filter(|a| !a.trim().is_empty());
    let q = AuditQuery { since: None, actor: actor.clone(), kind, before_id: f.before, limit: PAGE };
    let rows = match app.store.audit_log(q).await {
        Ok(r) => r,
        Err(e) => return store_problem(&session, e),
    };
    let older = (rows.len() == PAGE).then(|| rows.last().map(|r| r.id)).flatten();
    let body = html! {
        form.filters method="get" action="/ui/audit" {
            label for="actor" { (l.t(T::AuActor)) }
            input #actor name="actor" value=[actor.as_deref()] placeholder="marie, power-automate, cli:root";
            label for="kind" { (l.t(T::AuKind)) }
            select #kind name="kind" {
                option value="" { (l.t(T::AuAll)) }
                @for k in AuditKind::ALL { option value=(k.as_str()) selected[Some(k) == kind] { (k.as_str()) } }
            }
            button type="submit" { (l.t(T::Filter)) }
        }
        @if rows.is_empty() {
            p.muted { (l.t(T::AuNothing)) }
        } @else {
            div.scroll { table #audit {
                thead { tr {
                    th { (l.t(T::CtWhen)) } th { (l.t(T::AuWho)) } th { (l.t(T::AuFrom)) } th { (l.t(T::AuWhat)) }
                    th { (l.t(T::AuSubject)) } th { (l.t(T::AuSummary)) } th { (l.t(T::AxOutcome)) }
                } }
                tbody {
                    @for r in &rows {
                        tr {
                            td { (time(l, r.at)) }
                            td { (r.actor) " " span.muted { "(" (r.actor_kind) ")" } }
                            td { (r.ip.as_deref().unwrap_or("-")) }
                            td { (r.kind) " · " (r.action) br; span.muted { code { (r.route) } } }
                            td { (r.subject.as_deref().unwrap_or("")) }
                            td { (r.summary) }
                            td { @if r.outcome == "ok" { "ok" } @else { strong { (r.outcome) } } }
                        }
                    }
                }
            } }
            @if let Some(id) = older {
                p { a href={"/ui/audit?" (query(&[("actor", actor.clone()), ("kind", f.kind.clone()), ("before", Some(id.to_string()))]))} { (l.t(T::AuOlder)) } }
            }
        }
    };
    layout::page(l.t(T::AuTitle), Nav::Audit, &session, body).into_response()
}
