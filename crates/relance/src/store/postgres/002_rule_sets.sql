CREATE TABLE rule_sets (
    version    BIGSERIAL PRIMARY KEY,
    hash       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT FALSE
);
ALTER TABLE history ADD COLUMN rule_version BIGINT;
ALTER TABLE jobs ADD COLUMN rule_version BIGINT;
