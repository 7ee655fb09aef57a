package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// tx is store.Tx on the writer connection.
type tx struct {
	tx *sql.Tx
	s  *Store
	// mirror holds the enrollment rows of the leads loaded in this
	// transaction, so SaveLeads writes only the rows that changed.
	mirror store.Mirror
}

// Times are stored as microseconds since the epoch; NULL is the zero time.

func micros(t time.Time) int64 { return t.UnixMicro() }

func nullMicros(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

func firstNonZero(ts ...time.Time) time.Time {
	for _, t := range ts {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func decodeLead(key string, state []byte) (*engine.Lead, error) {
	l, err := store.DecodeLead(state)
	if err != nil {
		return nil, fmt.Errorf("decode lead %s: %w", key, err)
	}
	return l, nil
}

func sortedUnique(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// nullBytes stores empty payloads as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (t *tx) LockLeads(ctx context.Context, keys []string, now time.Time) (map[string]*engine.Lead, error) {
	out := make(map[string]*engine.Lead, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ins, err := t.s.stmt(ctx, t.tx, qLockInsert)
	if err != nil {
		return nil, translate("lock leads: prepare", err)
	}
	get, err := t.s.stmt(ctx, t.tx, qLeadState)
	if err != nil {
		return nil, translate("lock leads: prepare", err)
	}
	// The write transaction already excludes every other writer: the rows
	// are "locked" by holding the database's write lock.
	for _, k := range sortedUnique(keys) {
		var state []byte
		err := get.QueryRowContext(ctx, k).Scan(&state)
		switch {
		case err == nil:
		case err == sql.ErrNoRows:
			nl := engine.NewLead(k, now)
			state, err = store.EncodeLead(nl)
			if err != nil {
				return nil, fmt.Errorf("lock leads: encode new lead %s: %w", k, err)
			}
			if _, err := ins.ExecContext(ctx, k, state, micros(now), micros(now)); err != nil {
				return nil, translate("lock leads: create "+k, err)
			}
		default:
			return nil, translate("lock leads: read "+k, err)
		}
		l, err := decodeLead(k, state)
		if err != nil {
			return nil, fmt.Errorf("lock leads: %w", err)
		}
		out[k] = l
		t.mirror.Remember(l)
	}
	return out, nil
}

func (t *tx) ClaimDueLeads(ctx context.Context, now time.Time, limit int) ([]*engine.Lead, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := t.tx.QueryContext(ctx, qClaimDueLeads, micros(now), limit)
	if err != nil {
		return nil, translate("claim due leads", err)
	}
	defer rows.Close()
	var out []*engine.Lead
	for rows.Next() {
		var key string
		var state []byte
		if err := rows.Scan(&key, &state); err != nil {
			return nil, translate("claim due leads: scan", err)
		}
		l, err := decodeLead(key, state)
		if err != nil {
			return nil, fmt.Errorf("claim due leads: %w", err)
		}
		out = append(out, l)
		t.mirror.Remember(l)
	}
	if err := rows.Err(); err != nil {
		return nil, translate("claim due leads", err)
	}
	return out, nil
}

func (t *tx) MarkEvents(ctx context.Context, ids []string, now time.Time) (map[string]bool, error) {
	fresh := make(map[string]bool, len(ids))
	if len(ids) == 0 {
		return fresh, nil
	}
	st, err := t.s.stmt(ctx, t.tx, qMarkEvent)
	if err != nil {
		return nil, translate("mark events: prepare", err)
	}
	for _, id := range sortedUnique(ids) {
		res, err := st.ExecContext(ctx, id, micros(now))
		if err != nil {
			return nil, translate("mark event "+id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			fresh[id] = true
		}
	}
	return fresh, nil
}

func (t *tx) SaveLeads(ctx context.Context, leads []*engine.Lead) error {
	if len(leads) == 0 {
		return nil
	}
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
	save, err := t.s.stmt(ctx, t.tx, qSaveLead)
	if err != nil {
		return translate("save leads: prepare", err)
	}
	now := time.Now()
	for _, k := range keys {
		l := byKey[k]
		state, err := store.EncodeLead(l)
		if err != nil {
			return fmt.Errorf("save lead %s: encode: %w", k, err)
		}
		res, err := save.ExecContext(ctx, l.Email, string(l.Status), l.Owner, l.Score.Value,
			nullMicros(l.NextRunAt), state, micros(firstNonZero(l.UpdatedAt, now)), k)
		if err != nil {
			return translate("save lead "+k, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("save lead %s (lock or create it first): %w", k, store.ErrNotFound)
		}
		if err := t.saveEnrollments(ctx, l); err != nil {
			return err
		}
		t.mirror.Remember(l)
	}
	return nil
}

func (t *tx) saveEnrollments(ctx context.Context, l *engine.Lead) error {
	changed, deleted := t.mirror.Diff(l)
	var up *sql.Stmt
	for _, e := range changed {
		if up == nil {
			var err error
			if up, err = t.s.stmt(ctx, t.tx, qUpsertEnrollment); err != nil {
				return translate("save enrollments: prepare", err)
			}
		}
		r := store.RowOf(e)
		if _, err := up.ExecContext(ctx, l.Key, e.ID, r.Sequence, r.Version, r.Step, r.Status,
			nullMicros(r.NextRunAt), micros(r.StartedAt), nullMicros(r.EndedAt), r.Reason); err != nil {
			return translate(fmt.Sprintf("save enrollment %s of %s", e.ID, l.Key), err)
		}
	}
	for _, id := range deleted {
		if _, err := t.tx.ExecContext(ctx, qDeleteEnrollment, l.Key, id); err != nil {
			return translate(fmt.Sprintf("delete enrollment %s of %s", id, l.Key), err)
		}
	}
	return nil
}

func (t *tx) AppendHistory(ctx context.Context, entries []store.History) error {
	if len(entries) == 0 {
		return nil
	}
	st, err := t.s.stmt(ctx, t.tx, qAppendHistory)
	if err != nil {
		return translate("append history: prepare", err)
	}
	for _, h := range entries {
		if _, err := st.ExecContext(ctx, h.LeadKey, micros(h.At), h.Kind, h.EventID, nullBytes(h.Data)); err != nil {
			return translate("append history "+h.LeadKey, err)
		}
	}
	return nil
}

func (t *tx) Enqueue(ctx context.Context, items []store.OutboxItem) error {
	if len(items) == 0 {
		return nil
	}
	st, err := t.s.stmt(ctx, t.tx, qEnqueue)
	if err != nil {
		return translate("enqueue: prepare", err)
	}
	now := time.Now()
	for i, it := range items {
		if it.Kind == "" || it.DedupeKey == "" {
			return fmt.Errorf("enqueue: item %d needs a kind and a dedupe key", i)
		}
		if len(it.Payload) > 0 && !json.Valid(it.Payload) {
			return fmt.Errorf("enqueue %s: payload is not JSON", it.DedupeKey)
		}
		status := it.Status
		if status == "" {
			status = store.StatusPending
		}
		created := firstNonZero(it.CreatedAt, it.NextAttemptAt, now)
		next := firstNonZero(it.NextAttemptAt, created)
		if _, err := st.ExecContext(ctx, it.Kind, it.DedupeKey, it.LeadKey, nullBytes(it.Payload), status,
			it.Attempts, micros(next), micros(created), micros(created)); err != nil {
			return translate("enqueue "+it.DedupeKey, err)
		}
	}
	return nil
}

func (t *tx) DeadLetter(ctx context.Context, dl store.DeadLetter) error {
	at := firstNonZero(dl.At, time.Now())
	if _, err := t.tx.ExecContext(ctx, qDeadLetter, micros(at), dl.Subject, dl.EventID, dl.Reason, nullBytes(dl.Payload)); err != nil {
		return translate("dead letter "+dl.EventID, err)
	}
	return nil
}

// Desk loads the routing state. lock needs nothing more: this transaction
// already holds the database's only write lock.
func (t *tx) Desk(ctx context.Context, lock bool) (*engine.Desk, error) {
	rows, err := t.tx.QueryContext(ctx, qDesk)
	if err != nil {
		return nil, translate("desk", err)
	}
	defer rows.Close()
	d := &engine.Desk{Reps: map[string]*engine.RepLoad{}}
	for rows.Next() {
		var id string
		var r engine.RepLoad
		var last sql.NullInt64
		if err := rows.Scan(&id, &r.Open, &r.Assigned, &last, &r.Away); err != nil {
			return nil, translate("desk: scan", err)
		}
		r.LastAt = fromMicros(last)
		d.Reps[id] = &r
	}
	if err := rows.Err(); err != nil {
		return nil, translate("desk", err)
	}
	return d, nil
}

func (t *tx) SaveDesk(ctx context.Context, d *engine.Desk) error {
	if d == nil {
		return nil
	}
	ids := make([]string, 0, len(d.Reps))
	for id := range d.Reps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := d.Reps[id]
		if r == nil {
			r = &engine.RepLoad{}
		}
		if _, err := t.tx.ExecContext(ctx, qSaveDesk, id, r.Open, r.Assigned, nullMicros(r.LastAt), r.Away); err != nil {
			return translate("save desk "+id, err)
		}
	}
	return nil
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (t *tx) Suppressed(ctx context.Context, emails []string) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range emails {
		var reason string
		err := t.tx.QueryRowContext(ctx, qSuppressed, normEmail(e)).Scan(&reason)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return nil, translate("suppressed", err)
		default:
			out[e] = reason
		}
	}
	return out, nil
}
