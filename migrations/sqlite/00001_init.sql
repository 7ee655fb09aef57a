-- Nurture schema, SQLite dialect. Keep version numbers aligned with
-- ../postgres/: the same file name carries the same change in both dialects.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC), the precision
-- PostgreSQL's timestamptz keeps, so both stores round-trip the same values
-- and compare them as plain integers. NULL means "no time".

-- +goose Up

CREATE TABLE leads (
    key         TEXT PRIMARY KEY,
    email       TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    owner       TEXT NOT NULL DEFAULT '',
    score       REAL NOT NULL DEFAULT 0,
    next_run_at INTEGER,
    state       BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX leads_next_run_at ON leads (next_run_at) WHERE next_run_at IS NOT NULL;

CREATE TABLE enrollments (
    lead_key    TEXT NOT NULL REFERENCES leads (key) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    sequence    TEXT NOT NULL,
    version     TEXT NOT NULL,
    step        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL,
    next_run_at INTEGER,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (lead_key, id)
) WITHOUT ROWID;
CREATE INDEX enrollments_due ON enrollments (next_run_at)
    WHERE status = 'active' AND next_run_at IS NOT NULL;

CREATE TABLE processed_events (
    event_id     TEXT PRIMARY KEY,
    processed_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

CREATE TABLE history (
    id       INTEGER PRIMARY KEY,
    lead_key TEXT NOT NULL,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    event_id TEXT NOT NULL DEFAULT '',
    data     BLOB
);
CREATE INDEX history_lead ON history (lead_key, id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    dedupe_key      TEXT NOT NULL UNIQUE,
    lead_key        TEXT NOT NULL DEFAULT '',
    payload         BLOB,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX outbox_claimable ON outbox (next_attempt_at, id) WHERE status IN ('pending', 'retry');
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE status = 'sending';
CREATE INDEX outbox_lead ON outbox (lead_key, id);

CREATE TABLE suppressions (
    email  TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE dead_letters (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    subject  TEXT NOT NULL DEFAULT '',
    event_id TEXT NOT NULL DEFAULT '',
    reason   TEXT NOT NULL,
    payload  BLOB
);

CREATE TABLE sequence_versions (
    sequence     TEXT NOT NULL,
    version      TEXT NOT NULL,
    source       BLOB,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (sequence, version)
) WITHOUT ROWID;

CREATE TABLE reps (
    id       TEXT PRIMARY KEY,
    open     INTEGER NOT NULL DEFAULT 0,
    assigned INTEGER NOT NULL DEFAULT 0,
    last_at  INTEGER,
    away     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- +goose Down
DROP TABLE reps;
DROP TABLE sequence_versions;
DROP TABLE dead_letters;
DROP TABLE suppressions;
DROP TABLE outbox;
DROP TABLE history;
DROP TABLE processed_events;
DROP TABLE enrollments;
DROP TABLE leads;
