//! The page shell and small pieces shared by the pages.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Serialize;

use super::locale::{Lang, Locale};
use super::text::T;
use crate::web::session::Session;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Contacts,
    Rules,
    Actions,
    Integrations,
    Access,
    Audit,
    None,
}

const NAV: [(Nav, &str, T); 5] = [
    (Nav::Overview, "/", T::Overview),
    (Nav::Contacts, "/ui/contacts", T::Contacts),
    (Nav::Rules, "/ui/rules", T::Rules),
    (Nav::Actions, "/ui/actions", T::Actions),
    (Nav::Integrations, "/ui/integrations", T::Integrations),
];

/// Shown to admins only (the routes refuse everyone else anyway).
const ADMIN_NAV: [(Nav, &str, T); 2] =
    [(Nav::Access, "/ui/access", T::UsersAndKeys), (Nav::Audit, "/ui/audit", T::Audit)];

fn head(title: &str, l: &Locale) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Relance" }
            link rel="stylesheet" href=(asset("app.css"));
            link rel="icon" href=(asset("favicon.svg")) type="image/svg+xml";
            script src=(asset("chart.umd.min.js")) defer {}
            script src=(asset("app.js")) defer {}
            // The page scripts' words, in the page's language.
            (json_data("texts", &script_texts(l)))
        }
    }
}

/// What the page scripts need: the language, the zone, and their catalogue entries.
fn script_texts(l: &Locale) -> serde_json::Value {
    let texts: serde_json::Map<String, serde_json::Value> =
        T::ALL.iter().filter(|k| k.name().starts_with("Js")).map(|k| (k.name().to_owned(), l.t(*k).into())).collect();
    serde_json::json!({ "lang": l.lang.code(), "zone": l.zone_name(), "currency": l.currency, "texts": texts })
}

/// Asset URLs carry the build's version, so that browsers may cache them for long.
pub fn asset(name: &str) -> String {
    format!("/ui/assets/{name}?v={}", env!("CARGO_PKG_VERSION"))
}

/// Links to the other languages (the choice is kept in a cookie).
fn language_switch(l: &Locale) -> Markup {
    html! {
        span.lang aria-label=(l.t(T::Language)) {
            @for lang in Lang::ALL {
                @if lang == l.lang {
                    span aria-current="true" lang=(lang.code()) { (lang.code().to_uppercase()) }
                } @else {
                    a href={"/ui/language?to=" (lang.code())} lang=(lang.code()) hreflang=(lang.code()) title=(lang.own_name()) {
                        (lang.code().to_uppercase())
                    }
                }
            }
        }
    }
}

pub fn page(title: &str, active: Nav, session: &Session, body: Markup) -> Markup {
    let l = &session.locale;
    let admin = session.principal.may(crate::access::Need::Role(crate::access::Role::Admin));
    html! {
        (DOCTYPE)
        html lang=(l.lang.code()) {
            (head(title, l))
            body data-csrf=(session.csrf) {
                a.skip href="#main" { (l.t(T::SkipToContent)) }
                header.top {
                    a.brand href="/" { "Relance" }
                    nav aria-label=(l.t(T::MainNav)) {
                        @for (nav, href, label) in NAV.iter().chain(ADMIN_NAV.iter().filter(|_| admin)) {
                            @if *nav == active {
                                a href=(href) aria-current="page" { (l.t(*label)) }
                            } @else {
                                a href=(href) { (l.t(*label)) }
                            }
                        }
                    }
                    (language_switch(l))
                    span.who #signed-in-as title=(l.t(T::SignedInAs)) {
                        (session.principal.name) " · " (session.principal.role)
                    }
                    form.logout method="post" action="/ui/logout" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { (l.t(T::SignOut)) }
                    }
                }
                main #main {
                    h1 { (title) }
                    p.zone.muted #times-zone { (l.f(T::TimesIn, &[&l.zone_name()])) }
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

pub fn login_page(l: &Locale, next: &str, error: Option<&str>, no_token: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(l.lang.code()) {
            (head(l.t(T::SignIn), l))
            body.login {
                main #main {
                    h1 { "Relance" }
                    form.card method="post" action="/ui/login" {
                        h2 { (l.t(T::SignIn)) " " (language_switch(l)) }
                        @if let Some(e) = error { p.notice.bad role="alert" { (e) } }
                        @if no_token {
                            p.hint { (l.t(T::NoTokenHint)) }
                        }
                        label for="name" { (l.t(T::Name)) }
                        input #name type="text" name="name" autocomplete="username" autocapitalize="none" autofocus;
                        label for="password" { (l.t(T::Password)) }
                        input #password type="password" name="password" autocomplete="current-password";
                        p.hint { (l.t(T::BootstrapHint)) }
                        input type="hidden" name="next" value=(next);
                        button.primary type="submit" { (l.t(T::SignIn)) }
                    }
                }
            }
        }
    }
}

/// A time in the estate's zone and the reader's language, inside `<time>` (whose
/// `datetime` keeps the exact UTC instant for scripts and readers).
pub fn time(l: &Locale, at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) title=(l.datetime_seconds(at)) { (l.datetime(at)) } }
}

/// A recent time as "il y a 5 min" (the full time as its title); older ones in full.
pub fn time_ago(l: &Locale, at: DateTime<Utc>) -> Markup {
    match l.relative(at) {
        Some(ago) => html! { time datetime=(at.to_rfc3339()) title=(l.datetime_seconds(at)) { (ago) } },
        None => time(l, at),
    }
}

/// A state shown as a word with a shape, never colour alone.
pub fn state_badge(l: &Locale, state: &str) -> Markup {
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
    html! { span class={"badge state-" (state)} { span aria-hidden="true" { (mark) " " } (super::text::state(state, l.lang)) } }
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
