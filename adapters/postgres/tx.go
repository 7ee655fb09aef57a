package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// tx is store.Tx on one pgx transaction.
type tx struct {
	tx pgx.Tx
	// mirror holds the enrollment rows of the leads loaded in this
	// transaction, so SaveLeads writes only the rows that changed.
	mirror store.Mirror
	// created holds the now of leads this transaction created, so a second
	// LockLeads of such a lead (still unsaved, NULL document) returns
	// exactly engine.NewLead(key, now) again.
	created map[string]time.Time
}

// decodeLead decodes a lead's document; a NULL document is a lead created
// by LockLeads and never saved: engine.NewLead(key, created_at).
func decodeLead(key string, state []byte, created time.Time) (*engine.Lead, error) {
	if state == nil {
		return engine.NewLead(key, created.UTC()), nil
	}
	l, err := store.DecodeLead(state)
	if err != nil {
		return nil, fmt.Errorf("decode lead %s: %w", key, err)
	}
	return l, nil
}

// scanLead scans (key, state, created_at).
func scanLead(r scanner) (*engine.Lead, error) {
	var key string
	var state []byte
	var created time.Time
	if err := r.Scan(&key, &state, &created); err != nil {
		return nil, err
	}
	return decodeLead(key, state, created)
}

// ts converts a time to a nullable timestamptz (zero → NULL).
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// fromTS converts a nullable timestamptz back (NULL → zero), in UTC.
func fromTS(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func (t *tx) LockLeads(ctx context.Context, keys []string, now time.Time) (map[string]*engine.Lead, error) {
	out := make(map[string]*engine.Lead, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	keys = sortedUnique(keys)
	op := fmt.Sprintf("lock leads (%d, first %s)", len(keys), keys[0])
	// Most events are for leads that exist: lock them first, in key order,
	// and insert only what is missing (an insert attempt on an existing key
	// costs about as much as locking it).
	rows, err := t.tx.Query(ctx, qLockRead, keys)
	if err != nil {
		return nil, translate(op, err)
	}
	locked, err := collect(rows, op, t.scanLocked)
	if err != nil {
		return nil, err
	}
	for _, l := range locked {
		out[l.Key] = l
	}
	if len(out) < len(keys) {
		missing := make([]string, 0, len(keys)-len(out))
		for _, k := range keys {
			if out[k] == nil {
				missing = append(missing, k)
			}
		}
		if err := t.createAndLock(ctx, op, missing, now, out); err != nil {
			return nil, err
		}
	}
	for _, l := range out {
		t.mirror.Remember(l)
	}
	if len(out) != len(keys) {
		return nil, fmt.Errorf("%s: locked %d of %d leads", op, len(out), len(keys))
	}
	return out, nil
}

// createAndLock creates the missing leads (key order, NULL document) and
// locks them, in one round trip. The lock runs as its own statement with a
// fresh snapshot, so it sees rows other transactions created meanwhile.
// Inserts and locks go in key order; the rows locked before (which existed)
// can in a rare three-way race make two creators wait on each other, which
// PostgreSQL breaks with a deadlock error (40P01, transient: the batch is
// retried).
func (t *tx) createAndLock(ctx context.Context, op string, missing []string, now time.Time, out map[string]*engine.Lead) error {
	b := &pgx.Batch{}
	b.Queue(qLockInsert, missing, now)
	b.Queue(qLockRead, missing)
	br := t.tx.SendBatch(ctx, b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return translate(op, err)
	}
	created, err := collect(rows, op, func(r scanner) (string, error) {
		var k string
		return k, r.Scan(&k)
	})
	if err != nil {
		return err
	}
	if len(created) > 0 && t.created == nil {
		t.created = make(map[string]time.Time, len(created))
	}
	for _, k := range created {
		t.created[k] = now
	}
	rows, err = br.Query()
	if err != nil {
		return translate(op, err)
	}
	locked, err := collect(rows, op, t.scanLocked)
	if err != nil {
		return err
	}
	if err := br.Close(); err != nil {
		return translate(op, err)
	}
	for _, l := range locked {
		out[l.Key] = l
	}
	return nil
}

// scanLocked scans (key, state, created_at) of a locked lead.
func (t *tx) scanLocked(r scanner) (*engine.Lead, error) {
	var key string
	var state []byte
	var createdAt time.Time
	if err := r.Scan(&key, &state, &createdAt); err != nil {
		return nil, err
	}
	if at, ok := t.created[key]; ok && state == nil {
		// Created by this transaction and not saved yet: exactly
		// engine.NewLead(key, now) (the column keeps microseconds only).
		return engine.NewLead(key, at), nil
	}
	return decodeLead(key, state, createdAt)
}

func (t *tx) ClaimDueLeads(ctx context.Context, now time.Time, limit int) ([]*engine.Lead, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.tx.Query(ctx, qClaimDueLeads, now, limit)
	if err != nil {
		return nil, translate("claim due leads", err)
	}
	out, err := collect(rows, "claim due leads", scanLead)
	if err != nil {
		return nil, err
	}
	for _, l := range out {
		t.mirror.Remember(l)
	}
	return out, nil
}

func (t *tx) MarkEvents(ctx context.Context, ids []string, now time.Time) (map[string]bool, error) {
	fresh := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return fresh, nil
	}
	ids = sortedUnique(ids)
	rows, err := t.tx.Query(ctx, qMarkEvents, ids, now)
	if err != nil {
		return nil, translate("mark events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, translate("mark events: scan", err)
		}
		fresh[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, translate("mark events", err)
	}
	return fresh, nil
}

func (t *tx) SaveLeads(ctx context.Context, leads []*engine.Lead) error {
	if len(leads) == 0 {
		return nil
	}
	// Last write of a key wins; write in key order.
	byKey := make(map[string]*engine.Lead, len(leads))
	for _, l := range leads {
		if l == nil || l.Key == "" {
			return fmt.Errorf("save leads: lead without key")
		}
		byKey[l.Key] = l
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	n := len(keys)
	var (
		emails, statuses, owners = make([]string, n), make([]string, n), make([]string, n)
		scores                   = make([]float64, n)
		nextRuns, updated        = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
		states                   = make([][]byte, n)
		en                       enrollArrays
		delLeads, delIDs         []string
	)
	now := time.Now()
	for i, k := range keys {
		l := byKey[k]
		b, err := store.EncodeLead(l)
		if err != nil {
			return fmt.Errorf("save lead %s: encode: %w", k, err)
		}
		states[i] = b
		emails[i], statuses[i], owners[i] = l.Email, string(l.Status), l.Owner
		scores[i] = l.Score.Value
		nextRuns[i] = ts(l.NextRunAt)
		if l.UpdatedAt.IsZero() {
			updated[i] = ts(now)
		} else {
			updated[i] = ts(l.UpdatedAt)
		}

		changed, deleted := t.mirror.Diff(l)
		for _, e := range changed {
			en.add(k, e.ID, store.RowOf(e))
		}
		for _, id := range deleted {
			delLeads, delIDs = append(delLeads, k), append(delIDs, id)
		}
	}

	b := &pgx.Batch{}
	b.Queue(qSaveLeads, keys, emails, statuses, owners, scores, nextRuns, states, updated)
	if len(en.lead) > 0 {
		b.Queue(qUpsertEnrollments, en.lead, en.id, en.sequence, en.version, en.step, en.status,
			en.nextRun, en.started, en.ended, en.reason)
	}
	if len(delLeads) > 0 {
		b.Queue(qDeleteEnrollments, delLeads, delIDs)
	}
	br := t.tx.SendBatch(ctx, b)
	tag, err := br.Exec()
	if err != nil {
		br.Close()
		return translate(fmt.Sprintf("save leads (%d, first %s)", n, keys[0]), err)
	}
	for i := 1; i < b.Len(); i++ {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return translate(fmt.Sprintf("save leads: enrollments (first %s)", keys[0]), err)
		}
	}
	if err := br.Close(); err != nil {
		return translate("save leads", err)
	}
	if int(tag.RowsAffected()) != n {
		return fmt.Errorf("save leads: %d of %d leads exist (lock or create them first): %w",
			tag.RowsAffected(), n, store.ErrNotFound)
	}
	for _, k := range keys {
		t.mirror.Remember(byKey[k])
	}
	return nil
}

// enrollArrays are the column arrays of an enrollment upsert.
type enrollArrays struct {
	lead, id, sequence, version, step, status, reason []string
	nextRun, started, ended                           []pgtype.Timestamptz
}

func (a *enrollArrays) add(lead, id string, r store.EnrollmentRow) {
	a.lead = append(a.lead, lead)
	a.id = append(a.id, id)
	a.sequence = append(a.sequence, r.Sequence)
	a.version = append(a.version, r.Version)
	a.step = append(a.step, r.Step)
	a.status = append(a.status, r.Status)
	a.reason = append(a.reason, r.Reason)
	a.nextRun = append(a.nextRun, ts(r.NextRunAt))
	a.started = append(a.started, pgtype.Timestamptz{Time: r.StartedAt, Valid: true})
	a.ended = append(a.ended, ts(r.EndedAt))
}

// The timeline takes one row per applied event: the row is the event's
// entry (kind "event") and the entries of its effects, appended with it
// (same lead, event id and time), ride along in the effects column as a
// JSON array of {"kind", "data"}. That halves the timeline's share of an
// ingest transaction and keeps kind = 'event' one row per applied event;
// qHistory expands the effects back into entries.
func (t *tx) AppendHistory(ctx context.Context, entries []store.History) error {
	if len(entries) == 0 {
		return nil
	}
	var leads, kinds, events []string
	var ats []time.Time
	var data, effects [][]byte
	for i := 0; i < len(entries); {
		h := entries[i]
		j := i + 1
		for j < len(entries) && entries[j].LeadKey == h.LeadKey && entries[j].EventID == h.EventID && entries[j].At.Equal(h.At) {
			j++
		}
		leads, kinds, events, ats = append(leads, h.LeadKey), append(kinds, h.Kind), append(events, h.EventID), append(ats, h.At)
		if len(h.Data) > 0 {
			data = append(data, h.Data)
		} else {
			data = append(data, nil)
		}
		if j > i+1 {
			effects = append(effects, packEntries(entries[i+1:j]))
		} else {
			effects = append(effects, nil)
		}
		i = j
	}
	if _, err := t.tx.Exec(ctx, qAppendHistory, leads, ats, kinds, events, data, effects); err != nil {
		return translate(fmt.Sprintf("append history (%d, first lead %s)", len(leads), leads[0]), err)
	}
	return nil
}

// packEntries encodes entries as an effects array. Their Data is already
// JSON (the json column checks it), so it is copied as is rather than
// re-validated by encoding/json.
func packEntries(entries []store.History) []byte {
	n := 2
	for _, e := range entries {
		n += len(e.Kind) + len(e.Data) + 24
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		kind, _ := json.Marshal(e.Kind) // a string always encodes
		b = append(b, `{"kind":`...)
		b = append(b, kind...)
		if len(e.Data) > 0 {
			b = append(b, `,"data":`...)
			b = append(b, e.Data...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func (t *tx) Enqueue(ctx context.Context, items []store.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	n := len(items)
	kinds, keys, leads, statuses := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads := make([][]byte, n)
	attempts := make([]int32, n)
	nextAt, created := make([]time.Time, n), make([]time.Time, n)
	now := time.Now()
	for i, it := range items {
		if it.Kind == "" || it.DedupeKey == "" {
			return fmt.Errorf("enqueue: item %d needs a kind and a dedupe key", i)
		}
		kinds[i], keys[i], leads[i] = it.Kind, it.DedupeKey, it.LeadKey
		statuses[i] = it.Status
		if statuses[i] == "" {
			statuses[i] = store.StatusPending
		}
		if len(it.Payload) > 0 {
			payloads[i] = it.Payload
		}
		attempts[i] = int32(it.Attempts)
		created[i] = firstNonZero(it.CreatedAt, it.NextAttemptAt, now)
		nextAt[i] = firstNonZero(it.NextAttemptAt, created[i])
	}
	if _, err := t.tx.Exec(ctx, qEnqueue, kinds, keys, leads, payloads, statuses, attempts, nextAt, created); err != nil {
		return translate(fmt.Sprintf("enqueue (%d, first %s)", n, keys[0]), err)
	}
	return nil
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func (t *tx) DeadLetter(ctx context.Context, dl store.DeadLetter) error {
	at := firstNonZero(dl.At, time.Now())
	if _, err := t.tx.Exec(ctx, qDeadLetter, at, dl.Subject, dl.EventID, dl.Reason, dl.Payload); err != nil {
		return translate(fmt.Sprintf("dead letter %s", dl.EventID), err)
	}
	return nil
}

func (t *tx) Desk(ctx context.Context, lock bool) (*engine.Desk, error) {
	return loadDesk(ctx, t.tx, lock)
}

// queryer is what loadDesk needs from a transaction.
type queryer interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

func loadDesk(ctx context.Context, q queryer, lock bool) (*engine.Desk, error) {
	b := &pgx.Batch{}
	if lock {
		b.Queue(qDeskLock, deskLockID)
	}
	b.Queue(qDesk)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	if lock {
		if _, err := br.Exec(); err != nil {
			return nil, translate("desk: lock", err)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, translate("desk", err)
	}
	d := &engine.Desk{Reps: map[string]*engine.RepLoad{}}
	for rows.Next() {
		var id string
		var r engine.RepLoad
		var last pgtype.Timestamptz
		var open int32
		if err := rows.Scan(&id, &open, &r.Assigned, &last, &r.Away); err != nil {
			rows.Close()
			return nil, translate("desk: scan", err)
		}
		r.Open = int(open)
		r.LastAt = fromTS(last)
		d.Reps[id] = &r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate("desk", err)
	}
	return d, nil
}

func (t *tx) SaveDesk(ctx context.Context, d *engine.Desk) error {
	if d == nil || len(d.Reps) == 0 {
		return nil
	}
	ids := make([]string, 0, len(d.Reps))
	for id := range d.Reps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	n := len(ids)
	open, assigned := make([]int32, n), make([]int64, n)
	last := make([]pgtype.Timestamptz, n)
	away := make([]bool, n)
	for i, id := range ids {
		r := d.Reps[id]
		if r == nil {
			r = &engine.RepLoad{}
		}
		open[i], assigned[i], last[i], away[i] = int32(r.Open), r.Assigned, ts(r.LastAt), r.Away
	}
	if _, err := t.tx.Exec(ctx, qSaveDesk, ids, open, assigned, last, away); err != nil {
		return translate("save desk", err)
	}
	return nil
}

// normEmail is the suppression list's form of an address.
func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (t *tx) Suppressed(ctx context.Context, emails []string) (map[string]string, error) {
	out := map[string]string{}
	if len(emails) == 0 {
		return out, nil
	}
	norm := make([]string, len(emails))
	for i, e := range emails {
		norm[i] = normEmail(e)
	}
	rows, err := t.tx.Query(ctx, qSuppressed, sortedUnique(norm))
	if err != nil {
		return nil, translate("suppressed", err)
	}
	defer rows.Close()
	reasons := map[string]string{}
	for rows.Next() {
		var e, r string
		if err := rows.Scan(&e, &r); err != nil {
			return nil, translate("suppressed: scan", err)
		}
		reasons[e] = r
	}
	if err := rows.Err(); err != nil {
		return nil, translate("suppressed", err)
	}
	for i, e := range emails {
		if r, ok := reasons[norm[i]]; ok {
			out[e] = r
		}
	}
	return out, nil
}
