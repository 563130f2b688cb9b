//! PgStore: users, sessions, API keys and the audit log.

use async_trait::async_trait;

use super::*;
use crate::access::Role;
use crate::store::access::{
    AccessStore, KEY_TOUCH_EVERY_SECS, KeyRow, NewKey, NewSession, NewUser, SessionRow, UserChange, UserRow,
};
use crate::store::audit::{Audit, AuditQuery, AuditRow};

/// Writes an audit entry in the caller's transaction; `subject` (known only here, such as
/// a new version) wins over the entry's own.
pub(crate) async fn write_audit<C: GenericClient>(
    c: &C,
    audit: &Audit,
    subject: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO audit_log (at, actor, actor_kind, ip, kind, action, route, subject, summary, detail, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
    let subject = subject.filter(|s| !s.is_empty()).or_else(|| audit.subject.clone().filter(|s| !s.is_empty()));
    c.execute(
        &stmt,
        &[
            &to_millis(now),
            &audit.actor,
            &audit.actor_kind.as_str(),
            &audit.ip,
            &audit.kind.as_str(),
            &audit.action,
            &audit.route,
            &subject,
            &audit.summary,
            &audit.detail_json(),
            &audit.outcome,
        ],
    )
    .await?;
    Ok(())
}

fn role(raw: &str) -> Role {
    // Only `Role::as_str` values are written; an unknown one reads as the least power.
    raw.parse().unwrap_or(Role::Viewer)
}

const USER_COLUMNS: &str = "name, role, password_hash, disabled_at, failed_sign_ins, locked_until, created_at";

fn user_row(r: &tokio_postgres::Row) -> UserRow {
    UserRow {
        name: r.get(0),
        role: role(r.get(1)),
        password_hash: r.get(2),
        disabled_at: r.get::<_, Option<i64>>(3).map(from_millis),
        failed_sign_ins: r.get(4),
        locked_until: r.get::<_, Option<i64>>(5).map(from_millis),
        created_at: from_millis(r.get(6)),
    }
}

const KEY_COLUMNS: &str = "name, role, prefix, created_by, created_at, last_used_at, revoked_at";

fn key_row(r: &tokio_postgres::Row) -> KeyRow {
    KeyRow {
        name: r.get(0),
        role: role(r.get(1)),
        prefix: r.get(2),
        created_by: r.get(3),
        created_at: from_millis(r.get(4)),
        last_used_at: r.get::<_, Option<i64>>(5).map(from_millis),
        revoked_at: r.get::<_, Option<i64>>(6).map(from_millis),
    }
}

#[async_trait]
impl AccessStore for PgStore {
    async fn create_user(&self, user: NewUser, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let inserted = tx
            .execute(
                "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (name) DO NOTHING",
                &[&user.name, &user.role.as_str(), &user.password_hash, &to_millis(now)],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!("a user named {:?} exists already", user.name)));
        }
        write_audit(&tx, &audit, Some(format!("user:{}", user.name)), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"), &[]).await?;
        Ok(rows.iter().map(user_row).collect())
    }

    async fn user(&self, name: String) -> Result<Option<UserRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1")).await?;
        Ok(client.query_opt(&stmt, &[&name]).await?.as_ref().map(user_row))
    }

    async fn change_user(&self, name: String, change: UserChange, audit: Audit) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let at = to_millis(now);
        let changed = match &change {
            UserChange::Disable => {
                tx.execute("UPDATE users SET disabled_at = $2, updated_at = $2 WHERE name = $1", &[&name, &at]).await?
            }
            UserChange::Enable => {
                tx.execute(
                    "UPDATE users SET disabled_at = NULL, failed_sign_ins = 0, locked_until = NULL, updated_at = $2
                     WHERE name = $1",
                    &[&name, &at],
                )
                .await?
            }
            UserChange::Password(hash) => {
                tx.execute(
                    "UPDATE users SET password_hash = $3, failed_sign_ins = 0, locked_until = NULL, updated_at = $2
                     WHERE name = $1",
                    &[&name, &at, hash],
                )
                .await?
            }
            UserChange::Role(r) => {
                tx.execute("UPDATE users SET role = $3, updated_at = $2 WHERE name = $1", &[&name, &at, &r.as_str()])
                    .await?
            }
        };
        if changed == 0 {
            return Err(StoreError::NotFound(format!("user {name:?}")));
        }
        let ended = match change {
            UserChange::Disable | UserChange::Password(_) => {
                tx.execute("DELETE FROM sessions WHERE user_name = $1", &[&name]).await?
            }
            UserChange::Enable | UserChange::Role(_) => 0,
        };
        write_audit(&tx, &audit, Some(format!("user:{name}")), now).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn sign_in_failed(
        &self,
        name: String,
        lock_for: fn(i64) -> Option<chrono::Duration>,
        audit: Audit,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let failures: i64 = tx
            .query_opt(
                "UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE name = $1 RETURNING failed_sign_ins",
                &[&name],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {name:?}")))?
            .get(0);
        let until = lock_for(failures).map(|d| now + d);
        if let Some(until) = until {
            tx.execute("UPDATE users SET locked_until = $2 WHERE name = $1", &[&name, &to_millis(until)]).await?;
        }
        write_audit(&tx, &audit, Some(format!("user:{name}")), now).await?;
        tx.commit().await?;
        Ok((failures, until))
    }

    async fn create_session(&self, session: NewSession, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        tx.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&to_millis(now)]).await?;
        tx.execute(
            "INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&session.id_hash, &session.user_name, &session.csrf, &to_millis(now), &to_millis(session.expires_at)],
        )
        .await?;
        if let Some(name) = &session.user_name {
            tx.execute("UPDATE users SET failed_sign_ins = 0, locked_until = NULL WHERE name = $1", &[name]).await?;
        }
        write_audit(&tx, &audit, session.user_name.as_ref().map(|n| format!("user:{n}")), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session(&self, id_hash: String, now: DateTime<Utc>) -> Result<Option<SessionRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT s.user_name, u.role, s.csrf, s.expires_at FROM sessions s
                 LEFT JOIN users u ON u.name = s.user_name
                 WHERE s.id_hash = $1 AND s.expires_at > $2
                   AND (s.user_name IS NULL OR (u.name IS NOT NULL AND u.disabled_at IS NULL))",
            )
            .await?;
        let row = client.query_opt(&stmt, &[&id_hash, &to_millis(now)]).await?;
        Ok(row.map(|r| {
            let user: Option<String> = r.get(0);
            let role_raw: Option<&str> = r.get(1);
            SessionRow {
                // A session without a user was opened with the admin token.
                role: if user.is_some() { role(role_raw.unwrap_or_default()) } else { Role::Admin },
                user_name: user,
                csrf: r.get(2),
                expires_at: from_millis(r.get(3)),
            }
        }))
    }

    async fn end_session(&self, id_hash: String, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash]).await?;
        write_audit(&tx, &audit, None, (self.clock)()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_key(&self, key: NewKey, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let inserted = tx
            .execute(
                "INSERT INTO api_keys (name, role, prefix, key_hash, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
                &[&key.name, &key.role.as_str(), &key.prefix, &key.key_hash, &key.created_by, &to_millis(now)],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a key named {:?} exists already (names are not reused)",
                key.name
            )));
        }
        write_audit(&tx, &audit, Some(format!("key:{}", key.name)), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY revoked_at IS NOT NULL, name"), &[])
            .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    async fn key_by_hash(&self, key_hash: String, now: DateTime<Utc>) -> Result<Option<KeyRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL"))
            .await?;
        let found = client.query_opt(&stmt, &[&key_hash]).await?.as_ref().map(key_row);
        if let Some(key) = &found
            && key.last_used_at.is_none_or(|at| (now - at).num_seconds() >= KEY_TOUCH_EVERY_SECS)
        {
            // Best effort: the request the key opens does not wait on a busy row.
            let touch = client.prepare_cached("UPDATE api_keys SET last_used_at = $2 WHERE name = $1").await?;
            let _ = client.execute(&touch, &[&key.name, &to_millis(now)]).await;
        }
        Ok(found)
    }

    async fn revoke_key(&self, name: String, audit: Audit) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let now = (self.clock)();
        let revoked = tx
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
                &[&name, &to_millis(now)],
            )
            .await?;
        if revoked == 0 {
            return Err(StoreError::NotFound(format!("unrevoked key {name:?}")));
        }
        write_audit(&tx, &audit, Some(format!("key:{name}")), now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_audit(&self, audit: Audit) -> Result<(), StoreError> {
        let client = self.client().await?;
        write_audit(&client, &audit, None, (self.clock)()).await
    }

    async fn audit_log(&self, q: AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, at, actor, actor_kind, ip, kind, action, route, subject, summary, detail, outcome
                 FROM audit_log
                 WHERE ($1::INT8 IS NULL OR at >= $1) AND ($2::TEXT IS NULL OR actor = $2)
                   AND ($3::TEXT IS NULL OR kind = $3) AND ($4::INT8 IS NULL OR id < $4)
                 ORDER BY id DESC LIMIT $5",
            )
            .await?;
        let rows = client
            .query(
                &stmt,
                &[&q.since.map(to_millis), &q.actor, &q.kind.map(|k| k.as_str()), &q.before_id, &(q.limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| AuditRow {
                id: r.get(0),
                at: from_millis(r.get(1)),
                actor: r.get(2),
                actor_kind: r.get(3),
                ip: r.get(4),
                kind: r.get(5),
                action: r.get(6),
                route: r.get(7),
                subject: r.get(8),
                summary: r.get(9),
                detail: r.get::<_, Option<&str>>(10).and_then(|d| serde_json::from_str(d).ok()),
                outcome: r.get(11),
            })
            .collect())
    }
}
