//! Users, sessions and API keys as stored. The rules about them (roles, hashing,
//! throttling) are in `crate::access`; this only stores and reads.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::StoreError;
use super::audit::{Audit, AuditQuery, AuditRow};
use crate::access::Role;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Failed sign-ins in a row, and the lock they earned.
    pub failed_sign_ins: i64,
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub password_hash: String,
}

pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// What an administrator changes about a user. Disabling and a new password end the
/// user's sessions everywhere.
#[derive(Debug, Clone)]
pub enum UserChange {
    Disable,
    Enable,
    Password(String),
    Role(Role),
}

pub struct NewSession {
    pub id_hash: String,
    /// `None`: opened with the admin token (or on an open loopback server).
    pub user_name: Option<String>,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session, with the role its user holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user_name: Option<String>,
    pub role: Role,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyRow {
    pub name: String,
    pub role: Role,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub struct NewKey {
    pub name: String,
    pub role: Role,
    pub prefix: String,
    pub key_hash: String,
    pub created_by: String,
}

/// `last_used_at` is written at most this often per key (not on every request).
pub const KEY_TOUCH_EVERY_SECS: i64 = 60;

#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Conflict if the name is taken.
    async fn create_user(&self, user: NewUser, audit: Audit) -> Result<(), StoreError>;

    async fn users(&self) -> Result<Vec<UserRow>, StoreError>;

    async fn user(&self, name: String) -> Result<Option<UserRow>, StoreError>;

    /// Applies a change; returns how many sessions it ended.
    async fn change_user(&self, name: String, change: UserChange, audit: Audit) -> Result<u64, StoreError>;

    /// Counts a failed sign-in for an existing user and sets the lock it earned
    /// (`lock_for(failures)`); returns the failures in a row and the lock.
    async fn sign_in_failed(
        &self,
        name: String,
        lock_for: fn(i64) -> Option<chrono::Duration>,
        audit: Audit,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError>;

    /// Opens a session (clearing the user's failure count); expired sessions go.
    async fn create_session(&self, session: NewSession, audit: Audit) -> Result<(), StoreError>;

    /// The live session with this id digest: not expired, its user not disabled.
    async fn session(&self, id_hash: String, now: DateTime<Utc>) -> Result<Option<SessionRow>, StoreError>;

    async fn end_session(&self, id_hash: String, audit: Audit) -> Result<(), StoreError>;

    /// Conflict if the name is taken (a revoked key keeps its name).
    async fn create_key(&self, key: NewKey, audit: Audit) -> Result<(), StoreError>;

    async fn keys(&self) -> Result<Vec<KeyRow>, StoreError>;

    /// The unrevoked key with this digest; marks it used (at most once a minute).
    async fn key_by_hash(&self, key_hash: String, now: DateTime<Utc>) -> Result<Option<KeyRow>, StoreError>;

    /// NotFound if no unrevoked key has this name.
    async fn revoke_key(&self, name: String, audit: Audit) -> Result<(), StoreError>;

    /// Writes an entry on its own (a refusal, a failed sign-in: nothing else changed).
    async fn record_audit(&self, audit: Audit) -> Result<(), StoreError>;

    async fn audit_log(&self, query: AuditQuery) -> Result<Vec<AuditRow>, StoreError>;
}
