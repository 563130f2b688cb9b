//! Users & keys (admins): who signs in with which role, the programs' API keys (created
//! here, shown once, revoked at once), and the buttons that disable a person.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav, time};
use super::text::T;
use super::{CsrfForm, Empty, problem, store_problem};
use crate::access::Role;
use crate::ops::access::CreatedKey;
use crate::store::audit::AuditKind;
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::session::Session;

pub async fn page(State(app): State<AppState>, Extension(session): Extension<Session>) -> Response {
    render(&app, &session, None, StatusCode::OK).await
}

/// What a form just did, shown above the lists: a key or a password appears this once.
enum Flash {
    Key(CreatedKey),
    User { name: String, role: Role, password: Option<String> },
}

async fn render(app: &AppState, session: &Session, flash: Option<Flash>, status: StatusCode) -> Response {
    let l = &session.locale;
    let (users, keys) = match tokio::try_join!(app.store.users(), app.store.keys()) {
        Ok(v) => v,
        Err(e) => return store_problem(session, e),
    };
    let now = (app.clock)();
    let csrf = html! { input type="hidden" name="csrf" value=(session.csrf); };
    let body = html! {
        @match &flash {
            Some(Flash::Key(k)) => section.banner.ok #new-key role="status" {
                p { (l.f(T::UkKeyCreated, &[&k.name, &k.role])) }
                p { code #new-key-value { (k.key) } }
            },
            Some(Flash::User { name, role, password }) => section.banner.ok #new-user role="status" {
                p { (l.f(T::UkUserAdded, &[name, role])) }
                @if let Some(p) = password {
                    p { (l.t(T::UkPasswordOnce)) code #new-user-password { (p) } }
                }
            },
            None => {},
        }
        section {
            h2 { (l.t(T::UkApiKeys)) }
            p.hint { (l.t(T::UkKeysHint)) }
            div.scroll { table #keys {
                thead { tr {
                    th { (l.t(T::Name)) } th { (l.t(T::Role)) } th { (l.t(T::UkPrefix)) } th { (l.t(T::Created)) }
                    th { (l.t(T::UkLastUsed)) } th { (l.t(T::State)) } th { span.sr-only { (l.t(T::Controls)) } }
                } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name) }
                            td { (k.role) }
                            td { code { (k.prefix) "…" } }
                            td { (time(l, k.created_at)) " " (l.t(T::By)) " " (k.created_by) }
                            td { @if let Some(at) = k.last_used_at { (time(l, at)) } @else { span.muted { (l.t(T::Never)) } } }
                            td { @if let Some(at) = k.revoked_at { (l.f(T::UkRevoked, &[&l.datetime(at)])) } @else { (l.t(T::UkLive)) } }
                            td {
                                @if k.revoked_at.is_none() {
                                    form method="post" action={"/ui/access/keys/" (layout::urlencode(&k.name)) "/revoke"} {
                                        (csrf)
                                        button.danger type="submit" aria-label=(l.f(T::UkRevokeLabel, &[&k.name])) { (l.t(T::UkRevoke)) }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
            form.card #create-key method="post" action="/ui/access/keys" {
                h3 { (l.t(T::UkCreateKey)) }
                (csrf)
                label for="key-name" { (l.t(T::Name)) }
                input #key-name name="name" required pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" placeholder="power-automate";
                label for="key-role" { (l.t(T::Role)) }
                select #key-role name="role" {
                    @for r in Role::ALL { option value=(r.as_str()) selected[r == Role::Editor] { (r.as_str()) } }
                }
                button.primary type="submit" { (l.t(T::UkCreateKeyButton)) }
            }
        }
        section {
            h2 { (l.t(T::UkUsers)) }
            div.scroll { table #users {
                thead { tr {
                    th { (l.t(T::Name)) } th { (l.t(T::Role)) } th { (l.t(T::State)) } th { (l.t(T::Created)) }
                    th { span.sr-only { (l.t(T::Controls)) } }
                } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.name) }
                            td { (u.role) }
                            td {
                                @if u.disabled_at.is_some() { (l.t(T::UkDisabled)) }
                                @else if let Some(until) = u.locked_until.filter(|t| *t > now) { (l.f(T::UkLockedUntil, &[&l.datetime(until)])) }
                                @else { (l.t(T::UkActive)) }
                            }
                            td { (time(l, u.created_at)) }
                            td {
                                @let action = if u.disabled_at.is_some() { "enable" } else { "disable" };
                                @let word = l.t(if action == "enable" { T::UkEnable } else { T::UkDisable });
                                form method="post" action={"/ui/access/users/" (layout::urlencode(&u.name)) "/" (action)} {
                                    (csrf)
                                    button type="submit" class=[(action == "disable").then_some("danger")]
                                        aria-label={(word) " " (u.name)} { (word) }
                                }
                            }
                        }
                    }
                }
            } }
            form.card #add-user method="post" action="/ui/access/users" {
                h3 { (l.t(T::UkAddUser)) }
                (csrf)
                label for="user-name" { (l.t(T::Name)) }
                input #user-name name="name" required pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" placeholder="marie";
                label for="user-role" { (l.t(T::Role)) }
                select #user-role name="role" {
                    @for r in Role::FOR_USERS { option value=(r.as_str()) selected[r == Role::Editor] { (r.as_str()) } }
                }
                p.hint { (l.t(T::UkPasswordHint)) }
                button.primary type="submit" { (l.t(T::UkAddUserButton)) }
            }
        }
    };
    (status, layout::page(l.t(T::UsersAndKeys), Nav::Access, session, body)).into_response()
}

