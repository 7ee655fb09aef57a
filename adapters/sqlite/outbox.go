package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

type scanner interface{ Scan(dest ...any) error }

func collect[T any](rows *sql.Rows, op string, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

func scanOutbox(r scanner) (store.OutboxItem, error) {
	var it store.OutboxItem
	var payload []byte
	var next, lease, created, updated, handed sql.NullInt64
	var deferredUs int64
	if err := r.Scan(&it.ID, &it.Kind, &it.DedupeKey, &it.LeadKey, &payload, &it.Status, &it.Attempts,
		&next, &lease, &it.LastError, &created, &updated, &handed, &deferredUs); err != nil {
		return it, err
	}
	it.HandedAt, it.Deferred = fromMicros(handed), time.Duration(deferredUs)*time.Microsecond
	if len(payload) > 0 {
		it.Payload = payload
	}
	it.NextAttemptAt, it.LeaseUntil = fromMicros(next), fromMicros(lease)
	it.CreatedAt, it.UpdatedAt = fromMicros(created), fromMicros(updated)
	return it, nil
}

// ClaimOutbox leases due items; each claim counts as an attempt.
func (s *Store) ClaimOutbox(ctx context.Context, p store.ClaimParams) ([]store.OutboxItem, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	kinds := p.Kinds
	if kinds == nil {
		kinds = []string{}
	}
	kj, err := json.Marshal(kinds)
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	var items []store.OutboxItem
	err = s.writeTx(ctx, "claim outbox", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, qClaimOutbox, micros(p.Now), string(kj), micros(p.Now.Add(p.Lease)), p.Limit)
		if err != nil {
			return translate("claim outbox", err)
		}
		items, err = collect(rows, "claim outbox", scanOutbox)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(items, func(a, b store.OutboxItem) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	return items, nil
}

var completeStatuses = map[string]bool{
	store.StatusSent: true, store.StatusRetry: true, store.StatusFailed: true,
	store.StatusUnknown: true, store.StatusSuppressed: true,
}

// CompleteOutbox records outcomes (fenced by OutboxResult.Attempts); an
// id that does not exist is reported as store.ErrNotFound, a stale attempt
// as store.ErrStale (the others are still recorded).
func (s *Store) CompleteOutbox(ctx context.Context, results []store.OutboxResult) error {
	var stale, missing []int64
	err := s.writeTx(ctx, "complete outbox", func(stx *sql.Tx) error {
		notApplied, err := s.completeOutbox(ctx, stx, results)
		if err != nil {
			return err
		}
		for _, id := range notApplied {
			var one int
			switch err := stx.QueryRowContext(ctx, qOutboxExists, id).Scan(&one); {
			case err == sql.ErrNoRows:
				missing = append(missing, id)
			case err != nil:
				return translate(fmt.Sprintf("complete outbox %d: check id", id), err)
			default:
				stale = append(stale, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	if len(stale) > 0 {
		errs = append(errs, fmt.Errorf("complete outbox: items %v: %w", stale, store.ErrStale))
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("complete outbox: items %v: %w", missing, store.ErrNotFound))
	}
	return errors.Join(errs...)
}

// CompleteOutbox records outcomes inside the transaction and returns the
// ids not applied (stale attempt or unknown id).
func (t *tx) CompleteOutbox(ctx context.Context, results []store.OutboxResult) ([]int64, error) {
	return t.s.completeOutbox(ctx, t.tx, results)
}

func (s *Store) completeOutbox(ctx context.Context, stx *sql.Tx, results []store.OutboxResult) ([]int64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	for _, r := range results {
		if !completeStatuses[r.Status] {
			return nil, fmt.Errorf("complete outbox %d: invalid status %q", r.ID, r.Status)
		}
		if r.Status == store.StatusRetry && r.NextAt.IsZero() {
			return nil, fmt.Errorf("complete outbox %d: retry needs NextAt", r.ID)
		}
		if r.Deferred && r.Status != store.StatusRetry {
			return nil, fmt.Errorf("complete outbox %d: deferred needs status retry", r.ID)
		}
	}
	st, err := s.stmt(ctx, stx, qCompleteOutbox)
	if err != nil {
		return nil, translate("complete outbox: prepare", err)
	}
	var notApplied []int64
	now := time.Now()
	for _, r := range results {
		res, err := st.ExecContext(ctx, r.ID, r.Status, r.Error, nullMicros(r.NextAt), micros(firstNonZero(r.At, now)), r.Attempts, r.Deferred)
		if err != nil {
			return nil, translate(fmt.Sprintf("complete outbox %d", r.ID), err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			notApplied = append(notApplied, r.ID)
		}
	}
	return notApplied, nil
}

// HandOff checks and marks items about to leave, in one write
// transaction.
func (s *Store) HandOff(ctx context.Context, items []store.HandOff, now time.Time, lease time.Duration) ([]store.HandOffResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := make([]store.HandOffResult, len(items))
	err := s.writeTx(ctx, "hand off outbox", func(stx *sql.Tx) error {
		for i, it := range items {
			out[i] = store.HandOffResult{}
			reason, err := handOffReason(ctx, stx, it)
			if err != nil {
				return err
			}
			if reason != "" {
				out[i].Suppressed = reason
				continue
			}
			res, err := stx.ExecContext(ctx, qHandOff, it.ID, micros(now), it.Attempts, micros(now.Add(lease)))
			if err != nil {
				return translate(fmt.Sprintf("hand off outbox %d", it.ID), err)
			}
			n, _ := res.RowsAffected()
			out[i].Stale = n == 0
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// handOffReason is why it must not leave: its address's reason on the
// suppression list, or its lead's status when that is not active.
func handOffReason(ctx context.Context, stx *sql.Tx, it store.HandOff) (string, error) {
	if e := normEmail(it.Email); e != "" {
		var reason string
		err := stx.QueryRowContext(ctx, qSuppressed, e).Scan(&reason)
		switch {
		case err == nil && reason == "":
			return "suppressed", nil
		case err == nil:
			return reason, nil
		case !errors.Is(err, sql.ErrNoRows):
			return "", translate("hand off: suppression check", err)
		}
	}
	if it.LeadKey != "" {
		var status string
		err := stx.QueryRowContext(ctx, qLeadStatus, it.LeadKey).Scan(&status)
		switch {
		case err == nil && engine.LeadStatus(status).Suppressed():
			return status, nil
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return "", translate("hand off: lead status", err)
		}
	}
	return "", nil
}

// RecoverLeases settles expired leases in one statement.
func (s *Store) RecoverLeases(ctx context.Context, p store.RecoverParams) ([]store.OutboxItem, error) {
	if p.Limit <= 0 {
		return nil, nil
	}
	kinds := p.UnknownKinds
	if kinds == nil {
		kinds = []string{}
	}
	kj, err := json.Marshal(kinds)
	if err != nil {
		return nil, fmt.Errorf("recover leases: %w", err)
	}
	var items []store.OutboxItem
	err = s.writeTx(ctx, "recover leases", func(stx *sql.Tx) error {
		rows, err := stx.QueryContext(ctx, qRecoverLeases, micros(p.Now), p.Limit, string(kj))
		if err != nil {
			return translate("recover leases", err)
		}
		items, err = collect(rows, "recover leases", scanOutbox)
		return err
	})
	return items, err
}

func (s *Store) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, qExpiredLeases, micros(now), limit)
	if err != nil {
		return nil, translate("expired leases", err)
	}
	return collect(rows, "expired leases", scanOutbox)
}

// Suppress adds an address (lower-cased) to the suppression list. The
// first reason recorded is kept.
func (s *Store) Suppress(ctx context.Context, email, reason string, now time.Time) error {
	e := normEmail(email)
	if e == "" {
		return fmt.Errorf("suppress: empty address")
	}
	if _, err := s.w.ExecContext(ctx, qSuppress, e, reason, micros(now)); err != nil {
		return translate("suppress", err)
	}
	return nil
}

// Lead returns a lead's state, or store.ErrNotFound.
func (s *Store) Lead(ctx context.Context, key string) (*engine.Lead, error) {
	var state []byte
	if err := s.r.QueryRowContext(ctx, qLeadState, key).Scan(&state); err != nil {
		return nil, translate("lead "+key, err)
	}
	l, err := decodeLead(key, state)
	if err != nil {
		return nil, fmt.Errorf("lead: %w", err)
	}
	return l, nil
}

// History returns the latest limit entries of a lead's timeline (all when
// limit <= 0), oldest first.
func (s *Store) History(ctx context.Context, leadKey string, limit int) ([]store.History, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, qHistory, leadKey, limit)
	if err != nil {
		return nil, translate("history "+leadKey, err)
	}
	return collect(rows, "history "+leadKey, func(r scanner) (store.History, error) {
		var h store.History
		var at sql.NullInt64
		var data []byte
		if err := r.Scan(&h.LeadKey, &at, &h.Kind, &h.EventID, &data); err != nil {
			return h, err
		}
		h.At = fromMicros(at)
		if len(data) > 0 {
			h.Data = data
		}
		return h, nil
	})
}

// ListOutbox returns items newest first (default limit 100).
func (s *Store) ListOutbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxItem, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var rows *sql.Rows
	var err error
	switch {
	case f.Kind != "" && f.LeadKey != "":
		rows, err = s.r.QueryContext(ctx, qListOutboxKindLead, limit, f.Kind, f.LeadKey)
	case f.Kind != "":
		rows, err = s.r.QueryContext(ctx, qListOutboxKind, limit, f.Kind)
	case f.LeadKey != "":
		rows, err = s.r.QueryContext(ctx, qListOutboxLead, limit, f.LeadKey)
	default:
		rows, err = s.r.QueryContext(ctx, qListOutbox, limit)
	}
	if err != nil {
		return nil, translate("list outbox", err)
	}
	return collect(rows, "list outbox", scanOutbox)
}

// DeadLetters returns the latest dead letters, newest first (default 100).
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]store.DeadLetter, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, qDeadLetters, limit)
	if err != nil {
		return nil, translate("dead letters", err)
	}
	return collect(rows, "dead letters", func(r scanner) (store.DeadLetter, error) {
		var d store.DeadLetter
		var at sql.NullInt64
		if err := r.Scan(&d.ID, &at, &d.Subject, &d.EventID, &d.Reason, &d.Payload); err != nil {
			return d, err
		}
		d.At = fromMicros(at)
		return d, nil
	})
}

// PublishVersions records versions; existing (sequence, version) pairs
// keep their first source and time.
func (s *Store) PublishVersions(ctx context.Context, vs []store.SequenceVersion) error {
	if len(vs) == 0 {
		return nil
	}
	now := time.Now()
	return s.writeTx(ctx, "publish versions", func(tx *sql.Tx) error {
		for _, v := range vs {
			if _, err := tx.ExecContext(ctx, qPublishVersion, v.Sequence, v.Version, v.Source,
				micros(firstNonZero(v.PublishedAt, now))); err != nil {
				return translate(fmt.Sprintf("publish version %s@%s", v.Sequence, v.Version), err)
			}
		}
		return nil
	})
}

// Versions returns every recorded version, by sequence then publish time.
func (s *Store) Versions(ctx context.Context) ([]store.SequenceVersion, error) {
	rows, err := s.r.QueryContext(ctx, qVersions)
	if err != nil {
		return nil, translate("versions", err)
	}
	return collect(rows, "versions", func(r scanner) (store.SequenceVersion, error) {
		var v store.SequenceVersion
		var at sql.NullInt64
		if err := r.Scan(&v.Sequence, &v.Version, &v.Source, &at); err != nil {
			return v, err
		}
		v.PublishedAt = fromMicros(at)
		return v, nil
	})
}

// SetRepAway marks a rep away or back, creating its desk row if needed.
func (s *Store) SetRepAway(ctx context.Context, rep string, away bool) error {
	if rep == "" {
		return fmt.Errorf("set rep away: empty rep id")
	}
	if _, err := s.w.ExecContext(ctx, qSetRepAway, rep, away); err != nil {
		return translate("set rep away "+rep, err)
	}
	return nil
}

// PruneProcessed forgets processed event ids recorded before before, in
// slices, and returns how many it deleted.
func (s *Store) PruneProcessed(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.w.ExecContext(ctx, qPruneProcessed, micros(before), pruneSlice)
		if err != nil {
			return total, translate("prune processed events", err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < pruneSlice {
			return total, nil
		}
	}
}

const pruneSlice = 10000
