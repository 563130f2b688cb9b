//! Integrations: whether Brevo, Power Automate, webhook signing and the tokens are set
//! (never their values), the last real call to each, the database and this instance —
//! and a Test button per integration that makes one harmless real call and shows the
//! answer (`dispatch::probe`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use relance_core::ActionType;
use serde::Deserialize;

use super::layout::{self, Nav, time};
use super::locale::Locale;
use super::text::T;
use super::{CsrfForm, problem, store_problem};
use crate::config::ExecutorKind;
use crate::dispatch::executors::Executors;
use crate::dispatch::probe::Probe;
use crate::dispatch::signing::SigningKey;
use crate::store::jobs::{Attempt, LastCalls};
use crate::web::AppState;
use crate::web::session::Session;

/// The integrations a Test button exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Brevo,
    PowerAutomate,
    Webhook,
}

impl Target {
    fn parse(s: &str) -> Option<Target> {
        match s {
            "brevo" => Some(Target::Brevo),
            "power_automate" => Some(Target::PowerAutomate),
            "webhook" => Some(Target::Webhook),
            _ => None,
        }
    }
}

pub async fn page(State(app): State<AppState>, Extension(session): Extension<Session>) -> Response {
    render(&app, &session, None).await
}

#[derive(Deserialize)]
pub struct TestForm {
    url: Option<String>,
}

/// One Test button: the call is made now and its answer shown on the page.
pub async fn test(
    State(app): State<AppState>,
    Path(target): Path<String>,
    CsrfForm(session, form): CsrfForm<TestForm>,
) -> Response {
    let l = &session.locale;
    let Some(target) = Target::parse(&target) else {
        return problem(StatusCode::NOT_FOUND, &session, &l.f(T::NotFound, &[&target]));
    };
    let executors = match Executors::new(Arc::new(app.settings.dispatch.clone())) {
        Ok(e) => e,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &session, &e.to_string()),
    };
    let now = (app.clock)();
    let id = format!("ping_{}", uuid::Uuid::now_v7());
    let probe = match target {
        Target::Brevo => executors.probe_brevo().await,
        Target::PowerAutomate => executors.ping_power_automate(&id, now).await,
        Target::Webhook => match form.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            Some(url) => executors.ping_webhook(url, &id, now).await,
            None => return problem(StatusCode::BAD_REQUEST, &session, l.t(T::InWebhookUrlNeeded)),
        },
    };
    tracing::info!(?target, ok = probe.ok, status = ?probe.http_status, user = %session.principal.name, "integration test");
    render(&app, &session, Some((target, probe))).await
}

fn routed_to(app: &AppState, kind: ExecutorKind) -> Vec<ActionType> {
    ActionType::ALL.iter().copied().filter(|a| !a.is_internal() && app.settings.dispatch.route(*a) == kind).collect()
}

/// The URLs the rules in force send webhooks to.
fn webhook_urls(app: &AppState) -> Vec<String> {
    let mut urls: Vec<String> = app
        .rules
        .current()
        .engine
        .rules()
        .specs()
        .iter()
        .flat_map(|r| r.actions.iter())
        .filter(|a| a.action_type == ActionType::TriggerWebhook)
        .filter_map(|a| a.config.get("url").and_then(|u| u.as_str()).map(str::to_owned))
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

async fn render(app: &AppState, session: &Session, result: Option<(Target, Probe)>) -> Response {
    let l = &session.locale;
    let d = &app.settings.dispatch;
    let loaded = async {
        let brevo = app.store.last_calls(routed_to(app, ExecutorKind::Brevo)).await?;
        let flows = app.store.last_calls(routed_to(app, ExecutorKind::PowerAutomate)).await?;
        let hooks = app.store.last_calls(routed_to(app, ExecutorKind::Webhook)).await?;
        let facts = app.store.database_facts().await?;
        Ok::<_, crate::store::StoreError>((brevo, flows, hooks, facts))
    };
    let (brevo_calls, flow_calls, hook_calls, (db_bytes, schema)) = match loaded.await {
        Ok(v) => v,
        Err(e) => return store_problem(session, e),
    };
    let editor = layout::can(session, crate::access::Role::Editor);
    let shown = |t: Target| result.as_ref().filter(|(r, _)| *r == t).map(|(_, p)| p);
    let signing = d.webhook_signing_secret.as_ref().map(|s| SigningKey::parse(s.expose()).map(|_| ()));
    let urls = webhook_urls(app);
    let body = html! {
        div.grid {
            section.card #brevo {
                h2 { "Brevo" }
                dl.facts {
                    dt { (l.t(T::InApiKey)) } dd { (set(l, d.brevo.is_some())) }
                    @if let Some(b) = &d.brevo {
                        dt { (l.t(T::InAddress)) } dd { code { (b.base_url) } }
                        dt { (l.t(T::InSender)) } dd {
                            @match (&b.sender_email, &b.sender_name) {
                                (Some(e), Some(n)) => { (n) " <" (e) ">" },
                                (Some(e), None) => (e),
                                _ => span.muted { (l.t(T::InSenderNone)) },
                            }
                        }
                        dt { (l.t(T::InSmsSender)) } dd { (b.sms_sender) }
                        dt { (l.t(T::InTemplates)) } dd {
                            @if b.templates.is_empty() { span.muted { (l.t(T::InTemplatesNone)) } }
                            @else { ul.plain #brevo-templates {
                                @for (name, id) in sorted(&b.templates) { li { code { (name) } " → " (id) } }
                            } }
                        }
                    }
                    (last_calls(l, &brevo_calls))
                }
                (test_button(l, session, editor, "brevo", T::InTestBrevo, None))
                (probe_answer(l, shown(Target::Brevo)))
            }
            section.card #power-automate {
                h2 { "Power Automate" }
                dl.facts {
                    dt { (l.t(T::InFlowUrl)) } dd { (set(l, d.power_automate_url.is_some())) }
                    (last_calls(l, &flow_calls))
                }
                (test_button(l, session, editor, "power_automate", T::InTestPing, None))
                (probe_answer(l, shown(Target::PowerAutomate)))
            }
            section.card #webhooks {
                h2 { (l.t(T::InWebhooks)) }
                dl.facts {
                    dt { (l.t(T::InSigning)) } dd #signing {
                        @match &signing {
                            Some(Ok(())) => span.badge.state-done { (l.t(T::InSigningOk)) },
                            Some(Err(why)) => span.badge.state-dead { (l.f(T::InSigningBad, &[why])) },
                            None => span.muted { (l.t(T::InSigningNone)) },
                        }
                    }
                    dt { (l.t(T::InRuleUrls)) } dd {
                        @if urls.is_empty() { span.muted { (l.t(T::InRuleUrlsNone)) } }
                        @else { ul.plain { @for u in &urls { li { code.wrap { (u) } } } } }
                    }
                    (last_calls(l, &hook_calls))
                }
                (test_button(l, session, editor, "webhook", T::InTestPing, Some(urls.first().map(String::as_str).unwrap_or(""))))
                (probe_answer(l, shown(Target::Webhook)))
                p.muted { (l.t(T::InPingDoc)) " " code { "docs/integrations.md" } }
            }
            section.card #tokens {
                h2 { (l.t(T::InTokens)) }
                dl.facts {
                    dt { code { "RELANCE_WEBHOOK_TOKEN" } } dd { (set(l, app.settings.webhook_token.is_some())) }
                    dt { code { "RELANCE_ADMIN_TOKEN" } } dd { (set(l, app.settings.admin_token.is_some())) }
                }
                p.muted { (l.t(T::InTokensHint)) }
            }
            section.card #database {
                h2 { (l.t(T::InDatabase)) }
                dl.facts {
                    dt { (l.t(T::InBackend)) } dd { (app.store.backend()) }
                    dt { (l.t(T::InSize)) } dd { (size(l, db_bytes)) }
                    dt { (l.t(T::InSchema)) } dd { (schema) }
                }
            }
            section.card #instance {
                h2 { (l.t(T::InInstance)) }
                dl.facts {
                    dt { (l.t(T::InVersion)) } dd { (env!("CARGO_PKG_VERSION")) }
                    dt { (l.t(T::InUptime)) } dd #uptime { (uptime(l, app.started.elapsed().as_secs())) }
                }
            }
        }
    };
    layout::page(l.t(T::Integrations), Nav::Integrations, session, body).into_response()
}

