-- Contacts: the indexed columns are what lookups and filters use; `data` holds the whole
-- contact as the engine sees it (JSON), so that reading one back is one deserialise.
CREATE TABLE contacts (
    id          INTEGER PRIMARY KEY,
    email       TEXT UNIQUE,
    client_code TEXT UNIQUE,
    segment     TEXT NOT NULL,
    score       INTEGER NOT NULL,
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
-- No index on score or updated_at: they change with nearly every event, and each index
-- on them would cost a random page write per event.
CREATE INDEX contacts_segment ON contacts(segment);

-- Events: every accepted delivery, in commit order (id). A dedupe key is unique, so a
-- redelivery cannot be stored twice.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    dedupe_key      TEXT UNIQUE,
    sender_event_id TEXT,
    source          TEXT NOT NULL,
    name            TEXT NOT NULL,
    trigger         TEXT,
    contact_id      INTEGER REFERENCES contacts(id),
    email           TEXT,
    client_code     TEXT,
    occurred_at     INTEGER NOT NULL,
    received_at     INTEGER NOT NULL,
    event           TEXT NOT NULL,
    raw             TEXT NOT NULL
);
CREATE INDEX events_contact ON events(contact_id, id);
CREATE INDEX events_received ON events(received_at);

-- Every change of a contact's score, tags, segment, flags and counters, with its cause.
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts(id),
    event_id    TEXT,
    rule_id     TEXT,
    action_type TEXT,
    field       TEXT NOT NULL,
    before      TEXT NOT NULL,
    after       TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX history_contact ON history(contact_id, id);

-- Actions to run later or outside. The idempotency key travels downstream.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    contact_id      INTEGER NOT NULL REFERENCES contacts(id),
    event_id        TEXT,
    rule_id         TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    action_type     TEXT NOT NULL,
    config          TEXT NOT NULL,
    delay_minutes   INTEGER NOT NULL,
    due_at          INTEGER NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    -- Equal to id (unique already); kept as its own column for clarity downstream.
    idempotency_key TEXT NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs(state, due_at);
CREATE INDEX jobs_contact ON jobs(contact_id, state);

CREATE TABLE job_attempts (
    id          INTEGER PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES jobs(id),
    started_at  INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status      TEXT NOT NULL,
    http_status INTEGER,
    response    TEXT
);
CREATE INDEX job_attempts_job ON job_attempts(job_id, id);
