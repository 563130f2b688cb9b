-- Contacts whose Brevo attributes are to be pushed ([brevo.sync]). One row per contact:
-- every change bumps `generation`, so a burst of changes is sent once, with the latest
-- values (read when sent). Pending while generation > synced_generation.
CREATE TABLE brevo_sync (
    contact_id        INTEGER PRIMARY KEY REFERENCES contacts(id),
    generation        INTEGER NOT NULL DEFAULT 1,
    synced_generation INTEGER NOT NULL DEFAULT 0,
    due_at            INTEGER NOT NULL,
    lease_until       INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_synced_at    INTEGER,
    -- done | not_in_brevo | no_email | failed
    last_status       TEXT,
    last_error        TEXT,
    updated_at        INTEGER NOT NULL
);
CREATE INDEX brevo_sync_pending ON brevo_sync(due_at) WHERE generation > synced_generation;

-- Every request to Brevo's contacts API, as sent.
CREATE TABLE brevo_sync_attempts (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    request     TEXT NOT NULL,
    contacts    INTEGER NOT NULL,
    http_status INTEGER,
    outcome     TEXT NOT NULL,
    error       TEXT,
    duration_ms INTEGER NOT NULL
);

-- The contacts API allows 10 requests a second per account: every instance takes its
-- turn from this one row.
CREATE TABLE brevo_rate (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    next_at INTEGER NOT NULL
);
INSERT INTO brevo_rate (id, next_at) VALUES (1, 0);
