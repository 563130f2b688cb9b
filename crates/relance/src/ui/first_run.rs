//! The first run: while no real event is stored, the overview says what to paste into
//! Brevo and the website, and offers a test event. The test event goes through the real
//! ingest path (parsed, stored, shown in the live feed) with source `test`: it fires no
//! rule, is left out of every counter and chart, and can be deleted.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use relance_core::inbound::{Identity, InboundEvent};
use relance_core::{Email, Event, Source};

use super::layout::can;
use super::locale::Locale;
use super::text::T;
use super::{CsrfForm, Empty, store_problem};
use crate::store::audit::AuditKind;
use crate::store::dashboard::TEST_EMAIL;
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::session::Session;

/// The name the test event is stored under.
pub const TEST_EVENT: &str = "relance_test";

/// The Brevo events to tick, as Brevo's settings page names them.
const BREVO_EVENTS: &[&str] =
    &["Opened", "First opening", "Clicked", "Hard bounced", "Soft bounced", "Unsubscribed", "Spam"];

/// Where Brevo and the website reach this server: `public_url`, else the request's host
/// (over https when a trusted proxy said so or the setting is https).
pub fn base_url(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &app.settings.public_url {
        return url.as_str().trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}")
}

/// The sample event: a `page_visit`-like event with no trigger, from the reserved
/// `.invalid` address (which can never receive mail).
pub fn test_event(now: DateTime<Utc>) -> anyhow::Result<InboundEvent> {
    let email = Email::parse(TEST_EMAIL).map_err(|e| anyhow::anyhow!("the test address: {e}"))?;
    let mut event = Event::new(Source::Test, relance_core::Trigger::PageVisit, now);
    event.name = TEST_EVENT.into();
    event.trigger = None;
    event.page = Some("/relance-test".into());
    Ok(InboundEvent {
        identity: Identity { email: Some(email), client_code: None },
        event,
        dedupe_key: None,
        sender_event_id: None,
        recognised: true,
        raw: serde_json::json!({"email": TEST_EMAIL, "action": TEST_EVENT, "test": true}),
    })
}

/// The "Getting started" panel.
pub fn panel(app: &AppState, l: &Locale, session: &Session, base: &str, tests_stored: bool) -> Markup {
    let token_set = app.settings.webhook_token.is_some();
    let example = serde_json::json!({
        "email": "client@example.com", "client_code": "CL001", "action": "purchase",
        "event_id": "order-8812", "metadata": {"amount": 80.0, "page": "/boutique/merci"}
    });
    let auth = if token_set { " -H \"Authorization: Bearer $RELANCE_WEBHOOK_TOKEN\"" } else { "" };
    let curl = format!(
        "curl -X POST {base}/webhook/behavior{auth} -H 'Content-Type: application/json' \\\n  -d '{}'",
        serde_json::to_string(&example).unwrap_or_default()
    );
    html! {
        section.card.wide #getting-started aria-labelledby="getting-started-title" {
            h2 #getting-started-title { (l.t(T::FrTitle)) }
            p { (l.t(T::FrIntro)) }
            ol.steps {
                li {
                    strong { (l.t(T::FrBrevo)) } " "
                    (l.t(T::FrBrevoWhere))
                    dl.facts {
                        dt { "URL" } dd { code #brevo-url { (base) "/webhook/email" } }
                        dt { (l.t(T::FrAuth)) } dd {
                            @if token_set { (l.t(T::FrAuthToken)) } @else { (l.t(T::FrAuthNone)) }
                            " " (l.t(T::FrAuthKey))
                        }
                        dt { (l.t(T::FrEvents)) } dd { @for (i, e) in BREVO_EVENTS.iter().enumerate() { @if i > 0 { ", " } em { (e) } } }
                    }
                }
                li {
                    strong { (l.t(T::FrWebsite)) } " " (l.t(T::FrWebsiteHow))
                    pre.example #behavior-example { (curl) }
                }
                li {
                    strong { (l.t(T::FrTry)) } " " (l.t(T::FrTryHow))
                    @if can(session, crate::access::Role::Editor) {
                        div.controls {
                            form.inline method="post" action="/ui/first-run/test-event" {
                                input type="hidden" name="csrf" value=(session.csrf);
                                button.primary #send-test-event type="submit" { (l.t(T::FrSendTest)) }
                            }
                            @if tests_stored {
                                form.inline method="post" action="/ui/first-run/test-events/delete" data-confirm=(l.t(T::FrDeleteConfirm)) {
                                    input type="hidden" name="csrf" value=(session.csrf);
                                    button #delete-test-events type="submit" { (l.t(T::FrDeleteTests)) }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { (l.t(T::FrHides)) }
        }
    }
}

/// Posts the sample event through the store's ingest, as the webhooks do.
pub async fn send_test_event(State(app): State<AppState>, CsrfForm(session, _): CsrfForm<Empty>) -> Response {
    let event = match test_event((app.clock)()) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "the test event could not be built");
            return super::problem(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                &session,
                session.locale.t(T::SomethingWentWrong),
            );
        }
    };
    match app.store.ingest(vec![event]).await {
        Ok(_) => {
            tracing::info!(user = %session.principal.name, "test event sent from the dashboard");
            Redirect::to("/#live").into_response()
        }
        Err(e) => store_problem(&session, e),
    }
}

pub async fn delete_test_events(
    State(app): State<AppState>,
    actor: Actor,
    CsrfForm(session, _): CsrfForm<Empty>,
) -> Response {
    let audit = actor.audit(AuditKind::Contacts, "delete_test_events").summary("test events deleted");
    match audited(&app, audit, |a| app.store.delete_test_events(a)).await {
        Ok(n) => {
            tracing::info!(deleted = n, "test events deleted from the dashboard");
            Redirect::to("/").into_response()
        }
        Err(e) => store_problem(&session, e),
    }
}
