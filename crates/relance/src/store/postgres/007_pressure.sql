-- Contact pressure (see docs/rules.md, "Contact pressure"): a job that passes caps and
-- quiet hours, and what it does over a cap (NULL: defer).
ALTER TABLE jobs ADD COLUMN transactional BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE jobs ADD COLUMN on_cap TEXT;
