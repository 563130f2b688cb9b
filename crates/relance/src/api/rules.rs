//! Rules as versioned data: read, replace (validated, a new version, active on every
//! instance within seconds), list versions, roll back, export in the seed's format.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use relance_core::rules::{RuleError, error_line};
use relance_core::{RuleFormat, RuleSet, RuleSpec};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Path, Query};
use super::openapi::AdminRefusals;
use super::webhooks::read_body;
use crate::live_rules::hash_rules;
use crate::store::NewRuleSet;
use crate::store::audit::AuditKind;
use crate::web::AppState;
use crate::web::actor::{Actor, audited};
use crate::web::auth::Caller;
use crate::web::error::{ApiError, ErrorBody};

/// The rule set in force.
#[derive(Serialize, ToSchema)]
pub struct RulesInForce<'a> {
    /// Its stored version (every history row and job records the version that made it).
    version: i64,
    /// SHA-256 of the rules, to compare instances or files.
    hash: &'a str,
    rules: &'a [RuleSpec],
    /// With `cancel_removed_runs=true`: how many active runs of removed or disabled
    /// rules were cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    runs_cancelled: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutRulesParams {
    /// Cancel the active runs of rules this version removes or disables (reason `rule
    /// removed`). Without it they go on to their end.
    #[serde(default)]
    cancel_removed_runs: bool,
}

/// Get the rules in force.
///
/// The active version, its hash and its rules, as the engine applies them now.
#[utoipa::path(
    get, path = "/api/rules", tag = "rules", operation_id = "GetRules",
    responses((status = 200, description = "The active version and its rules", body = RulesInForce), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn get(State(app): State<AppState>) -> Response {
    in_force(&app, None)
}

fn in_force(app: &AppState, runs_cancelled: Option<u64>) -> Response {
    let rules = app.rules.current();
    let specs = rules.engine.rules().specs();
    Json(RulesInForce { version: rules.version, hash: &rules.hash, rules: &specs, runs_cancelled }).into_response()
}

/// Export the rules in force in the seed's JSON format.
///
/// The active rules as the seed's `export_rules_json` wrote them, to back up or to import
/// elsewhere.
#[utoipa::path(
    get, path = "/api/rules/export", tag = "rules", operation_id = "ExportRules",
    responses((status = 200, description = "The seed's JSON export format", body = Vec<RuleSpec>), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn export(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], app.rules.current().engine.rules().to_seed_json()).into_response()
}

