//! The page shell and small pieces shared by the pages.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

use crate::web::session::Session;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Contacts,
    Rules,
    Actions,
    Access,
    Audit,
    None,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Contacts, "/ui/contacts", "Contacts"),
    (Nav::Rules, "/ui/rules", "Rules"),
    (Nav::Actions, "/ui/actions", "Actions"),
];

/// Shown to admins only (the routes refuse everyone else anyway).
const ADMIN_NAV: [(Nav, &str, &str); 2] =
    [(Nav::Access, "/ui/access", "Users & keys"), (Nav::Audit, "/ui/audit", "Audit")];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Relance" }
            link rel="stylesheet" href=(asset("app.css"));
            link rel="icon" href=(asset("favicon.svg")) type="image/svg+xml";
            script src=(asset("chart.umd.min.js")) defer {}
            script src=(asset("app.js")) defer {}
        }
    }
}

/// Asset URLs carry the build's version, so that browsers may cache them for long.
pub fn asset(name: &str) -> String {
    format!("/ui/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

pub fn page(title: &str, active: Nav, session: &Session, body: Markup) -> Markup {
    let admin = session.principal.may(crate::access::Need::Role(crate::access::Role::Admin));
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body data-csrf=(session.csrf) {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Relance" }
                    nav aria-label="Main" {
                        @for (nav, href, label) in NAV.iter().chain(ADMIN_NAV.iter().filter(|_| admin)) {
                            @if *nav == active {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                    span.who #signed-in-as title="Signed in as" {
                        (session.principal.name) " · " (session.principal.role)
                    }
                    form.logout method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// Whether the signed-in person may use a control that needs `role` (the route checks
/// again; this only hides what would be refused).
pub fn can(session: &Session, role: crate::access::Role) -> bool {
    session.principal.may(crate::access::Need::Role(role))
}

pub fn login_page(next: &str, error: Option<&str>, no_token: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in"))
            body.login {
                main #main {
                    h1 { "Relance" }
                    form.card method="post" action="/ui/login" {
                        h2 { "Sign in" }
                        @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
                        @if no_token {
                            p.hint { "No admin token is set on this server (loopback only): leave both fields empty." }
                        }
                        label for="name" { "Name" }
                        input #name type="text" name="name" autocomplete="username" autocapitalize="none" autofocus;
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="current-password";
                        p.hint { "Before any user exists: leave the name empty and give the admin token as the password." }
                        input type="hidden" name="next" value=(next);
                        button.primary type="submit" { "Sign in" }
                    }
                }
            }
        }
    }
}

/// A time as UTC text, inside `<time>` so that scripts and readers know what it is.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// A state shown as a word with a shape, never colour alone.
pub fn state_badge(state: &str) -> Markup {
    let mark = match state {
        "done" => "✓",
        "pending" => "…",
        "running" => "▶",
        "failed" => "!",
        "dead" => "✕",
        "cancelled" => "–",
        "suppressed" => "⊘",
        "skipped" => "↷",
        "held" => "⏸",
        "active" => "…",
        "goal_reached" => "★",
        "completed" => "✓",
        _ => "·",
    };
    html! { span class={"badge state-" (state)} { span aria-hidden="true" { (mark) " " } (state) } }
}

/// Data for a page script, as JSON in a `<script type="application/json">` (the content
/// security policy allows no inline code; this is data, never run).
pub fn json_data<T: Serialize>(id: &str, value: &T) -> Markup {
    // `</` cannot close the element early once escaped.
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into()).replace("</", "<\\/");
    html! { script type="application/json" id=(id) { (PreEscaped(json)) } }
}

/// A link to a contact page.
pub fn contact_link(email: Option<&str>, client_code: Option<&str>) -> Markup {
    match email.or(client_code) {
        Some(key) => html! { a href={"/ui/contacts/" (urlencode(key))} { (key) } },
        None => html! { span.muted { "(anonymous)" } },
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A query string from pairs, skipping empty values.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            q.append_pair(k, v);
        }
    }
    q.finish()
}
