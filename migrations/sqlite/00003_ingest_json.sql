-- Cheaper ingest and sweep writes (SQLite dialect; same version in ../postgres/).
--
-- PostgreSQL switches the lead document and timeline data from jsonb to
-- json; SQLite stores both as BLOBs already, so only the index change
-- applies here: the enrollments mirror loses its next_run_at index, because
-- the sweep claims leads on leads.next_run_at (the earliest timer of the
-- lead's active enrollments) and nothing claims enrollments.

-- +goose Up
DROP INDEX enrollments_due;

-- +goose Down
CREATE INDEX enrollments_due ON enrollments (next_run_at)
    WHERE status = 'active' AND next_run_at IS NOT NULL;