/// Replace the rules.
///
/// The body is TOML (`content-type: application/toml`, or `[[rule]]` tables) or the seed's
/// JSON (an array, or `{"rules": [...]}` as `GetRules` answers). Validated as a whole:
/// a 400 lists every problem with its rule and field path, and nothing changes.
/// Otherwise it becomes a new version, in force at once here and within seconds on every
/// other instance.
#[utoipa::path(
    put, path = "/api/rules", tag = "rules", operation_id = "PutRules",
    params(PutRulesParams),
    request_body(content(
        (Vec<RuleSpec> = "application/json"),
        (String = "application/toml"),
    ), description = "The whole rule set"),
    responses(
        (status = 200, description = "The new version, in force", body = RulesInForce),
        (status = 400, description = "Invalid rules: `errors` lists every problem; nothing changed", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn put(
    State(app): State<AppState>,
    caller: Option<Extension<Caller>>,
    actor: Actor,
    Query(params): Query<PutRulesParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (text, format) = rule_text(&headers, body).await?;
    let rules = match RuleSet::parse(&text, format) {
        Ok(r) => r,
        Err(errors) => {
            let detail = format!("{} problem(s) in the rule set; nothing changed", errors.len());
            return Ok(ErrorBody::invalid_rules(detail, errors));
        }
    };
    let hash = hash_rules(&rules);
    let source = caller.map_or(Caller::Token, |Extension(c)| c).as_str().to_owned();
    let new = NewRuleSet { body: rules.to_seed_json(), hash, source, replaced_version: None };
    let before = app.rules.current();
    let removed = crate::ops::rules::removed_rules(before.engine.rules(), &rules);
    let diff = crate::ops::rules::diff(before.engine.rules(), before.version, &rules);
    let audit = actor.audit(AuditKind::Rules, "put").summary(crate::ops::rules::diff_summary(&diff)).detail(diff);
    let row = app.store.save_rule_set(new, audit).await?;
    app.rules.swap(rules, row.version, row.activated_seq);
    tracing::info!(version = row.version, source = %row.source, "new rule set active");
    let cancelled = match (params.cancel_removed_runs, removed.is_empty()) {
        (false, _) => None,
        (true, true) => Some(0),
        (true, false) => {
            let audit = actor
                .audit(AuditKind::Rules, "cancel_runs")
                .summary(format!("active runs of removed rules cancelled: {}", removed.join(", ")));
            let n = app.store.cancel_runs_of(removed.clone(), crate::ops::rules::RULE_REMOVED.into(), audit).await?;
            tracing::info!(runs = n, rules = ?removed, "active runs of removed rules cancelled");
            Some(n)
        }
    };
    Ok(in_force(&app, cancelled))
}

/// A rule problem with the line of the text it is about.
#[derive(Serialize, ToSchema)]
pub struct LocatedRuleError {
    #[serde(flatten)]
    error: RuleError,
    /// 1-based line in the submitted text, when it can be told.
    line: Option<usize>,
}

/// The verdict on a candidate rule set.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    valid: bool,
    format: &'static str,
    /// Rules in the set (when valid).
    rules: usize,
    errors: Vec<LocatedRuleError>,
}

/// Check rules without changing anything.
///
/// The same checks as `PutRules`, answered as a verdict (200 either way) with the line
/// each problem is on, for an editor that validates as one types.
#[utoipa::path(
    post, path = "/api/rules/validate", tag = "rules", operation_id = "ValidateRules",
    request_body(content(
        (Vec<RuleSpec> = "application/json"),
        (String = "application/toml"),
    ), description = "The whole rule set"),
    responses(
        (status = 200, description = "The verdict, with every problem located", body = Validation),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn validate(headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let (text, format) = rule_text(&headers, body).await?;
    let text = text.as_str();
    let verdict = match RuleSet::parse(text, format) {
        Ok(rules) => {
            Validation { valid: true, format: format_name(format), rules: rules.rules().len(), errors: vec![] }
        }
        Err(errors) => Validation {
            valid: false,
            format: format_name(format),
            rules: 0,
            errors: errors
                .into_iter()
                .map(|error| LocatedRuleError { line: error_line(text, format, &error), error })
                .collect(),
        },
    };
    Ok(Json(verdict).into_response())
}

/// A rule-set body as text, with its format: TOML when the content type says so,
/// otherwise guessed from the text.
async fn rule_text(headers: &HeaderMap, body: Body) -> Result<(String, RuleFormat), ApiError> {
    let bytes = read_body(body).await?;
    let text = String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request("invalid_rules", "the body is not UTF-8"))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let format = if content_type.contains("toml") { RuleFormat::Toml } else { RuleFormat::detect("", &text) };
    Ok((text, format))
}

fn format_name(format: RuleFormat) -> &'static str {
    match format {
        RuleFormat::Toml => "toml",
        RuleFormat::Json => "json",
    }
}

