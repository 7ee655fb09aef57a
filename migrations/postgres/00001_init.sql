-- Nurture schema, PostgreSQL dialect. Keep version numbers aligned with
-- ../sqlite/: the same file name carries the same change in both dialects.

-- +goose Up

-- One row per lead: the engine.Lead JSON document (state) plus the columns
-- that queries and the timer sweep need. Events and timers for one lead
-- serialize on this row's lock.
CREATE TABLE leads (
    key         text PRIMARY KEY,
    email       text NOT NULL DEFAULT '',
    status      text NOT NULL,
    owner       text NOT NULL DEFAULT '',
    score       double precision NOT NULL DEFAULT 0,
    next_run_at timestamptz,
    state       jsonb, -- NULL: created by LockLeads, never saved (engine.NewLead(key, created_at))
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
) WITH (fillfactor = 70); -- room for HOT updates: most saves touch no indexed column
-- The timer sweep's index: only leads with a pending timer are in it, so a
-- sweep's cost is proportional to what is due, not to the number of leads.
CREATE INDEX leads_next_run_at ON leads (next_run_at) WHERE next_run_at IS NOT NULL;

-- A mirror of each lead's enrollments for queries (the lead document is the
-- truth). Enrollment ids are stable per lead, so the key includes the lead.
CREATE TABLE enrollments (
    lead_key    text NOT NULL REFERENCES leads (key) ON DELETE CASCADE,
    id          text NOT NULL,
    sequence    text NOT NULL,
    version     text NOT NULL,
    step        text NOT NULL DEFAULT '',
    status      text NOT NULL,
    next_run_at timestamptz,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    reason      text NOT NULL DEFAULT '',
    PRIMARY KEY (lead_key, id)
) WITH (fillfactor = 80);
CREATE INDEX enrollments_due ON enrollments (next_run_at)
    WHERE status = 'active' AND next_run_at IS NOT NULL;

-- Event ids already applied (exactly-once). Pruned by PruneProcessed once
-- older than the redelivery horizon.
CREATE TABLE processed_events (
    event_id     text PRIMARY KEY,
    processed_at timestamptz NOT NULL
);
-- BRIN: ids arrive in time order, so a tiny index serves the prune and
-- costs the hot insert path almost nothing.
CREATE INDEX processed_events_processed_at ON processed_events USING brin (processed_at);

-- The per-lead timeline.
CREATE TABLE history (
    id       bigserial PRIMARY KEY,
    lead_key text NOT NULL,
    at       timestamptz NOT NULL,
    kind     text NOT NULL,
    event_id text NOT NULL DEFAULT '',
    data     jsonb
);
CREATE INDEX history_lead ON history (lead_key, id);

-- Outgoing work, written in the same transaction as the state change.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,
    dedupe_key      text NOT NULL UNIQUE,
    lead_key        text NOT NULL DEFAULT '',
    payload         jsonb,
    status          text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- Claimable rows only: the dispatcher's claim never scans finished work.
CREATE INDEX outbox_claimable ON outbox (next_attempt_at, id) WHERE status IN ('pending', 'retry');
CREATE INDEX outbox_leased ON outbox (lease_until, id) WHERE status = 'sending';
CREATE INDEX outbox_lead ON outbox (lead_key, id);

-- Addresses never mailed again (stored lower-case).
CREATE TABLE suppressions (
    email  text PRIMARY KEY,
    reason text NOT NULL,
    at     timestamptz NOT NULL
);

CREATE TABLE dead_letters (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL,
    subject  text NOT NULL DEFAULT '',
    event_id text NOT NULL DEFAULT '',
    reason   text NOT NULL,
    payload  bytea
);

CREATE TABLE sequence_versions (
    sequence     text NOT NULL,
    version      text NOT NULL,
    source       bytea,
    published_at timestamptz NOT NULL,
    PRIMARY KEY (sequence, version)
);

-- The routing desk (engine.Desk): one row per rep.
CREATE TABLE reps (
    id       text PRIMARY KEY,
    open     integer NOT NULL DEFAULT 0,
    assigned bigint NOT NULL DEFAULT 0,
    last_at  timestamptz,
    away     boolean NOT NULL DEFAULT false
);

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
