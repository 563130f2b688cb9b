-- Where each rule-set version came from and how the active one became active, so that a
-- restart with a rules file never silently undoes a version activated from the dashboard
-- or the API (see server::sync_rules).
ALTER TABLE rule_sets ADD COLUMN source TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE rule_sets ADD COLUMN activated_via TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE rule_sets ADD COLUMN replaced_version INTEGER;
-- The rules file last imported from each path, by the hash of its rules: the file is
-- imported again only when it changed, whatever the active version is.
CREATE TABLE rules_files (
    path        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    imported_at INTEGER NOT NULL
);