#[derive(Serialize, ToSchema)]
pub struct VersionSummary {
    version: i64,
    hash: String,
    created_at: DateTime<Utc>,
    /// Whether this version is in force.
    active: bool,
    /// How many rules it holds.
    rules: usize,
    /// Where it came from: `file:<path>`, `api`, `dashboard`, `cli`, `defaults`, `unknown`.
    source: String,
    /// How it last became active (`api`, `dashboard` for a rollback; else its source).
    activated_via: String,
    /// The version a rules-file import replaced although a person had activated it.
    replaced_version: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct VersionsPage {
    versions: Vec<VersionSummary>,
}

/// List the stored versions of the rules.
///
/// Every version ever stored, newest first, with its hash, date and whether it is in force.
#[utoipa::path(
    get, path = "/api/rules/versions", tag = "rules", operation_id = "ListRuleVersions",
    responses((status = 200, description = "Every version, newest first", body = VersionsPage), AdminRefusals),
    security(("admin_token" = []))
)]
pub async fn versions(State(app): State<AppState>) -> Result<Response, ApiError> {
    let rows = app.store.rule_set_versions().await?;
    let versions = rows
        .into_iter()
        .map(|r| {
            let rules = serde_json::from_str::<Vec<serde_json::Value>>(&r.body).map(|v| v.len()).unwrap_or(0);
            VersionSummary {
                version: r.version,
                hash: r.hash,
                created_at: r.created_at,
                active: r.active,
                rules,
                source: r.source,
                activated_via: r.activated_via,
                replaced_version: r.replaced_version,
            }
        })
        .collect();
    Ok(Json(VersionsPage { versions }).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VersionParam {
    /// A version number from `ListRuleVersions`.
    version: i64,
}

/// Put a stored rule-set version back in force.
///
/// Rolls back (or forward) to a stored version: in force at once on this instance and
/// within seconds on every other.
#[utoipa::path(
    post, path = "/api/rules/versions/{version}/activate", tag = "rules", operation_id = "ActivateRuleVersion",
    params(VersionParam),
    responses(
        (status = 200, description = "That version, in force", body = RulesInForce),
        (status = 400, description = "The version is not a number", body = ErrorBody),
        (status = 404, description = "No such version", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn activate(
    State(app): State<AppState>,
    caller: Option<Extension<Caller>>,
    actor: Actor,
    Path(VersionParam { version }): Path<VersionParam>,
) -> Result<Response, ApiError> {
    let via = caller.map_or(Caller::Token, |Extension(c)| c).as_str();
    let audit = actor.audit(AuditKind::Rules, "activate");
    audited(&app, audit, |a| crate::ops::rules::activate_version(&*app.store, &app.rules, version, via, a)).await?;
    Ok(get(State(app)).await)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsParams {
    /// Only runs in this state: active, goal_reached, completed, cancelled.
    state: Option<String>,
    /// At most this many, newest first (1..1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// List a rule's runs.
///
/// The follow-up runs of one rule, newest first, each with its steps (jobs) and why each
/// ended as it did.
#[utoipa::path(
    get, path = "/api/rules/{rule_id}/runs", tag = "rules", operation_id = "ListRuleRuns",
    params(("rule_id" = String, Path, description = "The rule's id"), RunsParams),
    responses(
        (status = 200, description = "The runs", body = Vec<crate::store::runs::RunView>),
        (status = 400, description = "Unknown state or limit out of range", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn runs(
    State(app): State<AppState>,
    Path(rule_id): Path<String>,
    Query(params): Query<RunsParams>,
) -> Result<Response, ApiError> {
    use relance_core::plan::RunState;
    let state = match params.state.as_deref() {
        None => None,
        Some(s) => Some(RunState::parse(s).ok_or_else(|| {
            ApiError::bad_request("invalid_state", format!("state: {s:?} is not one of {}", RunState::NAMES.join(", ")))
        })?),
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("invalid_limit", "limit: between 1 and 1000"));
    }
    let filter = crate::store::runs::RunFilter { rule_id: Some(rule_id), state, limit, ..Default::default() };
    Ok(Json(app.store.runs(filter, None).await?).into_response())
}

/// The kill switch's answer.
#[derive(Serialize, ToSchema)]
pub struct PauseAnswer {
    rule_id: String,
    paused: bool,
    /// Jobs held (pause) or released (resume).
    jobs: u64,
}

fn known_rule(app: &AppState, rule_id: &str) -> Result<(), ApiError> {
    let live = app.rules.current();
    if live.engine.rules().rules().iter().any(|r| &*r.rule_id == rule_id) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no rule {rule_id:?} in the rule set in force")))
    }
}

/// Pause a rule.
///
/// The kill switch. The rule fires no more (its firings create nothing; answers list it as `paused`) and
/// its pending jobs are `held`: not run, not lost, until it is resumed or they are
/// cancelled. Stored: it holds on every instance and across restarts.
#[utoipa::path(
    post, path = "/api/rules/{rule_id}/pause", tag = "rules", operation_id = "PauseRule",
    params(("rule_id" = String, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "Paused; `jobs` were held", body = PauseAnswer),
        (status = 404, description = "No such rule in force", body = ErrorBody),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn pause(
    State(app): State<AppState>,
    actor: Actor,
    Path(rule_id): Path<String>,
) -> Result<Response, ApiError> {
    known_rule(&app, &rule_id)?;
    let audit = actor.audit(AuditKind::Rules, "pause").summary("kill switch on");
    let jobs = app.store.pause_rule(rule_id.clone(), audit).await?;
    tracing::info!(rule = %rule_id, jobs_held = jobs, "rule paused");
    Ok(Json(PauseAnswer { rule_id, paused: true, jobs }).into_response())
}

/// Resume a paused rule.
///
/// The rule fires again; its held jobs are pending again and run when due, checked again
/// (suppression, contact pressure) as any job is.
#[utoipa::path(
    post, path = "/api/rules/{rule_id}/resume", tag = "rules", operation_id = "ResumeRule",
    params(("rule_id" = String, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "Resumed; `jobs` were released", body = PauseAnswer),
        AdminRefusals,
    ),
    security(("admin_token" = []))
)]
pub async fn resume(
    State(app): State<AppState>,
    actor: Actor,
    Path(rule_id): Path<String>,
) -> Result<Response, ApiError> {
    let audit = actor.audit(AuditKind::Rules, "resume").summary("kill switch off");
    let jobs = app.store.resume_rule(rule_id.clone(), audit).await?;
    tracing::info!(rule = %rule_id, jobs_released = jobs, "rule resumed");
    Ok(Json(PauseAnswer { rule_id, paused: false, jobs }).into_response())
}
