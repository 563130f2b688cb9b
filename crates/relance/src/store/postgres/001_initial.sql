-- PostgreSQL schema; the same tables and meaning as the SQLite one. Times are epoch
-- milliseconds (BIGINT) in both, JSON is kept as text in both.
CREATE TABLE contacts (
    id          BIGSERIAL PRIMARY KEY,
    email       TEXT UNIQUE,
    client_code TEXT UNIQUE,
    segment     TEXT NOT NULL,
    score       INTEGER NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX contacts_segment ON contacts(segment);

CREATE TABLE events (
    id              BIGSERIAL PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    dedupe_key      TEXT UNIQUE,
    sender_event_id TEXT,
    source          TEXT NOT NULL,
    name            TEXT NOT NULL,
    trigger         TEXT,
    contact_id      BIGINT REFERENCES contacts(id),
    email           TEXT,
    client_code     TEXT,
    occurred_at     BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    event           TEXT NOT NULL,
    raw             TEXT NOT NULL
);
CREATE INDEX events_contact ON events(contact_id, id);
CREATE INDEX events_received ON events(received_at);

CREATE TABLE history (
    id          BIGSERIAL PRIMARY KEY,
    contact_id  BIGINT NOT NULL REFERENCES contacts(id),
    event_id    TEXT,
    rule_id     TEXT,
    action_type TEXT,
    field       TEXT NOT NULL,
    before      TEXT NOT NULL,
    after       TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX history_contact ON history(contact_id, id);

CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    contact_id      BIGINT NOT NULL REFERENCES contacts(id),
    event_id        TEXT,
    rule_id         TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    action_type     TEXT NOT NULL,
    config          TEXT NOT NULL,
    delay_minutes   INTEGER NOT NULL,
    due_at          BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_until     BIGINT,
    idempotency_key TEXT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, due_at);
CREATE INDEX jobs_contact ON jobs(contact_id, state);

CREATE TABLE job_attempts (
    id          BIGSERIAL PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES jobs(id),
    started_at  BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status      TEXT NOT NULL,
    http_status INTEGER,
    response    TEXT
);
CREATE INDEX job_attempts_job ON job_attempts(job_id, id);

CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    channel    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE schedule_runs (
    rule_id       TEXT NOT NULL,
    occurrence_at BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    contacts      BIGINT,
    PRIMARY KEY (rule_id, occurrence_at)
);
