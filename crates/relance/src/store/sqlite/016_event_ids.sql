-- An event's public id is its row id in decimal (issue 20): the UUID column and its
-- unique index were 88 of ~580 bytes per stored event, and every history row and job
-- carried another 36-byte copy. SQLite cannot drop a UNIQUE column in place, so the
-- table is copied once (an upgrade of a large file takes a while and needs room for a
-- second copy of `events`; `relance backup` first, see docs/deploying.md).
--
-- Events stored before keep their UUID as `legacy_id`, and answer to it as they always
-- did (history rows and jobs written before refer to them by it); it is NULL from now on,
-- and the partial index holds only the old rows. AUTOINCREMENT: ids are never reused,
-- even after the newest events were deleted (the first-run page deletes test events), since
-- downstream systems may hold them.
CREATE TABLE events_by_row_id (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    legacy_id       TEXT,
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
INSERT INTO events_by_row_id (id, legacy_id, dedupe_key, sender_event_id, source, name, trigger, contact_id,
                              email, client_code, occurred_at, received_at, event, raw)
SELECT id, public_id, dedupe_key, sender_event_id, source, name, trigger, contact_id,
       email, client_code, occurred_at, received_at, event, raw
FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_by_row_id RENAME TO events;
CREATE UNIQUE INDEX events_legacy_id ON events(legacy_id) WHERE legacy_id IS NOT NULL;
CREATE INDEX events_contact ON events(contact_id, id);
