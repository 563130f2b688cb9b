-- An event's public id is its row id in decimal (issue 20): the UUID column and its
-- unique index cost a 36-byte key and an index entry per event, and every history row
-- and job carried another copy. Events stored before keep their UUID as `legacy_id` and
-- answer to it as they always did (history rows and jobs written before refer to them by
-- it); it is NULL from now on, and the partial index holds only the old rows. Ids come
-- from the table's sequence (reserved per batch), which never hands one out twice, across
-- instances too.
ALTER TABLE events RENAME COLUMN public_id TO legacy_id;
ALTER TABLE events ALTER COLUMN legacy_id DROP NOT NULL;
ALTER TABLE events DROP CONSTRAINT events_public_id_key;
CREATE UNIQUE INDEX events_legacy_id ON events(legacy_id) WHERE legacy_id IS NOT NULL;
