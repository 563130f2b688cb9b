//! SqliteStore: users, sessions, API keys and the audit log.

use async_trait::async_trait;

use super::*;
use crate::access::Role;
use crate::store::access::{
    AccessStore, KEY_TOUCH_EVERY_SECS, KeyRow, NewKey, NewSession, NewUser, SessionRow, UserChange, UserRow,
};
use crate::store::audit::{Audit, AuditQuery, AuditRow};

/// Writes an audit entry in the caller's transaction; `subject` (known only here, such as
/// a new version) wins over the entry's own.
pub(crate) fn write_audit(
    conn: &Connection,
    audit: &Audit,
    subject: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, actor_kind, ip, kind, action, route, subject, summary, detail, outcome)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        to_millis(now),
        audit.actor,
        audit.actor_kind.as_str(),
        audit.ip,
        audit.kind.as_str(),
        audit.action,
        audit.route,
        subject.filter(|s| !s.is_empty()).or_else(|| audit.subject.clone().filter(|s| !s.is_empty())),
        audit.summary,
        audit.detail_json(),
        audit.outcome,
    ])?;
    Ok(())
}

fn role(raw: String) -> Role {
    // Only `Role::as_str` values are written; an unknown one reads as the least power.
    raw.parse().unwrap_or(Role::Viewer)
}

fn user_row(r: &rusqlite::Row) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        role: role(r.get(1)?),
        password_hash: r.get(2)?,
        disabled_at: r.get::<_, Option<i64>>(3)?.map(from_millis),
        failed_sign_ins: r.get(4)?,
        locked_until: r.get::<_, Option<i64>>(5)?.map(from_millis),
        created_at: from_millis(r.get(6)?),
    })
}

const USER_COLUMNS: &str = "name, role, password_hash, disabled_at, failed_sign_ins, locked_until, created_at";

fn key_row(r: &rusqlite::Row) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        name: r.get(0)?,
        role: role(r.get(1)?),
        prefix: r.get(2)?,
        created_by: r.get(3)?,
        created_at: from_millis(r.get(4)?),
        last_used_at: r.get::<_, Option<i64>>(5)?.map(from_millis),
        revoked_at: r.get::<_, Option<i64>>(6)?.map(from_millis),
    })
}

const KEY_COLUMNS: &str = "name, role, prefix, created_by, created_at, last_used_at, revoked_at";