fn bad_request(session: &Session, message: &str) -> Response {
    problem(StatusCode::BAD_REQUEST, session, message)
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    name: String,
    role: String,
}

pub async fn create_key(
    State(app): State<AppState>,
    actor: Actor,
    CsrfForm(session, f): CsrfForm<NewKeyForm>,
) -> Response {
    let Ok(role) = f.role.parse::<Role>() else { return bad_request(&session, session.locale.t(T::UkPickRole)) };
    let by = actor.principal.name.clone();
    let audit = actor.audit(AuditKind::Keys, "create");
    match audited(&app, audit, |a| crate::ops::access::create_key(&*app.store, &f.name, role, &by, a)).await {
        Ok(created) => render(&app, &session, Some(Flash::Key(created)), StatusCode::CREATED).await,
        Err(e) => store_problem(&session, e),
    }
}

#[derive(Deserialize)]
pub struct NamePath {
    name: String,
}

pub async fn revoke_key(
    State(app): State<AppState>,
    actor: Actor,
    Path(NamePath { name }): Path<NamePath>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    let audit = actor.audit(AuditKind::Keys, "revoke");
    match audited(&app, audit, |a| crate::ops::access::revoke_key(&*app.store, &name, a)).await {
        Ok(()) => Redirect::to("/ui/access").into_response(),
        Err(e) => store_problem(&session, e),
    }
}

#[derive(Deserialize)]
pub struct NewUserForm {
    name: String,
    role: String,
}

pub async fn add_user(
    State(app): State<AppState>,
    actor: Actor,
    CsrfForm(session, f): CsrfForm<NewUserForm>,
) -> Response {
    let Ok(role) = f.role.parse::<Role>() else { return bad_request(&session, session.locale.t(T::UkPickRole)) };
    let audit = actor.audit(AuditKind::Users, "create");
    match audited(&app, audit, |a| crate::ops::access::add_user(&*app.store, &f.name, role, None, a)).await {
        Ok(password) => {
            let flash = Flash::User { name: f.name.trim().to_owned(), role, password };
            render(&app, &session, Some(flash), StatusCode::CREATED).await
        }
        Err(e) => store_problem(&session, e),
    }
}

pub async fn disable_user(
    State(app): State<AppState>,
    actor: Actor,
    Path(NamePath { name }): Path<NamePath>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    switch_user(app, actor, session, name, true).await
}

pub async fn enable_user(
    State(app): State<AppState>,
    actor: Actor,
    Path(NamePath { name }): Path<NamePath>,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    switch_user(app, actor, session, name, false).await
}

async fn switch_user(app: AppState, actor: Actor, session: Session, name: String, disabled: bool) -> Response {
    if disabled && session.principal.name == name {
        return bad_request(&session, session.locale.t(T::UkNotYourself));
    }
    let audit = actor.audit(AuditKind::Users, if disabled { "disable" } else { "enable" });
    match audited(&app, audit, |a| crate::ops::access::set_disabled(&*app.store, &name, disabled, a)).await {
        Ok(_) => Redirect::to("/ui/access").into_response(),
        Err(e) => store_problem(&session, e),
    }
}
