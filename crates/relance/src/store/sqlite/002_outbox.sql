-- What the outbox executor "sent": the full payload, for the quick start and dry runs.
CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    channel    TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
