-- Dedupe keys checked through a hash index instead of a B-tree (issue 20). A key is only
-- ever looked up whole, and the B-tree held every key's full text (25 bytes for a website
-- event, about 100 for a Brevo one: its email, campaign, time and link) in pages half
-- filled by keys arriving in no order: 88 bytes of index per stored event, the largest
-- index. A hash index holds a 4-byte hash code per key (55 bytes per event measured the
-- same way). A B-tree is what UNIQUE takes; an
-- exclusion constraint on `=` is the same promise through a hash index: two rows may not
-- hold equal keys (NULLs never conflict), checked against other instances' transactions
-- as UNIQUE is. A conflict is now SQLSTATE 23P01 instead of 23505.
ALTER TABLE events DROP CONSTRAINT events_dedupe_key_key;
ALTER TABLE events ADD CONSTRAINT events_dedupe_key EXCLUDE USING hash (dedupe_key WITH =);
