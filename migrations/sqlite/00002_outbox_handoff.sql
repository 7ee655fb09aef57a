-- Outbox hand-off marks and throttle deferrals (SQLite dialect; same
-- version as ../postgres/00002_outbox_handoff.sql).
-- handed_at: when the current attempt was handed to its receiver (unix
-- micros; NULL: claimed but not handed off, so a lapsed lease is safe to
-- retry). deferred_us: total microseconds throttles deferred the item
-- (excluded from the give-up age).

-- +goose Up
ALTER TABLE outbox ADD COLUMN handed_at INTEGER;
ALTER TABLE outbox ADD COLUMN deferred_us INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE outbox DROP COLUMN deferred_us;
ALTER TABLE outbox DROP COLUMN handed_at;
