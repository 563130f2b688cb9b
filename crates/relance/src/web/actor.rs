//! Who made a change, for its audit entry: the authenticated principal, the client's
//! address and the route (its template: `/api/contacts/{key}`, never the email in it).

use std::future::Future;

use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::access::Principal;
use crate::store::StoreError;
use crate::store::audit::{Audit, AuditKind};

#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub ip: Option<String>,
    /// `POST /api/actions/{id}/complete`.
    pub route: String,
}

impl Actor {
    /// An entry for a change of this kind, to be completed (`subject`, `summary`).
    pub fn audit(&self, kind: AuditKind, action: &str) -> Audit {
        Audit::new(&self.principal, self.ip.clone(), self.route.clone(), kind, action)
    }
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Actor, ApiError> {
        // Put there by the authorising layer of every guarded route; absent means a
        // route was wired without it, which must not pass as anyone.
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a change without an authenticated principal")))?;
        let path = parts.extensions.get::<MatchedPath>().map_or_else(|| parts.uri.path(), |m| m.as_str());
        Ok(Actor {
            principal,
            ip: parts.extensions.get::<super::client::Client>().map(|c| c.ip.to_string()),
            route: format!("{} {path}", parts.method),
        })
    }
}

/// Runs a change whose store call writes `audit` in its transaction; when the store
/// refuses it (not found, conflict, invalid), nothing changed and the refusal is written
/// on its own, with the reason.
pub async fn audited<T, F, Fut>(app: &AppState, audit: Audit, change: F) -> Result<T, StoreError>
where
    F: FnOnce(Audit) -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let refusal = audit.clone();
    match change(audit).await {
        Err(e @ (StoreError::NotFound(_) | StoreError::Conflict(_) | StoreError::Invalid { .. })) => {
            // The category only: a store message may name a contact by email.
            let why = match &e {
                StoreError::NotFound(_) => "not found".to_owned(),
                StoreError::Conflict(_) => "conflict".to_owned(),
                StoreError::Invalid { field, .. } => format!("invalid {field}"),
                _ => "refused".to_owned(),
            };
            if let Err(write) = app.store.record_audit(refusal.refused(why)).await {
                tracing::warn!(error = %write, "recording a refused change in the audit log");
            }
            Err(e)
        }
        other => other,
    }
}