fn end_sessions_of(conn: &Connection, name: &str) -> Result<u64, StoreError> {
    Ok(conn.prepare_cached("DELETE FROM sessions WHERE user_name = ?1")?.execute([name])? as u64)
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_user(&self, user: NewUser, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)
                     ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![user.name, user.role.as_str(), user.password_hash, to_millis(now)])?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!("a user named {:?} exists already", user.name)));
            }
            write_audit(conn, &audit, Some(format!("user:{}", user.name)), now)
        })
        .await
    }

    async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.read(|conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY name");
            Ok(conn.prepare_cached(&sql)?.query_map([], user_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn user(&self, name: String) -> Result<Option<UserRow>, StoreError> {
        self.read(move |conn| {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1");
            Ok(conn.prepare_cached(&sql)?.query_row([&name], user_row).optional()?)
        })
        .await
    }

    async fn change_user(&self, name: String, change: UserChange, audit: Audit) -> Result<u64, StoreError> {
        self.write(move |conn, _, now| {
            let at = to_millis(now);
            let (sql, value): (&str, Option<String>) = match &change {
                UserChange::Disable => ("UPDATE users SET disabled_at = ?2, updated_at = ?2 WHERE name = ?1", None),
                UserChange::Enable => (
                    "UPDATE users SET disabled_at = NULL, failed_sign_ins = 0, locked_until = NULL, updated_at = ?2
                     WHERE name = ?1",
                    None,
                ),
                UserChange::Password(hash) => (
                    "UPDATE users SET password_hash = ?3, failed_sign_ins = 0, locked_until = NULL, updated_at = ?2
                     WHERE name = ?1",
                    Some(hash.clone()),
                ),
                UserChange::Role(r) => {
                    ("UPDATE users SET role = ?3, updated_at = ?2 WHERE name = ?1", Some(r.as_str().to_owned()))
                }
            };
            let changed = match value {
                Some(v) => conn.prepare_cached(sql)?.execute(params![name, at, v])?,
                None => conn.prepare_cached(sql)?.execute(params![name, at])?,
            };
            if changed == 0 {
                return Err(StoreError::NotFound(format!("user {name:?}")));
            }
            let ended = match change {
                UserChange::Disable | UserChange::Password(_) => end_sessions_of(conn, &name)?,
                UserChange::Enable | UserChange::Role(_) => 0,
            };
            write_audit(conn, &audit, Some(format!("user:{name}")), now)?;
            Ok(ended)
        })
        .await
    }

    async fn sign_in_failed(
        &self,
        name: String,
        lock_for: fn(i64) -> Option<chrono::Duration>,
        audit: Audit,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        self.write(move |conn, _, now| {
            let failures: Option<i64> = conn
                .prepare_cached(
                    "UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE name = ?1 RETURNING failed_sign_ins",
                )?
                .query_row([&name], |r| r.get(0))
                .optional()?;
            let Some(failures) = failures else { return Err(StoreError::NotFound(format!("user {name:?}"))) };
            let until = lock_for(failures).map(|d| now + d);
            if let Some(until) = until {
                conn.prepare_cached("UPDATE users SET locked_until = ?2 WHERE name = ?1")?
                    .execute(params![name, to_millis(until)])?;
            }
            write_audit(conn, &audit, Some(format!("user:{name}")), now)?;
            Ok((failures, until))
        })
        .await
    }

    async fn create_session(&self, session: NewSession, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            conn.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?.execute([to_millis(now)])?;
            conn.prepare_cached(
                "INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                session.id_hash,
                session.user_name,
                session.csrf,
                to_millis(now),
                to_millis(session.expires_at)
            ])?;
            if let Some(name) = &session.user_name {
                conn.prepare_cached("UPDATE users SET failed_sign_ins = 0, locked_until = NULL WHERE name = ?1")?
                    .execute([name])?;
            }
            write_audit(conn, &audit, session.user_name.as_ref().map(|n| format!("user:{n}")), now)
        })
        .await
    }

    async fn session(&self, id_hash: String, now: DateTime<Utc>) -> Result<Option<SessionRow>, StoreError> {
        let now = to_millis(now);
        self.read(move |conn| {
            let row = conn
                .prepare_cached(
                    "SELECT s.user_name, u.role, s.csrf, s.expires_at FROM sessions s
                     LEFT JOIN users u ON u.name = s.user_name
                     WHERE s.id_hash = ?1 AND s.expires_at > ?2
                       AND (s.user_name IS NULL OR (u.name IS NOT NULL AND u.disabled_at IS NULL))",
                )?
                .query_row(params![id_hash, now], |r| {
                    let user: Option<String> = r.get(0)?;
                    let role_raw: Option<String> = r.get(1)?;
                    Ok(SessionRow {
                        // A session without a user was opened with the admin token.
                        role: if user.is_some() { role(role_raw.unwrap_or_default()) } else { Role::Admin },
                        user_name: user,
                        csrf: r.get(2)?,
                        expires_at: from_millis(r.get(3)?),
                    })
                })
                .optional()?;
            Ok(row)
        })
        .await
    }

    async fn end_session(&self, id_hash: String, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            conn.prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?.execute([&id_hash])?;
            write_audit(conn, &audit, None, now)
        })
        .await
    }

    async fn create_key(&self, key: NewKey, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO api_keys (name, role, prefix, key_hash, created_by, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
                )?
                .execute(params![
                    key.name,
                    key.role.as_str(),
                    key.prefix,
                    key.key_hash,
                    key.created_by,
                    to_millis(now)
                ])?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "a key named {:?} exists already (names are not reused)",
                    key.name
                )));
            }
            write_audit(conn, &audit, Some(format!("key:{}", key.name)), now)
        })
        .await
    }

    async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.read(|conn| {
            let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY revoked_at IS NOT NULL, name");
            Ok(conn.prepare_cached(&sql)?.query_map([], key_row)?.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn key_by_hash(&self, key_hash: String, now: DateTime<Utc>) -> Result<Option<KeyRow>, StoreError> {
        let found = self
            .read(move |conn| {
                let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL");
                Ok(conn.prepare_cached(&sql)?.query_row([&key_hash], key_row).optional()?)
            })
            .await?;
        if let Some(key) = &found
            && key.last_used_at.is_none_or(|at| (now - at).num_seconds() >= KEY_TOUCH_EVERY_SECS)
        {
            let name = key.name.clone();
            // Best effort: a busy writer must not refuse the request the key opens.
            let _ = self
                .write(move |conn, _, now| {
                    conn.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE name = ?1")?
                        .execute(params![name, to_millis(now)])?;
                    Ok(())
                })
                .await;
        }
        Ok(found)
    }

    async fn revoke_key(&self, name: String, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| {
            let revoked = conn
                .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL")?
                .execute(params![name, to_millis(now)])?;
            if revoked == 0 {
                return Err(StoreError::NotFound(format!("unrevoked key {name:?}")));
            }
            write_audit(conn, &audit, Some(format!("key:{name}")), now)
        })
        .await
    }

    async fn record_audit(&self, audit: Audit) -> Result<(), StoreError> {
        self.write(move |conn, _, now| write_audit(conn, &audit, None, now)).await
    }

    async fn audit_log(&self, q: AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, at, actor, actor_kind, ip, kind, action, route, subject, summary, detail, outcome
                     FROM audit_log
                     WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR kind = ?3)
                       AND (?4 IS NULL OR id < ?4)
                     ORDER BY id DESC LIMIT ?5",
                )?
                .query_map(
                    params![q.since.map(to_millis), q.actor, q.kind.map(|k| k.as_str()), q.before_id, q.limit as i64],
                    |r| {
                        Ok(AuditRow {
                            id: r.get(0)?,
                            at: from_millis(r.get(1)?),
                            actor: r.get(2)?,
                            actor_kind: r.get(3)?,
                            ip: r.get(4)?,
                            kind: r.get(5)?,
                            action: r.get(6)?,
                            route: r.get(7)?,
                            subject: r.get(8)?,
                            summary: r.get(9)?,
                            detail: r.get::<_, Option<String>>(10)?.and_then(|d| serde_json::from_str(&d).ok()),
                            outcome: r.get(11)?,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}
