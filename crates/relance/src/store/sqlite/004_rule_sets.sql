-- Rule sets as versioned data; one is active. History rows and jobs record the version
-- that produced them.
CREATE TABLE rule_sets (
    version    INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE history ADD COLUMN rule_version INTEGER;
ALTER TABLE jobs ADD COLUMN rule_version INTEGER;
