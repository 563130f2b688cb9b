//! Who may do what: roles, the people and programs that hold them, and the secrets they
//! present (passwords, API keys, session ids). Pure: no storage, no HTTP. The route
//! table lives next to the routes (`web::access`); the rows live in `store::access`.

pub mod password;
pub mod throttle;
pub mod token;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// What a principal may do. `Viewer < Editor < Admin`; `Ingest` stands apart: it opens
/// the webhooks and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
    Ingest,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Editor, Role::Admin, Role::Ingest];
    /// What a person can hold (ingest is for senders only).
    pub const FOR_USERS: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Ingest => "ingest",
        }
    }

    /// The rank on the viewer–editor–admin ladder; ingest is off it.
    fn rank(self) -> Option<u8> {
        match self {
            Role::Viewer => Some(0),
            Role::Editor => Some(1),
            Role::Admin => Some(2),
            Role::Ingest => None,
        }
    }

    /// Whether this role opens what `needed` guards.
    pub fn satisfies(self, needed: Need) -> bool {
        match needed {
            Need::Public => true,
            // Senders: ingest keys, and editors and admins (one Power Automate connection
            // may both post events and handle jobs).
            Need::Ingest => matches!(self, Role::Ingest | Role::Editor | Role::Admin),
            Need::Role(r) => match (self.rank(), r.rank()) {
                (Some(have), Some(need)) => have >= need,
                _ => false,
            },
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("{s:?} is not a role: use viewer, editor, admin or ingest"))
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (health, sign-in page, assets).
    Public,
    /// A sender of events: `/webhook/*`.
    Ingest,
    /// At least this role on the viewer–editor–admin ladder.
    Role(Role),
}

impl Need {
    pub fn describe(self) -> &'static str {
        match self {
            Need::Public => "public",
            Need::Ingest => "ingest",
            Need::Role(Role::Viewer) => "viewer",
            Need::Role(Role::Editor) => "editor",
            Need::Role(Role::Admin) => "admin",
            Need::Role(Role::Ingest) => "ingest",
        }
    }
}

/// How a principal was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A named user, signed in to the dashboard.
    User,
    /// A named API key.
    Key,
    /// `RELANCE_ADMIN_TOKEN` (bootstrap and compatibility).
    AdminToken,
    /// `RELANCE_WEBHOOK_TOKEN`.
    WebhookToken,
    /// No token configured, loopback only: whoever is on this machine.
    Local,
    /// The command line, on the server's machine.
    Cli,
    /// Relance itself (a rules file imported at start).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Key => "key",
            ActorKind::AdminToken => "admin_token",
            ActorKind::WebhookToken => "webhook_token",
            ActorKind::Local => "local",
            ActorKind::Cli => "cli",
            ActorKind::System => "system",
        }
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's or key's name; `admin-token`, `webhook-token`, `local` otherwise.
    pub name: String,
    pub kind: ActorKind,
    pub role: Role,
}

impl Principal {
    pub fn admin_token() -> Principal {
        Principal { name: "admin-token".into(), kind: ActorKind::AdminToken, role: Role::Admin }
    }

    pub fn webhook_token() -> Principal {
        Principal { name: "webhook-token".into(), kind: ActorKind::WebhookToken, role: Role::Ingest }
    }

    /// Whoever posts to the webhooks when no webhook token is configured (loopback only).
    pub fn open_sender() -> Principal {
        Principal { name: "open-webhook".into(), kind: ActorKind::WebhookToken, role: Role::Ingest }
    }

    pub fn local() -> Principal {
        Principal { name: "local".into(), kind: ActorKind::Local, role: Role::Admin }
    }

    /// The operating-system user running a CLI command.
    pub fn cli() -> Principal {
        let who = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        Principal { name: format!("cli:{who}"), kind: ActorKind::Cli, role: Role::Admin }
    }

    pub fn may(&self, needed: Need) -> bool {
        self.role.satisfies(needed)
    }
}

/// A user or key name: what the audit log and the CLI name them by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName(String);

impl AccountName {
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<AccountName, String> {
        let s = raw.trim();
        let ok = !s.is_empty()
            && s.len() <= Self::MAX
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "{raw:?} is not a valid name: 1 to {} letters, digits, '-', '_' or '.', starting with a letter or digit",
                Self::MAX
            ));
        }
        // Reserved for the built-in principals, so that the audit log cannot be confused.
        if ["admin-token", "webhook-token", "open-webhook", "local", "system"].contains(&s) || s.starts_with("cli:") {
            return Err(format!("{s:?} is reserved"));
        }
        Ok(AccountName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_and_ingest() {
        let at_least = Need::Role;
        assert!(Role::Admin.satisfies(at_least(Role::Editor)));
        assert!(Role::Editor.satisfies(at_least(Role::Viewer)));
        assert!(!Role::Viewer.satisfies(at_least(Role::Editor)));
        assert!(!Role::Editor.satisfies(at_least(Role::Admin)));
        assert!(!Role::Ingest.satisfies(at_least(Role::Viewer)), "an ingest key reads nothing");
        assert!(Role::Ingest.satisfies(Need::Ingest));
        assert!(!Role::Viewer.satisfies(Need::Ingest), "a viewer cannot post events");
        assert!(Role::Viewer.satisfies(Need::Public));
    }

    #[test]
    fn names_are_checked() {
        assert!(AccountName::parse("power-automate").is_ok());
        assert!(AccountName::parse("marie.dupont").is_ok());
        assert!(AccountName::parse("").is_err());
        assert!(AccountName::parse("-x").is_err());
        assert!(AccountName::parse("a b").is_err());
        assert!(AccountName::parse("admin-token").is_err());
        assert!(AccountName::parse(&"x".repeat(65)).is_err());
        assert_eq!("Editor".parse::<Role>(), Ok(Role::Editor));
        assert!("owner".parse::<Role>().is_err());
    }
}
