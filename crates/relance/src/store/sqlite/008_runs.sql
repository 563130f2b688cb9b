-- Runs of follow-up sequences (see docs/rules.md, "Follow-up sequences"). `goal` is the
-- rule's goal when the run started (JSON); `watch` the triggers its steps' skip_if wait
-- for, `seen` those that happened since it started (JSON arrays of trigger names).
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    contact_id   INTEGER NOT NULL REFERENCES contacts(id),
    rule_id      TEXT NOT NULL,
    rule_version INTEGER NOT NULL,
    started_at   INTEGER NOT NULL,
    state        TEXT NOT NULL,
    ended_at     INTEGER,
    reason       TEXT,
    goal         TEXT,
    watch        TEXT NOT NULL DEFAULT '[]',
    seen         TEXT NOT NULL DEFAULT '[]',
    updated_at   INTEGER NOT NULL
);
CREATE INDEX runs_contact ON runs(contact_id, rule_id, started_at);
CREATE INDEX runs_rule ON runs(rule_id, started_at);
CREATE INDEX runs_active ON runs(state) WHERE state = 'active';
-- A job that is a step of a run, and what skips it when due (JSON).
ALTER TABLE jobs ADD COLUMN run_id TEXT;
ALTER TABLE jobs ADD COLUMN skip_if TEXT;
CREATE INDEX jobs_run ON jobs(run_id) WHERE run_id IS NOT NULL;
