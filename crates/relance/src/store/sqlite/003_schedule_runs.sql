-- One row per occurrence of a time_based rule: whoever inserts it runs it, once.
CREATE TABLE schedule_runs (
    rule_id       TEXT NOT NULL,
    occurrence_at INTEGER NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    contacts      INTEGER,
    PRIMARY KEY (rule_id, occurrence_at)
);
