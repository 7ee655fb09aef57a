-- Cheaper dispatcher writes (SQLite dialect; same version in ../postgres/).
--
-- PostgreSQL indexes the items in flight by id instead of by lease end, so
-- that marking a hand-off touches no index, and stores the payload as json;
-- SQLite has no HOT updates and stores payloads as BLOBs, but takes the
-- same index change so that both schemas stay alike: lease recovery
-- filters the few items in flight on lease_until.

-- +goose Up
CREATE INDEX outbox_sending ON outbox (id) WHERE status = 'sending';
DROP INDEX outbox_leased;

-- +goose Down
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE status = 'sending';
DROP INDEX outbox_sending;
