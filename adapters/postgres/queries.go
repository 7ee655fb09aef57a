package postgres

// SQL of the store, one named constant per statement. Every value is a
// parameter; batches travel as arrays and are expanded with unnest, so each
// Tx method is one round trip whatever the batch size.

const (
	// qLockInsert creates the missing leads, in key order, with a NULL
	// document: a lead that was never saved is engine.NewLead(key,
	// created_at). RETURNING names the leads this transaction created.
	qLockInsert = `
INSERT INTO leads (key, status, state, created_at, updated_at)
SELECT k, 'active', NULL, $2, $2 FROM unnest($1::text[]) AS k ORDER BY k
ON CONFLICT (key) DO NOTHING
RETURNING key`

	// qLockRead then locks every lead of the batch in key order. It runs as
	// its own statement (same pgx batch, so the same round trip) with a
	// fresh snapshot, so it sees rows other transactions created meanwhile
	// and the latest version of rows whose lock it waited for. Both
	// statements take their locks in key order and nothing is locked before
	// the insert, so two transactions locking overlapping batches cannot
	// deadlock.
	qLockRead = `
SELECT key, state, created_at FROM leads
WHERE key = ANY($1::text[])
ORDER BY key
FOR UPDATE`

	qClaimDueLeads = `
SELECT key, state, created_at FROM leads
WHERE next_run_at <= $1
ORDER BY next_run_at
LIMIT $2
FOR UPDATE SKIP LOCKED`

	qMarkEvents = `
INSERT INTO processed_events (event_id, processed_at)
SELECT id, $2 FROM unnest($1::text[]) AS id ORDER BY id
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id`

	qSaveLeads = `
UPDATE leads AS l SET
    email = u.email, status = u.status, owner = u.owner, score = u.score,
    next_run_at = u.next_run_at, state = u.state, updated_at = u.updated_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
            $6::timestamptz[], $7::json[], $8::timestamptz[])
    AS u(key, email, status, owner, score, next_run_at, state, updated_at)
WHERE l.key = u.key`

	qUpsertEnrollments = `
INSERT INTO enrollments (lead_key, id, sequence, version, step, status, next_run_at, started_at, ended_at, reason)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[])
ON CONFLICT (lead_key, id) DO UPDATE SET
    sequence = EXCLUDED.sequence, version = EXCLUDED.version, step = EXCLUDED.step,
    status = EXCLUDED.status, next_run_at = EXCLUDED.next_run_at,
    started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, reason = EXCLUDED.reason`

	qDeleteEnrollments = `
DELETE FROM enrollments AS e
USING unnest($1::text[], $2::text[]) AS d(lead_key, id)
WHERE e.lead_key = d.lead_key AND e.id = d.id`

	qAppendHistory = `
INSERT INTO history (lead_key, at, kind, event_id, data, effects)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::json[], $6::json[])`

	qEnqueue = `
INSERT INTO outbox (kind, dedupe_key, lead_key, payload, status, attempts, next_attempt_at, created_at, updated_at)
SELECT u.kind, u.dedupe_key, u.lead_key, u.payload, u.status, u.attempts, u.next_attempt_at, u.created_at, u.created_at
FROM unnest($1::text[], $2::text[], $3::text[], $4::json[], $5::text[], $6::int4[],
            $7::timestamptz[], $8::timestamptz[])
    AS u(kind, dedupe_key, lead_key, payload, status, attempts, next_attempt_at, created_at)
ON CONFLICT (dedupe_key) DO NOTHING`

	qDeadLetter = `
INSERT INTO dead_letters (at, subject, event_id, reason, payload)
VALUES ($1, $2, $3, $4, $5)`

	// qDeskLock serializes every reader-modifier of the desk (routing
	// transactions and SetRepAway), including when no rep row exists yet.
	qDeskLock = `SELECT pg_advisory_xact_lock($1)`
	qDesk     = `SELECT id, open, assigned, last_at, away FROM reps ORDER BY id`

	// qSaveDesk never overwrites away of an existing rep: only SetRepAway
	// changes it, so a routing transaction cannot undo an away flag.
	qSaveDesk = `
INSERT INTO reps (id, open, assigned, last_at, away)
SELECT * FROM unnest($1::text[], $2::int4[], $3::int8[], $4::timestamptz[], $5::bool[])
ON CONFLICT (id) DO UPDATE SET open = EXCLUDED.open, assigned = EXCLUDED.assigned, last_at = EXCLUDED.last_at`

	qSetRepAway = `
INSERT INTO reps (id, away) VALUES ($1, $2)
ON CONFLICT (id) DO UPDATE SET away = EXCLUDED.away`

	qSuppressed = `SELECT email, reason FROM suppressions WHERE email = ANY($1::text[])`

	qSuppress = `
INSERT INTO suppressions (email, reason, at) VALUES ($1, $2, $3)
ON CONFLICT (email) DO NOTHING`

	outboxColumns = `id, kind, dedupe_key, lead_key, payload, status, attempts, next_attempt_at, lease_until, last_error, created_at, updated_at, handed_at, deferred_us`

	// qOrderedScan, run in the claim's transaction, makes the planner
	// read due items in index order and stop at the limit. Without it,
	// when the statistics predate a burst of enqueued items (a campaign,
	// a timer backlog), it estimates a handful of due rows and plans a
	// bitmap scan of every due item plus a sort: each claim then reads the
	// whole backlog, and draining a backlog of n items costs O(n²).
	qOrderedScan = `SELECT set_config('enable_sort', 'off', true)`

	// qPlanOnce, run in the hand-off's transaction, plans the statement
	// once per connection (a generic plan) instead of on every call: left
	// to choose, the server re-plans it each time, and planning costs more
	// than running it. Nested loops over the primary keys are the only
	// plan it gets, so the plan kept does not depend on how big the
	// tables were when it was made.
	qPlanOnce = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
       set_config('enable_seqscan', 'off', true),
       set_config('enable_hashjoin', 'off', true),
       set_config('enable_mergejoin', 'off', true)`

	// qClaimOutbox leases due items. cardinality($2) = 0 means every kind.
	qClaimOutbox = `
WITH due AS (
    SELECT id FROM outbox
    WHERE status IN ('pending', 'retry') AND next_attempt_at <= $1
      AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
    ORDER BY next_attempt_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE outbox AS o SET status = 'sending', attempts = o.attempts + 1, lease_until = $4, handed_at = NULL, updated_at = $1
FROM due WHERE o.id = due.id
RETURNING o.id, o.kind, o.dedupe_key, o.lead_key, o.payload, o.status, o.attempts, o.next_attempt_at,
          o.lease_until, o.last_error, o.created_at, o.updated_at, o.handed_at, o.deferred_us`

	// qCompleteOutbox records outcomes. A retry moves next_attempt_at; every
	// outcome ends the lease. A result with attempts > 0 applies only to
	// that attempt while it is not final (sending, or settled by lease
	// recovery): a late outcome never overwrites a newer claim. A deferred
	// retry gives its attempt back and adds the deferral to deferred_us.
	qCompleteOutbox = `
UPDATE outbox AS o SET
    status = r.status,
    last_error = r.error,
    next_attempt_at = CASE WHEN r.status = 'retry' THEN r.next_at ELSE o.next_attempt_at END,
    attempts = CASE WHEN r.deferred THEN greatest(o.attempts - 1, 0) ELSE o.attempts END,
    deferred_us = CASE WHEN r.deferred
        THEN o.deferred_us + greatest(0, (extract(epoch FROM r.next_at - r.at) * 1000000)::int8)
        ELSE o.deferred_us END,
    lease_until = NULL,
    updated_at = r.at
FROM unnest($1::int8[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::int4[], $7::bool[])
    AS r(id, status, error, next_at, at, attempts, deferred)
WHERE o.id = r.id
  AND (r.attempts = 0 OR (o.attempts = r.attempts AND o.status IN ('sending', 'retry', 'unknown')))
RETURNING o.id`

	// qOutboxExists tells stale ids from unknown ones.
	qOutboxExists = `SELECT id FROM outbox WHERE id = ANY($1::int8[])`

	// qHandOff checks items about to leave and marks the ones that pass
	// handed off, renewing their lease: $1 ids, $2 attempts, $3 addresses
	// (normalised; '' skips the list), $4 lead keys ('' skips the status),
	// $5 the active status, $6 now, $7 the new lease end. One row per item,
	// in input order: the suppression reason ('' when none) and whether
	// the hand-off mark was applied (false and no reason: stale attempt).
	qHandOff = `
WITH chk AS (
    SELECT r.ord, r.id, r.attempts,
        CASE WHEN s.email IS NOT NULL THEN coalesce(nullif(s.reason, ''), 'suppressed')
             WHEN l.status IS NOT NULL AND l.status NOT IN ('', $5) THEN l.status
        END AS reason
    FROM unnest($1::int8[], $2::int4[], $3::text[], $4::text[]) WITH ORDINALITY AS r(id, attempts, email, lead_key, ord)
    LEFT JOIN suppressions s ON r.email <> '' AND s.email = r.email
    LEFT JOIN leads l ON r.lead_key <> '' AND l.key = r.lead_key
), handed AS (
    UPDATE outbox AS o SET handed_at = $6, lease_until = $7
    FROM chk
    WHERE chk.reason IS NULL AND o.id = chk.id AND o.status = 'sending' AND o.attempts = chk.attempts
    RETURNING o.id
)
SELECT coalesce(chk.reason, ''), EXISTS (SELECT 1 FROM handed h WHERE h.id = chk.id)
FROM chk ORDER BY chk.ord`

	// qRecoverLeases settles expired leases in one statement: handed-off
	// items of the kinds $3 become unknown, the rest retry at once.
	qRecoverLeases = `
WITH due AS (
    SELECT id FROM outbox
    WHERE status = 'sending' AND lease_until < $1
    ORDER BY lease_until, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), v AS (
    SELECT o.id, (o.handed_at IS NOT NULL AND o.kind = ANY($3::text[])) AS unknown, o.handed_at IS NOT NULL AS handed
    FROM outbox o JOIN due ON o.id = due.id
)
UPDATE outbox AS o SET
    status = CASE WHEN v.unknown THEN 'unknown' ELSE 'retry' END,
    next_attempt_at = CASE WHEN v.unknown THEN o.next_attempt_at ELSE $1 END,
    last_error = CASE
        WHEN v.unknown THEN 'lease expired after hand-off: outcome unknown, not resent'
        WHEN v.handed THEN 'lease expired after hand-off; retrying'
        ELSE 'lease expired before hand-off; retrying' END,
    lease_until = NULL,
    updated_at = $1
FROM v WHERE o.id = v.id AND o.status = 'sending' AND o.lease_until < $1
RETURNING o.id, o.kind, o.dedupe_key, o.lead_key, o.payload, o.status, o.attempts, o.next_attempt_at,
          o.lease_until, o.last_error, o.created_at, o.updated_at, o.handed_at, o.deferred_us`

	qExpiredLeases = `
SELECT ` + outboxColumns + ` FROM outbox
WHERE status = 'sending' AND lease_until < $1
ORDER BY lease_until, id
LIMIT $2`

	qLead = `SELECT key, state, created_at FROM leads WHERE key = $1`

	// qHistory returns the latest $2 entries (all when $2 is NULL), oldest
	// first: each row's own entry, then the effects that ride along with it
	// (a row holds at least one entry, so the latest $2 rows are enough).
	qHistory = `
SELECT lead_key, at, kind, event_id, data FROM (
    SELECT x.* FROM (
        SELECT id, lead_key, at, kind, event_id, data, effects FROM history
        WHERE lead_key = $1 ORDER BY id DESC LIMIT $2
    ) h CROSS JOIN LATERAL (
        SELECT h.id, 0::int8 AS ord, h.lead_key, h.at, h.kind, h.event_id, h.data
        UNION ALL
        SELECT h.id, e.ord, h.lead_key, h.at, e.v->>'kind', h.event_id, e.v->'data'
        FROM json_array_elements(h.effects) WITH ORDINALITY AS e(v, ord)
    ) x
    ORDER BY x.id DESC, x.ord DESC
    LIMIT $2
) y ORDER BY id, ord`

	qListOutbox         = `SELECT ` + outboxColumns + ` FROM outbox ORDER BY id DESC LIMIT $1`
	qListOutboxKind     = `SELECT ` + outboxColumns + ` FROM outbox WHERE kind = $2 ORDER BY id DESC LIMIT $1`
	qListOutboxLead     = `SELECT ` + outboxColumns + ` FROM outbox WHERE lead_key = $2 ORDER BY id DESC LIMIT $1`
	qListOutboxKindLead = `SELECT ` + outboxColumns + ` FROM outbox WHERE kind = $2 AND lead_key = $3 ORDER BY id DESC LIMIT $1`
	qDeadLetters        = `SELECT id, at, subject, event_id, reason, payload FROM dead_letters ORDER BY id DESC LIMIT $1`
	qPublishVersions    = `
INSERT INTO sequence_versions (sequence, version, source, published_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::timestamptz[])
ON CONFLICT (sequence, version) DO NOTHING`
	qVersions = `SELECT sequence, version, source, published_at FROM sequence_versions ORDER BY sequence, published_at, version`

	// qPruneProcessed deletes one bounded slice of old event ids; the caller
	// loops so no single statement holds locks for long.
	qPruneProcessed = `
DELETE FROM processed_events WHERE event_id IN (
    SELECT event_id FROM processed_events WHERE processed_at < $1 LIMIT $2
)`
)

// deskLockID is the advisory lock key of the desk ("nurture" + "desk").
const deskLockID int64 = 0x6e75727475726400
