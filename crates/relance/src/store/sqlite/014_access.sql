-- People and keys (issue: users, roles, revocable API keys, audit log).
-- Passwords are argon2id PHC strings; session ids and API keys are stored as SHA-256
-- hex digests only (both are random and long, so a fast hash is enough and lets every
-- request look them up by value).
CREATE TABLE users (
    name             TEXT PRIMARY KEY,
    role             TEXT NOT NULL,
    password_hash    TEXT NOT NULL,
    disabled_at      INTEGER,
    -- Consecutive failed sign-ins and the lock they earned (shared by every instance).
    failed_sign_ins  INTEGER NOT NULL DEFAULT 0,
    locked_until     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Dashboard sessions. `user_name` NULL: opened with the bootstrap admin token.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT REFERENCES users(name),
    csrf       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_name);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE api_keys (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

-- Every change made by a person or a program, written in the transaction of the change
-- (refusals are written on their own: nothing changed).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    -- user | key | admin_token | webhook_token | local | cli | system
    actor_kind TEXT NOT NULL,
    ip         TEXT,
    -- rules | actions | contacts | users | keys | sessions
    kind       TEXT NOT NULL,
    action     TEXT NOT NULL,
    route      TEXT NOT NULL,
    subject    TEXT,
    summary    TEXT NOT NULL,
    detail     TEXT,
    outcome    TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_actor ON audit_log(actor, at);
