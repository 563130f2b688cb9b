-- The kill switch: rules an operator paused. A paused rule fires no more and its pending
-- jobs are `held` until it is resumed. Read by every instance at each ingest and claim.
CREATE TABLE paused_rules (
    rule_id   TEXT PRIMARY KEY,
    paused_at INTEGER NOT NULL
);
