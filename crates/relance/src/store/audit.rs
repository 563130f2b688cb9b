//! The audit log's rows: who changed what, from where, with what outcome. A change's row
//! is written by the backend in the change's own transaction (every mutating store call
//! takes an [`Audit`]), so that a change is never without its row nor a row without its
//! change. Rows never hold secrets, and name contacts by their internal id only (an
//! erased contact leaves nothing personal here).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::access::{ActorKind, Principal};

/// What was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Rules,
    Actions,
    Contacts,
    Users,
    Keys,
    Sessions,
}

impl AuditKind {
    pub const ALL: [AuditKind; 6] = [
        AuditKind::Rules,
        AuditKind::Actions,
        AuditKind::Contacts,
        AuditKind::Users,
        AuditKind::Keys,
        AuditKind::Sessions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Rules => "rules",
            AuditKind::Actions => "actions",
            AuditKind::Contacts => "contacts",
            AuditKind::Users => "users",
            AuditKind::Keys => "keys",
            AuditKind::Sessions => "sessions",
        }
    }

    pub fn parse(s: &str) -> Option<AuditKind> {
        AuditKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry to write.
#[derive(Debug, Clone)]
pub struct Audit {
    pub actor: String,
    pub actor_kind: ActorKind,
    pub ip: Option<String>,
    pub kind: AuditKind,
    /// `put`, `activate`, `pause`, `cancel`, `complete`, `erase`, `create`, `revoke`…
    pub action: String,
    /// `PUT /api/rules`, `POST /ui/actions/{id}/cancel`, `cli: relance users add`.
    pub route: String,
    /// What it was about: `rule_set:v7`, `job:01H…`, `contact:42`, `user:marie`.
    /// Backends fill it in where only they know it (a new version, a contact's id).
    pub subject: Option<String>,
    pub summary: String,
    /// Structured detail (a rule-set diff); never a secret nor personal data.
    pub detail: Option<serde_json::Value>,
    /// `ok`, or why it was refused (`refused: wrong password`).
    pub outcome: String,
}

impl Audit {
    pub fn new(
        principal: &Principal,
        ip: Option<String>,
        route: impl Into<String>,
        kind: AuditKind,
        action: &str,
    ) -> Audit {
        Audit {
            actor: principal.name.clone(),
            actor_kind: principal.kind,
            ip,
            kind,
            action: action.to_owned(),
            route: route.into(),
            subject: None,
            summary: String::new(),
            detail: None,
            outcome: "ok".into(),
        }
    }

    /// A change made by a CLI command on this machine.
    pub fn cli(command: &str, kind: AuditKind, action: &str) -> Audit {
        Audit::new(&Principal::cli(), None, format!("cli: relance {command}"), kind, action)
    }

    /// A change Relance makes by itself (a rules file imported at start).
    pub fn system(what: &str, kind: AuditKind, action: &str) -> Audit {
        let system = Principal { name: "system".into(), kind: ActorKind::System, role: crate::access::Role::Admin };
        Audit::new(&system, None, what, kind, action)
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Audit {
        self.subject = Some(subject.into());
        self
    }

    pub fn summary(mut self, summary: impl Into<String>) -> Audit {
        self.summary = summary.into();
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Audit {
        self.detail = Some(detail);
        self
    }

    pub fn refused(mut self, why: impl std::fmt::Display) -> Audit {
        self.outcome = format!("refused: {why}");
        self
    }

    /// The subject when the caller left it to the backend.
    pub fn subject_or(&self, fallback: impl FnOnce() -> String) -> String {
        self.subject.clone().unwrap_or_else(fallback)
    }

    pub fn detail_json(&self) -> Option<String> {
        self.detail.as_ref().map(|d| d.to_string())
    }
}

/// One stored entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// user, key, admin_token, webhook_token, local, cli or system.
    pub actor_kind: String,
    pub ip: Option<String>,
    pub kind: String,
    pub action: String,
    pub route: String,
    pub subject: Option<String>,
    pub summary: String,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub outcome: String,
}

/// Which entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since: Option<DateTime<Utc>>,
    pub actor: Option<String>,
    pub kind: Option<AuditKind>,
    /// Entries older than this id (paging).
    pub before_id: Option<i64>,
    pub limit: usize,
}

impl Audit {
    /// An import's entry says what it did (no row content: that is personal data).
    pub fn with_import_counts(self, outcomes: &[super::ImportOutcome]) -> Audit {
        let created = outcomes.iter().filter(|o| o.created).count();
        let skipped = outcomes.iter().filter(|o| o.rejected.is_some()).count();
        self.with_counts(created, outcomes.len() - created - skipped, skipped)
    }

    pub fn with_counts(mut self, created: usize, updated: usize, skipped: usize) -> Audit {
        let rows = created + updated + skipped;
        let counts = format!("{rows} rows: {created} created, {updated} updated, {skipped} skipped");
        self.summary = if self.summary.is_empty() { counts } else { format!("{}; {counts}", self.summary) };
        self
    }
}
