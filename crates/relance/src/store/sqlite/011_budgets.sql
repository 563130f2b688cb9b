-- Contact pressure, continued: the firing rule's priority (which message takes a cap's
-- last slot) and its daily budget, carried by the job like `transactional`.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;
ALTER TABLE jobs ADD COLUMN max_per_day INTEGER;
-- A budgeted rule's sends today (a contact's sends walk jobs_contact). Partial: jobs of
-- rules without a budget pay nothing for it.
CREATE INDEX jobs_budgeted ON jobs (rule_id, updated_at) WHERE max_per_day IS NOT NULL;
