-- Retention: how far each pruning pass has got, so that the next pass starts there
-- instead of walking the rows already pruned (raw payloads are blanked, not deleted).
CREATE TABLE retention_marks (
    name TEXT PRIMARY KEY,
    upto BIGINT NOT NULL
);
