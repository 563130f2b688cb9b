//! CSV import from the dashboard, in two steps: the file is uploaded and checked (nothing
//! written: every bad row named by its line, a preview of the good ones), then a Confirm
//! imports it through the same path as `POST /api/contacts/import`.

use axum::Extension;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::locale::Locale;
use super::text::T;
use super::{CsrfForm, problem, store_problem};
use crate::import::{ImportOptions, ImportReport, Rejected};
use crate::store::audit::AuditKind;
use crate::web::AppState;
use crate::web::actor::Actor;
use crate::web::session::Session;

/// Files larger than this go through the API or the CLI.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Rows shown in the preview.
const PREVIEW: usize = 10;

/// The upload form on the contacts page.
pub fn upload_form(l: &Locale, session: &Session) -> Markup {
    html! {
        details.card #import {
            summary { (l.t(T::ImTitle)) }
            p.muted { (l.t(T::ImHint)) " " code { (crate::import::COLUMNS.join(", ")) } }
            form method="post" action="/ui/contacts/import" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="import-file" { (l.t(T::ImFile)) }
                input #import-file type="file" name="file" accept=".csv,text/csv" required;
                button.primary type="submit" { (l.t(T::ImCheck)) }
            }
        }
    }
}

fn options(app: &AppState) -> ImportOptions {
    ImportOptions { default_country: app.settings.import_default_country.clone() }
}

/// Step 1: read the file, check every row, write nothing.
pub async fn check(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    mut multipart: Multipart,
) -> Response {
    let mut csrf = None;
    let mut file: Option<Vec<u8>> = None;
    let mut too_big = false;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or("").to_owned();
                match field.bytes().await {
                    Ok(bytes) if name == "csrf" => csrf = Some(String::from_utf8_lossy(&bytes).into_owned()),
                    Ok(bytes) if name == "file" => {
                        too_big = bytes.len() > MAX_FILE_BYTES;
                        file = Some(bytes.to_vec());
                    }
                    Ok(_) => {}
                    Err(_) => too_big = true,
                }
            }
            Ok(None) => break,
            Err(_) => {
                too_big = true;
                break;
            }
        }
    }
    // The token is checked as on every form (a multipart body is not a `CsrfForm`).
    let l = &session.locale;
    if !csrf.is_some_and(|c| session.csrf_matches(&c)) {
        return (StatusCode::FORBIDDEN, l.t(T::StaleForm)).into_response();
    }
    if too_big {
        return problem(StatusCode::PAYLOAD_TOO_LARGE, &session, &l.f(T::ImTooBig, &[&(MAX_FILE_BYTES / 1024)]));
    }
    let Some(data) = file.filter(|f| !f.is_empty()) else {
        return problem(StatusCode::BAD_REQUEST, &session, l.t(T::ImNoFile));
    };
    let (rows, rejected, sep, encoding) = crate::import::parse_with(&data, &options(&app));
    let separator = if sep == b'\t' { "tab".to_owned() } else { (sep as char).to_string() };
    let fatal = rejected.iter().any(|r| r.line == 1);
    let body = html! {
        section.card #import-check {
            h2 { (l.t(T::ImChecked)) }
            p { (l.f(T::ImRead, &[&encoding, &separator, &rows.len(), &rejected.len()])) }
            (rejected_table(l, &rejected))
            @if !rows.is_empty() {
                h3 { (l.f(T::ImPreview, &[&rows.len().min(PREVIEW)])) }
                div.scroll { table #import-preview {
                    thead { tr { th.num { (l.t(T::ImLine)) } th { (l.t(T::CtEmail)) } th { (l.t(T::CtClientCode)) } th { (l.t(T::CtSegment)) } } }
                    tbody { @for r in rows.iter().take(PREVIEW) {
                        tr {
                            td.num { (r.line) }
                            td { @if let Some(e) = &r.update.email { (e.as_str()) } }
                            td { @if let Some(c) = &r.update.client_code { (c.as_str()) } }
                            td { @if let Some(s) = &r.update.segment { (s) } }
                        }
                    } }
                } }
            }
            @if !fatal && !rows.is_empty() {
                form method="post" action="/ui/contacts/import/confirm" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="data" value=(STANDARD.encode(&data));
                    @if !rejected.is_empty() {
                        label.check { input type="checkbox" name="skip_invalid" value="true" required; " " (l.f(T::ImSkipBad, &[&rejected.len()])) }
                    }
                    button.primary #import-confirm type="submit" { (l.f(T::ImConfirm, &[&rows.len()])) }
                }
            }
            p { a href="/ui/contacts" { (l.t(T::ImBack)) } }
        }
    };
    layout::page(l.t(T::ImTitle), Nav::Contacts, &session, body).into_response()
}

fn rejected_table(l: &Locale, rejected: &[Rejected]) -> Markup {
    html! {
        @if !rejected.is_empty() {
            div.scroll { table #import-rejected {
                thead { tr { th.num { (l.t(T::ImLine)) } th { (l.t(T::OvProblem)) } } }
                tbody { @for r in rejected { tr { td.num { (r.line) } td { (r.reason) } } } }
            } }
        }
    }
}

#[derive(Deserialize)]
pub struct Confirm {
    data: String,
    skip_invalid: Option<String>,
}

/// Step 2: import what was checked.
pub async fn confirm(
    State(app): State<AppState>,
    actor: Actor,
    CsrfForm(session, form): CsrfForm<Confirm>,
) -> Response {
    let l = &session.locale;
    let Ok(data) = STANDARD.decode(form.data.as_bytes()) else {
        return problem(StatusCode::BAD_REQUEST, &session, l.t(T::StaleForm));
    };
    let skip = form.skip_invalid.as_deref() == Some("true");
    let audit = actor
        .audit(AuditKind::Contacts, "import")
        .summary(format!("CSV import from the dashboard (skip_invalid={skip})"));
    let opts = options(&app);
    let report = match crate::import::import(&*app.store, &data, skip, &opts, audit).await {
        Ok(r) => r,
        Err(e) => return store_problem(&session, e),
    };
    let status = if report.imported { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    (status, layout::page(l.t(T::ImTitle), Nav::Contacts, &session, result(l, &report))).into_response()
}

fn result(l: &Locale, report: &ImportReport) -> Markup {
    html! {
        section.card #import-result {
            @if report.imported {
                p.notice.good role="status" { (l.f(T::ImDone, &[&report.created, &report.updated, &report.rejected.len()])) }
            } @else {
                p.notice.bad role="alert" { (l.t(T::ImNothing)) }
            }
            (rejected_table(l, &report.rejected))
            p { a href="/ui/contacts" { (l.t(T::ImBack)) } }
        }
    }
}
