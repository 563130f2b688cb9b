//! The API described from the code: OpenAPI 3.1 at `/openapi.json` (every route is
//! registered through `utoipa_axum`, so a route cannot exist without its description),
//! the same API as a Swagger 2.0 custom connector for Power Automate at
//! `/connector/swagger.json`, and self-contained JSON Schemas for Power Automate's
//! "Parse JSON" at `/schemas/{name}.json`.

pub mod parse_json;
pub mod payloads;
pub mod swagger2;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, Modify};

use super::extract::Path;
use crate::config::Settings;
use crate::web::error::{ApiError, ErrorBody};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Relance",
        description = "Event-driven marketing automation: Brevo and website events in, lead scores, tags and follow-up actions out.",
        license(name = "MIT"),
    ),
    components(schemas(ErrorBody, crate::dispatch::payload::ActionPayload)),
    modifiers(&Security),
    tags(
        (name = "webhooks", description = "Events in: Brevo and the website"),
        (name = "contacts", description = "Contacts, their history and why they score what they score"),
        (name = "actions", description = "Scheduled actions, and the external executor's claims"),
        (name = "rules", description = "Rules as versioned data, and backtests"),
        (name = "events", description = "The stored event log"),
        (name = "operations", description = "Monitoring"),
        (name = "access", description = "Users, API keys and the audit log (admin)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_owned());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "admin_token",
            bearer(
                "An API key (`relance keys create`) as `Authorization: Bearer rlk_…`, whose role must open the \
                 route (each operation names its role); RELANCE_ADMIN_TOKEN works too, as admin (open when the \
                 server has none).",
            ),
        );
        components.add_security_scheme(
            "webhook_token",
            bearer(
                "RELANCE_WEBHOOK_TOKEN or an API key with the ingest (or editor, admin) role, as a Bearer token or \
                 as the password of Basic authentication (Brevo offers both); the admin token is accepted too. \
                 Open when the server has no webhook token.",
            ),
        );
    }
}

/// 401, 403 and 429: what any authenticated operation may answer.
pub struct AdminRefusals;

impl IntoResponses for AdminRefusals {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content("application/json", Content::new(Some(Ref::from_schema_name("ErrorBody"))))
                .build()
                .into()
        };
        BTreeMap::from([
            ("401".to_owned(), error("Missing, wrong or revoked API key or token")),
            (
                "403".to_owned(),
                error(
                    "The caller's role does not open this route (`role_too_low`), or a dashboard session \
                     called without its token in `X-CSRF-Token`",
                ),
            ),
            ("429".to_owned(), error("Storage busy or unavailable; retry after `Retry-After` seconds")),
        ])
    }
}

/// The `{key}` of the contact routes.
pub struct ContactKeyParam;

impl IntoParams for ContactKeyParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("key")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some("The contact's email or CRM client code"))
                .schema(Some(RefOr::T(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String)
                        .min_length(Some(1))
                        .examples(["marie.dupont@example.fr"])
                        .into(),
                )))
                .build(),
        ]
    }
}

/// The OpenAPI document and what is derived from it, computed once at start.
pub struct Documents {
    openapi: Value,
    schemas: BTreeMap<&'static str, Value>,
    public_url: Option<url::Url>,
}

/// The Parse JSON schemas served, by file name: (name, component, what it describes).
pub const PARSE_JSON_SCHEMAS: &[(&str, &str, &str)] = &[
    ("event-answer", "EventAnswer", "The answer to one event posted to /webhook/email or /webhook/behavior"),
    ("batch-answer", "BatchAnswer", "The answer to an array of events"),
    ("action", "ActionPayload", "An action as Power Automate, signed webhooks and claims receive it"),
    ("claimed-actions", "ClaimedActions", "The answer to POST /api/actions/claim"),
    ("brevo-event", "BrevoEvent", "A Brevo webhook event"),
    ("behavior-event", "BehaviorEvent", "A website behaviour event"),
    ("error", "ErrorBody", "Every error answer"),
];

