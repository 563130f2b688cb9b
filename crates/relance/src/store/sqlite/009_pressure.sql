-- Contact pressure (see docs/rules.md, "Contact pressure"): a job that passes caps and
-- quiet hours, and what it does over a cap (NULL: defer).
ALTER TABLE jobs ADD COLUMN transactional INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN on_cap TEXT;
