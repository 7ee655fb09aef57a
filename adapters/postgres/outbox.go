package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

func scanOutbox(r scanner) (store.OutboxItem, error) {
	var it store.OutboxItem
	var payload []byte
	var attempts int32
	var next, lease, created, updated, handed pgtype.Timestamptz
	var deferredUs int64
	if err := r.Scan(&it.ID, &it.Kind, &it.DedupeKey, &it.LeadKey, &payload, &it.Status, &attempts,
		&next, &lease, &it.LastError, &created, &updated, &handed, &deferredUs); err != nil {
		return it, err
	}
	it.HandedAt, it.Deferred = fromTS(handed), time.Duration(deferredUs)*time.Microsecond
	it.Payload = payload
	it.Attempts = int(attempts)
	it.NextAttemptAt, it.LeaseUntil = fromTS(next), fromTS(lease)
	it.CreatedAt, it.UpdatedAt = fromTS(created), fromTS(updated)
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
	items, err := queryAfter(ctx, s, "claim outbox", qOrderedScan, scanOutbox,
		qClaimOutbox, p.Now, kinds, p.Limit, p.Now.Add(p.Lease))
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
	notApplied, err := completeOutbox(ctx, s.pool, results)
	if err != nil || len(notApplied) == 0 {
		return err
	}
	rows, err := s.pool.Query(ctx, qOutboxExists, notApplied)
	if err != nil {
		return translate("complete outbox: check ids", err)
	}
	existing, err := collect(rows, "complete outbox: check ids", func(r scanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return err
	}
	var errs []error
	if len(existing) > 0 {
		errs = append(errs, fmt.Errorf("complete outbox: items %v: %w", existing, store.ErrStale))
	}
	if len(existing) < len(notApplied) {
		errs = append(errs, fmt.Errorf("complete outbox: %d of %d items exist: %w", len(results)-len(notApplied)+len(existing), len(results), store.ErrNotFound))
	}
	return errors.Join(errs...)
}

// CompleteOutbox records outcomes inside the transaction and returns the
// ids not applied (stale attempt or unknown id).
func (t *tx) CompleteOutbox(ctx context.Context, results []store.OutboxResult) ([]int64, error) {
	return completeOutbox(ctx, t.tx, results)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func completeOutbox(ctx context.Context, q querier, results []store.OutboxResult) ([]int64, error) {
	if len(results) == 0 {
		return nil, nil
	}
	n := len(results)
	ids := make([]int64, n)
	statuses, errs := make([]string, n), make([]string, n)
	nextAt := make([]pgtype.Timestamptz, n)
	at := make([]time.Time, n)
	attempts := make([]int32, n)
	deferred := make([]bool, n)
	now := time.Now()
	for i, r := range results {
		if !completeStatuses[r.Status] {
			return nil, fmt.Errorf("complete outbox %d: invalid status %q", r.ID, r.Status)
		}
		if r.Status == store.StatusRetry && r.NextAt.IsZero() {
			return nil, fmt.Errorf("complete outbox %d: retry needs NextAt", r.ID)
		}
		if r.Deferred && r.Status != store.StatusRetry {
			return nil, fmt.Errorf("complete outbox %d: deferred needs status retry", r.ID)
		}
		ids[i], statuses[i], errs[i] = r.ID, r.Status, r.Error
		nextAt[i] = ts(r.NextAt)
		at[i] = firstNonZero(r.At, now)
		attempts[i], deferred[i] = int32(r.Attempts), r.Deferred
	}
	rows, err := q.Query(ctx, qCompleteOutbox, ids, statuses, errs, nextAt, at, attempts, deferred)
	if err != nil {
		return nil, translate(fmt.Sprintf("complete outbox (%d, first %d)", n, ids[0]), err)
	}
	done, err := collect(rows, fmt.Sprintf("complete outbox (%d, first %d)", n, ids[0]), func(r scanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil {
		return nil, err
	}
	applied := make(map[int64]bool, len(done))
	for _, id := range done {
		applied[id] = true
	}
	var notApplied []int64
	for _, id := range sortedUniqueInt(ids) {
		if !applied[id] {
			notApplied = append(notApplied, id)
		}
	}
	return notApplied, nil
}

// HandOff checks and marks items about to leave, in one statement.
func (s *Store) HandOff(ctx context.Context, items []store.HandOff, now time.Time, lease time.Duration) ([]store.HandOffResult, error) {
	if len(items) == 0 {
		return nil, nil
	}
	n := len(items)
	ids, attempts := make([]int64, n), make([]int32, n)
	emails, leads := make([]string, n), make([]string, n)
	for i, it := range items {
		ids[i], attempts[i] = it.ID, int32(it.Attempts)
		emails[i], leads[i] = normEmail(it.Email), it.LeadKey
	}
	op := fmt.Sprintf("hand off %d outbox items (first %d)", n, ids[0])
	out, err := queryAfter(ctx, s, op, qPlanOnce, func(r scanner) (store.HandOffResult, error) {
		var res store.HandOffResult
		var handed bool
		err := r.Scan(&res.Suppressed, &handed)
		res.Stale = res.Suppressed == "" && !handed
		return res, err
	}, qHandOff, ids, attempts, emails, leads, string(engine.LeadActive), now, now.Add(lease))
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, fmt.Errorf("%s: %d results", op, len(out))
	}
	return out, nil
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
	rows, err := s.pool.Query(ctx, qRecoverLeases, p.Now, p.Limit, kinds)
	if err != nil {
		return nil, translate("recover leases", err)
	}
	return collect(rows, "recover leases", scanOutbox)
}

// queryAfter runs setup, then query with args, in one round trip and one
// implicit transaction, so the planner settings of setup (set_config with
// is_local) hold for the query alone; it returns the query's rows, scanned.
func queryAfter[T any](ctx context.Context, s *Store, op, setup string, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	b := &pgx.Batch{}
	b.Queue(setup)
	b.Queue(query, args...)
	br := s.pool.SendBatch(ctx, b)
	defer func() { _ = br.Close() }()
	if _, err := br.Exec(); err != nil {
		return nil, translate(op, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, translate(op, err)
	}
	out, err := collect(rows, op, scan)
	if err != nil {
		return nil, err
	}
	// The implicit transaction commits here: an error means nothing of
	// the query took effect.
	if err := br.Close(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

func sortedUniqueInt(in []int64) []int64 {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *Store) ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, qExpiredLeases, now, limit)
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
	if _, err := s.pool.Exec(ctx, qSuppress, e, reason, now); err != nil {
		return translate("suppress", err)
	}
	return nil
}

// Lead returns a lead's state, or store.ErrNotFound.
func (s *Store) Lead(ctx context.Context, key string) (*engine.Lead, error) {
	l, err := scanLead(s.pool.QueryRow(ctx, qLead, key))
	if err != nil {
		return nil, translate("lead "+key, err)
	}
	return l, nil
}

// History returns the latest limit entries of a lead's timeline (all when
// limit <= 0), oldest first.
func (s *Store) History(ctx context.Context, leadKey string, limit int) ([]store.History, error) {
	var lim *int64
	if limit > 0 {
		l := int64(limit)
		lim = &l
	}
	rows, err := s.pool.Query(ctx, qHistory, leadKey, lim)
	if err != nil {
		return nil, translate("history "+leadKey, err)
	}
	return collect(rows, "history "+leadKey, func(r scanner) (store.History, error) {
		var h store.History
		var at pgtype.Timestamptz
		var data []byte
		if err := r.Scan(&h.LeadKey, &at, &h.Kind, &h.EventID, &data); err != nil {
			return h, err
		}
		h.At = fromTS(at)
		h.Data = data
		return h, nil
	})
}

// ListOutbox returns items newest first (default limit 100).
func (s *Store) ListOutbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxItem, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var rows pgx.Rows
	var err error
	switch {
	case f.Kind != "" && f.LeadKey != "":
		rows, err = s.pool.Query(ctx, qListOutboxKindLead, limit, f.Kind, f.LeadKey)
	case f.Kind != "":
		rows, err = s.pool.Query(ctx, qListOutboxKind, limit, f.Kind)
	case f.LeadKey != "":
		rows, err = s.pool.Query(ctx, qListOutboxLead, limit, f.LeadKey)
	default:
		rows, err = s.pool.Query(ctx, qListOutbox, limit)
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
	rows, err := s.pool.Query(ctx, qDeadLetters, limit)
	if err != nil {
		return nil, translate("dead letters", err)
	}
	return collect(rows, "dead letters", func(r scanner) (store.DeadLetter, error) {
		var d store.DeadLetter
		var at pgtype.Timestamptz
		if err := r.Scan(&d.ID, &at, &d.Subject, &d.EventID, &d.Reason, &d.Payload); err != nil {
			return d, err
		}
		d.At = fromTS(at)
		return d, nil
	})
}

// PublishVersions records versions; existing (sequence, version) pairs
// keep their first source and time.
func (s *Store) PublishVersions(ctx context.Context, vs []store.SequenceVersion) error {
	if len(vs) == 0 {
		return nil
	}
	n := len(vs)
	seqs, vers := make([]string, n), make([]string, n)
	srcs := make([][]byte, n)
	at := make([]time.Time, n)
	now := time.Now()
	for i, v := range vs {
		seqs[i], vers[i], srcs[i], at[i] = v.Sequence, v.Version, v.Source, firstNonZero(v.PublishedAt, now)
	}
	if _, err := s.pool.Exec(ctx, qPublishVersions, seqs, vers, srcs, at); err != nil {
		return translate(fmt.Sprintf("publish versions (first %s@%s)", seqs[0], vers[0]), err)
	}
	return nil
}

// Versions returns every recorded version, by sequence then publish time.
func (s *Store) Versions(ctx context.Context) ([]store.SequenceVersion, error) {
	rows, err := s.pool.Query(ctx, qVersions)
	if err != nil {
		return nil, translate("versions", err)
	}
	return collect(rows, "versions", func(r scanner) (store.SequenceVersion, error) {
		var v store.SequenceVersion
		var at pgtype.Timestamptz
		if err := r.Scan(&v.Sequence, &v.Version, &v.Source, &at); err != nil {
			return v, err
		}
		v.PublishedAt = fromTS(at)
		return v, nil
	})
}

// SetRepAway marks a rep away or back, creating its desk row if needed. It
// takes the desk lock, so it never races a routing transaction.
func (s *Store) SetRepAway(ctx context.Context, rep string, away bool) error {
	if rep == "" {
		return fmt.Errorf("set rep away: empty rep id")
	}
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate("set rep away "+rep, err)
	}
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	b := &pgx.Batch{}
	b.Queue(qDeskLock, deskLockID)
	b.Queue(qSetRepAway, rep, away)
	if err := ptx.SendBatch(ctx, b).Close(); err != nil {
		return translate("set rep away "+rep, err)
	}
	if err := ptx.Commit(ctx); err != nil {
		return translate("set rep away "+rep+": commit", err)
	}
	return nil
}

// PruneProcessed forgets processed event ids recorded before before, in
// slices of pruneSlice rows, and returns how many it deleted. Call it
// periodically with a horizon well beyond the JetStream duplicate window
// and the longest redelivery delay: an id pruned too early lets a
// redelivered event apply twice.
func (s *Store) PruneProcessed(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, qPruneProcessed, before, pruneSlice)
		if err != nil {
			return total, translate("prune processed events", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneSlice {
			return total, nil
		}
	}
}

const pruneSlice = 10000