impl Documents {
    pub fn new(mut doc: utoipa::openapi::OpenApi, settings: &Settings) -> anyhow::Result<Documents> {
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        if let Some(url) = &settings.public_url {
            doc.servers = Some(vec![utoipa::openapi::Server::new(url.as_str().trim_end_matches('/'))]);
        }
        let openapi = serde_json::to_value(&doc)?;
        let mut schemas = BTreeMap::new();
        for (name, component, _) in PARSE_JSON_SCHEMAS {
            let schema = parse_json::standalone(&openapi, component)
                .ok_or_else(|| anyhow::anyhow!("no component {component} in the OpenAPI document"))?;
            schemas.insert(*name, schema);
        }
        Ok(Documents { openapi, schemas, public_url: settings.public_url.clone() })
    }

    pub fn openapi(&self) -> &Value {
        &self.openapi
    }

    /// Where clients reach this server: the configured public URL, else the request's
    /// `Host` and the scheme a trusted proxy forwards, with https unless the host is local.
    pub fn target(&self, headers: &HeaderMap, forwarded_https: Option<bool>) -> swagger2::Target {
        if let Some(url) = &self.public_url {
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or("localhost")),
                None => url.host_str().unwrap_or("localhost").to_owned(),
            };
            let path = url.path().trim_end_matches('/');
            return swagger2::Target {
                host,
                base_path: if path.is_empty() { "/".into() } else { path.to_owned() },
                scheme: url.scheme().to_owned(),
            };
        }
        let text = |name| headers.get(name).and_then(|v: &header::HeaderValue| v.to_str().ok());
        let host = text(header::HOST.as_str()).unwrap_or("localhost").to_owned();
        let local = host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]");
        let scheme = match forwarded_https {
            Some(true) => "https",
            Some(false) => "http",
            None if local => "http",
            None => "https",
        }
        .to_owned();
        swagger2::Target { host, base_path: "/".into(), scheme }
    }
}

/// The public routes serving the documents (no token: they hold no data).
pub fn routes<S: Clone + Send + Sync + 'static>(docs: Arc<Documents>) -> axum::Router<S> {
    axum::Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/connector/swagger.json", get(connector))
        .route("/schemas", get(schema_index))
        .route("/schemas/{file}", get(schema_file))
        .with_state(docs)
}

async fn openapi_json(State(docs): State<Arc<Documents>>) -> Json<Value> {
    Json(docs.openapi.clone())
}

async fn connector(
    State(docs): State<Arc<Documents>>,
    client: Option<axum::Extension<crate::web::client::Client>>,
    headers: HeaderMap,
) -> Json<Value> {
    let forwarded_https = client.and_then(|c| c.forwarded_https);
    Json(swagger2::convert(&docs.openapi, &docs.target(&headers, forwarded_https)))
}

async fn schema_index(State(docs): State<Arc<Documents>>) -> Json<Value> {
    let list: Vec<Value> = PARSE_JSON_SCHEMAS
        .iter()
        .filter(|(name, ..)| docs.schemas.contains_key(name))
        .map(|(name, _, about)| json!({"name": name, "url": format!("/schemas/{name}.json"), "describes": about}))
        .collect();
    Json(json!({"schemas": list}))
}

async fn schema_file(State(docs): State<Arc<Documents>>, Path(file): Path<String>) -> Result<Response, ApiError> {
    let name = file.strip_suffix(".json").unwrap_or(&file);
    match docs.schemas.get(name) {
        Some(schema) => Ok(Json(schema.clone()).into_response()),
        None => Err(ApiError::NotFound(format!(
            "no schema {file:?}; available: {}",
            PARSE_JSON_SCHEMAS.iter().map(|(n, ..)| format!("{n}.json")).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Writes each operation's required role into its description (and so into the Power
/// Automate connector's), from the same table the authorising layer reads.
pub fn describe_roles(openapi: &mut utoipa::openapi::OpenApi, table: &[crate::web::auth::RouteRole]) {
    for (path, item) in openapi.paths.paths.iter_mut() {
        let operations = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op.as_mut() else { continue };
            let Some(need) = crate::web::auth::need_of(table, method, path) else { continue };
            let line = match need {
                crate::access::Need::Public => "Role: none (public).".to_owned(),
                crate::access::Need::Ingest => {
                    "Role: `ingest` (or `editor`, `admin`; the webhook or admin token also work).".to_owned()
                }
                crate::access::Need::Role(r) => format!("Role: `{r}` or above (viewer < editor < admin)."),
            };
            op.description = Some(match op.description.take() {
                Some(d) if !d.is_empty() => format!("{d}\n\n{line}"),
                _ => line,
            });
        }
    }
}
