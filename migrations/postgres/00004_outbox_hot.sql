-- Cheaper dispatcher writes (PostgreSQL dialect; same version in ../sqlite/).
--
-- * Items in flight are indexed by id, not by lease end. Marking a hand-off
--   (handed_at, lease_until) then changes no indexed column, so with room
--   left on the page (fillfactor 80) it is a HOT update: no new index
--   entries. Lease recovery still finds expired leases through this index:
--   it only ever holds the items in flight (claimed, not yet recorded),
--   a few hundred at most, so filtering them on lease_until is cheap.
-- * The payload becomes json instead of jsonb: it is written once, read
--   whole by the dispatcher and never queried into, so jsonb's parse on
--   insert and re-serialisation on every claim are pure cost. Changing the
--   column type rewrites the outbox table once, under an exclusive lock:
--   on a large outbox, run `nurture migrate` while workers are stopped.

-- +goose Up
CREATE INDEX outbox_sending ON outbox (id) WHERE status = 'sending';
DROP INDEX outbox_leased;
ALTER TABLE outbox SET (fillfactor = 80);
ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json;

-- +goose Down
ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb;
ALTER TABLE outbox RESET (fillfactor);
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE status = 'sending';
DROP INDEX outbox_sending;
