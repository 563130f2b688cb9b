-- Where each rule-set version came from and how the active one became active, so that a
-- restart with a rules file never silently undoes a version activated from the dashboard
-- or the API (see server::sync_rules).
ALTER TABLE rule_sets ADD COLUMN source TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE rule_sets ADD COLUMN activated_via TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE rule_sets ADD COLUMN replaced_version BIGINT;
-- Moves forward on every save and activation (rollbacks included): an instance swaps in
-- a version only when its activation is newer than the one it runs, so a stale read can
-- never put older rules back (see LiveRules::swap).
ALTER TABLE rule_sets ADD COLUMN activated_seq BIGINT NOT NULL DEFAULT 0;
UPDATE rule_sets SET activated_seq = version;
-- The rules file last imported from each path, by the hash of its rules: the file is
-- imported again only when it changed, whatever the active version is.
CREATE TABLE rules_files (
    path        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    imported_at BIGINT NOT NULL
);