fn sorted(templates: &std::collections::HashMap<String, i64>) -> Vec<(&String, &i64)> {
    let mut names: Vec<_> = templates.iter().collect();
    names.sort();
    names
}

fn set(l: &Locale, is_set: bool) -> Markup {
    if is_set {
        html! { span.badge.state-done { span aria-hidden="true" { "✓ " } (l.t(T::InSet)) } }
    } else {
        html! { span.badge { span aria-hidden="true" { "– " } (l.t(T::InNotSet)) } }
    }
}

fn attempt(l: &Locale, a: &Attempt) -> Markup {
    html! {
        (time(l, a.started_at))
        @if let Some(s) = a.http_status { " · HTTP " (s) }
        @if let Some(r) = a.response.as_deref().filter(|r| !r.is_empty()) { br; code.excerpt { (excerpt(r, 160)) } }
    }
}

fn last_calls(l: &Locale, calls: &LastCalls) -> Markup {
    html! {
        dt { (l.t(T::InLastOk)) } dd { @if let Some(a) = &calls.ok { (attempt(l, a)) } @else { span.muted { (l.t(T::Never)) } } }
        dt { (l.t(T::InLastFailed)) } dd { @if let Some(a) = &calls.failed { (attempt(l, a)) } @else { span.muted { (l.t(T::Never)) } } }
    }
}

fn test_button(l: &Locale, session: &Session, editor: bool, target: &str, label: T, url: Option<&str>) -> Markup {
    html! {
        @if editor {
            form.test method="post" action={"/ui/integrations/" (target) "/test"} {
                input type="hidden" name="csrf" value=(session.csrf);
                @if let Some(u) = url {
                    label for="webhook-url" { (l.t(T::InWebhookUrl)) }
                    input #webhook-url type="url" name="url" value=(u) required placeholder="https://…";
                }
                button.primary type="submit" id={"test-" (target)} { (l.t(label)) }
            }
        }
    }
}

fn probe_answer(l: &Locale, probe: Option<&Probe>) -> Markup {
    html! {
        @if let Some(p) = probe {
            div.probe role="status" class=(if p.ok { "notice good" } else { "notice bad" }) {
                strong { (l.t(if p.ok { T::InTestOk } else { T::InTestFailed })) }
                @if let Some(s) = p.http_status { " · HTTP " (s) }
                " · " (p.millis) " ms"
                @if !p.detail.is_empty() { br; code.excerpt { (excerpt(&p.detail, 300)) } }
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

fn size(l: &Locale, bytes: i64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    let text = format!("{mib:.1}");
    match l.lang {
        super::locale::Lang::Fr => format!("{}\u{a0}Mio", text.replace('.', ",")),
        super::locale::Lang::En => format!("{text} MiB"),
    }
}

fn uptime(l: &Locale, secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if d > 0 {
        l.f(T::InUptimeDays, &[&d, &h])
    } else if h > 0 {
        format!("{h}\u{a0}h {m}\u{a0}min")
    } else {
        format!("{m}\u{a0}min")
    }
}
