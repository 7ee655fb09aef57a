package sqlite

// SQL of the store, one named constant per statement. Every value is a
// parameter. Times are INTEGER microseconds since the Unix epoch (UTC);
// NULL means "no time". Statements run once per row inside one
// transaction: SQLite runs in-process, so a row costs a function call, not
// a network round trip.

const (
	qLockInsert = `
INSERT INTO leads (key, status, state, created_at, updated_at) VALUES (?, 'active', ?, ?, ?)
ON CONFLICT (key) DO NOTHING`
	qLeadState = `SELECT state FROM leads WHERE key = ?`

	qClaimDueLeads = `
SELECT key, state FROM leads
WHERE next_run_at IS NOT NULL AND next_run_at <= ?
ORDER BY next_run_at
LIMIT ?`

	qMarkEvent = `INSERT INTO processed_events (event_id, processed_at) VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING`

	qSaveLead = `
UPDATE leads SET email = ?, status = ?, owner = ?, score = ?, next_run_at = ?, state = ?, updated_at = ?
WHERE key = ?`

	qUpsertEnrollment = `
INSERT INTO enrollments (lead_key, id, sequence, version, step, status, next_run_at, started_at, ended_at, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (lead_key, id) DO UPDATE SET
    sequence = excluded.sequence, version = excluded.version, step = excluded.step,
    status = excluded.status, next_run_at = excluded.next_run_at,
    started_at = excluded.started_at, ended_at = excluded.ended_at, reason = excluded.reason`

	qDeleteEnrollment = `DELETE FROM enrollments WHERE lead_key = ? AND id = ?`

	qAppendHistory = `INSERT INTO history (lead_key, at, kind, event_id, data) VALUES (?, ?, ?, ?, ?)`

	qEnqueue = `
INSERT INTO outbox (kind, dedupe_key, lead_key, payload, status, attempts, next_attempt_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (dedupe_key) DO NOTHING`

	qDeadLetter = `INSERT INTO dead_letters (at, subject, event_id, reason, payload) VALUES (?, ?, ?, ?, ?)`

	qDesk = `SELECT id, open, assigned, last_at, away FROM reps ORDER BY id`

	// qSaveDesk never overwrites away of an existing rep: only SetRepAway
	// changes it.
	qSaveDesk = `
INSERT INTO reps (id, open, assigned, last_at, away) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET open = excluded.open, assigned = excluded.assigned, last_at = excluded.last_at`

	qSetRepAway = `
INSERT INTO reps (id, away) VALUES (?, ?)
ON CONFLICT (id) DO UPDATE SET away = excluded.away`

	qSuppressed = `SELECT reason FROM suppressions WHERE email = ?`
	qSuppress   = `INSERT INTO suppressions (email, reason, at) VALUES (?, ?, ?) ON CONFLICT (email) DO NOTHING`

	outboxColumns = `id, kind, dedupe_key, lead_key, payload, status, attempts, next_attempt_at, lease_until, last_error, created_at, updated_at, handed_at, deferred_us`

	// qClaimOutbox leases due items of the kinds in the JSON array ?2 (an
	// empty array means every kind). No SKIP LOCKED: the single writer
	// connection already excludes every other claimer.
	qClaimOutbox = `
UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = ?3, handed_at = NULL, updated_at = ?1
WHERE id IN (
    SELECT id FROM outbox
    WHERE status IN ('pending', 'retry') AND next_attempt_at <= ?1
      AND (json_array_length(?2) = 0 OR kind IN (SELECT value FROM json_each(?2)))
    ORDER BY next_attempt_at, id
    LIMIT ?4
)
RETURNING ` + outboxColumns

	// qCompleteOutbox records one outcome. ?6 > 0 fences it to that
	// attempt while not final (sending, or settled by lease recovery); a
	// deferred (?7) retry gives its attempt back and adds the deferral to
	// deferred_us.
	qCompleteOutbox = `
UPDATE outbox SET
    status = ?2,
    last_error = ?3,
    next_attempt_at = CASE WHEN ?2 = 'retry' THEN ?4 ELSE next_attempt_at END,
    attempts = CASE WHEN ?7 THEN max(attempts - 1, 0) ELSE attempts END,
    deferred_us = CASE WHEN ?7 THEN deferred_us + max(0, coalesce(?4, ?5) - ?5) ELSE deferred_us END,
    lease_until = NULL,
    updated_at = ?5
WHERE id = ?1 AND (?6 = 0 OR (attempts = ?6 AND status IN ('sending', 'retry', 'unknown')))`

	qOutboxExists = `SELECT 1 FROM outbox WHERE id = ?`

	// qHandOff marks the current attempt handed off and renews its lease.
	qHandOff = `
UPDATE outbox SET handed_at = ?2, lease_until = ?4
WHERE id = ?1 AND status = 'sending' AND attempts = ?3`

	// qLeadStatus reads the status column of a lead (the pre-send check).
	qLeadStatus = `SELECT status FROM leads WHERE key = ?`

	// qRecoverLeases settles expired leases in one statement: handed-off
	// items of the kinds in the JSON array ?3 become unknown, the rest
	// retry at once.
	qRecoverLeases = `
UPDATE outbox SET
    status = CASE WHEN handed_at IS NOT NULL AND kind IN (SELECT value FROM json_each(?3)) THEN 'unknown' ELSE 'retry' END,
    next_attempt_at = CASE WHEN handed_at IS NOT NULL AND kind IN (SELECT value FROM json_each(?3)) THEN next_attempt_at ELSE ?1 END,
    last_error = CASE
        WHEN handed_at IS NOT NULL AND kind IN (SELECT value FROM json_each(?3)) THEN 'lease expired after hand-off: outcome unknown, not resent'
        WHEN handed_at IS NOT NULL THEN 'lease expired after hand-off; retrying'
        ELSE 'lease expired before hand-off; retrying' END,
    lease_until = NULL,
    updated_at = ?1
WHERE id IN (
    SELECT id FROM outbox WHERE status = 'sending' AND lease_until < ?1
    ORDER BY lease_until, id
    LIMIT ?2
)
RETURNING ` + outboxColumns

	qExpiredLeases = `
SELECT ` + outboxColumns + ` FROM outbox
WHERE status = 'sending' AND lease_until < ?
ORDER BY lease_until, id
LIMIT ?`

	// qHistory returns the latest ?2 entries (all when -1), oldest first.
	qHistory = `
SELECT lead_key, at, kind, event_id, data FROM (
    SELECT id, lead_key, at, kind, event_id, data FROM history
    WHERE lead_key = ?1 ORDER BY id DESC LIMIT ?2
) ORDER BY id`

	qListOutbox         = `SELECT ` + outboxColumns + ` FROM outbox ORDER BY id DESC LIMIT ?1`
	qListOutboxKind     = `SELECT ` + outboxColumns + ` FROM outbox WHERE kind = ?2 ORDER BY id DESC LIMIT ?1`
	qListOutboxLead     = `SELECT ` + outboxColumns + ` FROM outbox WHERE lead_key = ?2 ORDER BY id DESC LIMIT ?1`
	qListOutboxKindLead = `SELECT ` + outboxColumns + ` FROM outbox WHERE kind = ?2 AND lead_key = ?3 ORDER BY id DESC LIMIT ?1`
	qDeadLetters        = `SELECT id, at, subject, event_id, reason, payload FROM dead_letters ORDER BY id DESC LIMIT ?`

	qPublishVersion = `
INSERT INTO sequence_versions (sequence, version, source, published_at) VALUES (?, ?, ?, ?)
ON CONFLICT (sequence, version) DO NOTHING`
	qVersions = `SELECT sequence, version, source, published_at FROM sequence_versions ORDER BY sequence, published_at, version`

	qPruneProcessed = `
DELETE FROM processed_events WHERE event_id IN (
    SELECT event_id FROM processed_events WHERE processed_at < ? LIMIT ?
)`
)
