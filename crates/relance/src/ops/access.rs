//! Users and keys as the CLI, the API and the dashboard manage them: names and roles
//! checked, passwords hashed (off the async threads: argon2id is meant to be slow), keys
//! drawn and shown once, and sign-in with its throttling.

use chrono::{DateTime, Utc};

use crate::access::{AccountName, Role, password, throttle, token};
use crate::store::access::{NewKey, NewUser, UserChange};
use crate::store::audit::Audit;
use crate::store::{Store, StoreError};

async fn hash(secret: String) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || password::hash(&secret))
        .await
        .map_err(|e| StoreError::Unavailable(e.into()))?
        .map_err(StoreError::Unavailable)
}

fn name(raw: &str) -> Result<AccountName, StoreError> {
    AccountName::parse(raw).map_err(|m| StoreError::invalid("name", m))
}

fn user_role(role: Role) -> Result<Role, StoreError> {
    if role == Role::Ingest {
        return Err(StoreError::invalid(
            "role",
            "a person is a viewer, an editor or an admin (ingest is for API keys)",
        ));
    }
    Ok(role)
}

/// Creates a user; with no password given, one is generated and returned (shown once).
pub async fn add_user(
    store: &dyn Store,
    raw_name: &str,
    role: Role,
    chosen: Option<String>,
    audit: Audit,
) -> Result<Option<String>, StoreError> {
    let name = name(raw_name)?;
    let role = user_role(role)?;
    let (secret, generated) = match chosen {
        Some(p) => {
            password::check_strength(&p).map_err(|m| StoreError::invalid("password", m))?;
            (p, None)
        }
        None => {
            let p = password::generate();
            (p.clone(), Some(p))
        }
    };
    let password_hash = hash(secret).await?;
    let audit = audit.summary(format!("user {} added as {role}", name.as_str()));
    store.create_user(NewUser { name: name.into_string(), role, password_hash }, audit).await?;
    Ok(generated)
}

/// Sets a new password (generated when none is given, and returned); ends the user's
/// sessions.
pub async fn set_password(
    store: &dyn Store,
    name: &str,
    chosen: Option<String>,
    audit: Audit,
) -> Result<Option<String>, StoreError> {
    let (secret, generated) = match chosen {
        Some(p) => {
            password::check_strength(&p).map_err(|m| StoreError::invalid("password", m))?;
            (p, None)
        }
        None => {
            let p = password::generate();
            (p.clone(), Some(p))
        }
    };
    let hash = hash(secret).await?;
    let audit = audit.summary(format!("password of {name} changed; sessions ended"));
    store.change_user(name.to_owned(), UserChange::Password(hash), audit).await?;
    Ok(generated)
}

/// Disables (or enables again) a user; disabling ends their sessions everywhere.
pub async fn set_disabled(store: &dyn Store, name: &str, disabled: bool, audit: Audit) -> Result<u64, StoreError> {
    let (change, what) = if disabled { (UserChange::Disable, "disabled") } else { (UserChange::Enable, "enabled") };
    store.change_user(name.to_owned(), change, audit.summary(format!("user {name} {what}"))).await
}

/// A key just created: the only time its secret is seen.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CreatedKey {
    pub name: String,
    pub role: Role,
    pub prefix: String,
    /// The key itself: shown once, stored only as a digest.
    pub key: String,
}

pub async fn create_key(
    store: &dyn Store,
    raw_name: &str,
    role: Role,
    created_by: &str,
    audit: Audit,
) -> Result<CreatedKey, StoreError> {
    let name = name(raw_name)?;
    let secret = token::new_api_key();
    let audit = audit.summary(format!("key {} created with role {role} (prefix {})", name.as_str(), secret.prefix));
    let new = NewKey {
        name: name.as_str().to_owned(),
        role,
        prefix: secret.prefix.clone(),
        key_hash: secret.hash,
        created_by: created_by.to_owned(),
    };
    store.create_key(new, audit).await?;
    Ok(CreatedKey { name: name.into_string(), role, prefix: secret.prefix, key: secret.key })
}

pub async fn revoke_key(store: &dyn Store, name: &str, audit: Audit) -> Result<(), StoreError> {
    store.revoke_key(name.to_owned(), audit.summary(format!("key {name} revoked"))).await
}

/// How a sign-in attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SignIn {
    /// The user (or `None`: the admin token) may open a session.
    Accepted(Option<String>),
    /// Wrong name, password or token (the answer does not say which).
    Refused,
    /// Too many failures: no attempt is checked before this time.
    Locked(DateTime<Utc>),
}

/// Checks a sign-in by name and password (an empty name: the admin token as password),
/// counting failures per user (stored, shared by every instance) and per address.
pub struct Attempt<'a> {
    pub ip: std::net::IpAddr,
    pub name: &'a str,
    pub secret: String,
    pub now: DateTime<Utc>,
}

pub async fn check_sign_in(
    store: &dyn Store,
    addresses: &throttle::AddressThrottle,
    admin_token: Option<&crate::config::Secret>,
    attempt: Attempt<'_>,
    audit: Audit,
) -> Result<SignIn, StoreError> {
    let Attempt { ip, name: raw_name, secret, now } = attempt;
    if let Some(until) = addresses.locked_until(ip, now) {
        return Ok(SignIn::Locked(until));
    }
    let raw_name = raw_name.trim();
    if raw_name.is_empty() {
        let accepted = match admin_token {
            Some(t) => t.matches(secret.as_bytes()),
            // No admin token: a loopback-only server, open to whoever is on the machine.
            None => true,
        };
        if accepted {
            addresses.succeeded(ip);
            return Ok(SignIn::Accepted(None));
        }
        return refuse(store, addresses, ip, now, audit.refused("wrong admin token")).await;
    }
    let user = store.user(raw_name.to_owned()).await?;
    let Some(user) = user.filter(|u| u.disabled_at.is_none()) else {
        tokio::task::spawn_blocking(move || password::verify_nobody(&secret)).await.ok();
        return refuse(store, addresses, ip, now, audit.refused("unknown or disabled user")).await;
    };
    if let Some(until) = user.locked_until.filter(|u| *u > now) {
        return Ok(SignIn::Locked(until));
    }
    let phc = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || password::verify(&secret, &phc)).await.unwrap_or(false);
    if ok {
        addresses.succeeded(ip);
        return Ok(SignIn::Accepted(Some(user.name)));
    }
    let (_, lock) = store.sign_in_failed(user.name, throttle::lock_for, audit.refused("wrong password")).await?;
    let ip_lock = addresses.failed(ip, now);
    match lock.into_iter().chain(ip_lock).max() {
        Some(until) => Ok(SignIn::Locked(until)),
        None => Ok(SignIn::Refused),
    }
}

async fn refuse(
    store: &dyn Store,
    addresses: &throttle::AddressThrottle,
    ip: std::net::IpAddr,
    now: DateTime<Utc>,
    audit: Audit,
) -> Result<SignIn, StoreError> {
    store.record_audit(audit).await?;
    Ok(match addresses.failed(ip, now) {
        Some(until) => SignIn::Locked(until),
        None => SignIn::Refused,
    })
}
