-- Cheaper ingest and sweep writes (PostgreSQL dialect; same version in ../sqlite/).
--
-- * The lead document and timeline data become json instead of jsonb. The
--   store always reads and writes the document whole from Go, never queries
--   into it, so jsonb's parse on every write and its re-serialisation on
--   every read are pure cost (measured: saving 500 leads ≈ 40% faster,
--   locking and reading them ≈ 45% faster). The runner rejects what jsonb
--   used to reject (\u0000 in strings) before it reaches the database.
-- * The timeline takes one row per applied event: the row is the event's
--   entry (kind 'event', so counting applied events stays a plain
--   WHERE kind = 'event'), and the entries of its effects ride along in
--   effects, a JSON array of {"kind", "data"}. Ticks likewise: the first
--   effect is the row, the rest ride along. One row instead of one per
--   effect halves the timeline's share of an ingest transaction.
-- * The enrollments mirror loses its next_run_at index. Nothing claims
--   enrollments: the sweep claims leads on leads.next_run_at, which is the
--   earliest timer of the lead's active enrollments, through the partial
--   index leads_next_run_at (only leads with a pending timer are in it).
--   Without the second index, moving an enrollment's timer is a HOT update.

-- +goose Up
ALTER TABLE leads ALTER COLUMN state TYPE json USING state::json;
ALTER TABLE history ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE history ADD COLUMN effects json;
DROP INDEX enrollments_due;

-- +goose Down
CREATE INDEX enrollments_due ON enrollments (next_run_at)
    WHERE status = 'active' AND next_run_at IS NOT NULL;
ALTER TABLE history DROP COLUMN effects;
ALTER TABLE history ALTER COLUMN data TYPE jsonb USING data::jsonb;
ALTER TABLE leads ALTER COLUMN state TYPE jsonb USING state::jsonb;
