// Package storetest is the conformance suite every store.Store must pass.
// An adapter's test calls
//
//	storetest.Run(t, func(t *testing.T) store.Store { … })
//
// where the function returns a store on a fresh, empty (unmigrated)
// database that is removed when t ends. The suite migrates it itself, so
// Migrate and CheckSchema are part of what it checks.
//
// Stores that serialize all writers (SQLite) pass SingleWriter(): the tests
// that hold two write transactions open at once are replaced by their
// sequential equivalent.
//
// Stores that also implement Inspector let the suite check the indexed
// columns and the enrollments mirror, which the contract does not expose.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// Option adjusts the suite to a store's capabilities.
type Option func(*config)

type config struct{ singleWriter bool }

// SingleWriter declares that the store runs one write transaction at a
// time: concurrent claimers cannot hold rows side by side, they queue.
func SingleWriter() Option { return func(c *config) { c.singleWriter = true } }

// LeadRow is the indexed columns of one lead row.
type LeadRow struct {
	Email, Status, Owner string
	Score                float64
	NextRunAt            time.Time // zero when NULL
}

// EnrollmentRow is one row of the enrollments mirror.
type EnrollmentRow struct {
	ID, Sequence, Version, Step, Status, Reason string
	NextRunAt, StartedAt, EndedAt               time.Time // zero when NULL
}

// Inspector reads what the contract does not expose, for the suite only.
type Inspector interface {
	InspectLead(ctx context.Context, key string) (LeadRow, error)
	// InspectEnrollments returns a lead's mirrored enrollments ordered by id.
	InspectEnrollments(ctx context.Context, leadKey string) ([]EnrollmentRow, error)
}

// Now is the suite's clock: a fixed instant with microsecond precision,
// which every store must round-trip exactly.
var Now = time.Date(2026, 3, 4, 9, 30, 15, 123456000, time.UTC)

type bundle struct {
	s   store.Store
	ctx context.Context
	now time.Time
}

// Run runs the conformance suite.
func Run(t *testing.T, newStore func(t *testing.T) store.Store, opts ...Option) {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	setup := func(t *testing.T) *bundle {
		t.Helper()
		s := newStore(t)
		require.NoError(t, s.Migrate(t.Context()), "migrate")
		return &bundle{s: s, ctx: t.Context(), now: Now}
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b *bundle)
	}{
		{"InTxRollsBack", testInTxRollsBack},
		{"InTxPanic", testInTxPanic},
		{"LeadNotFound", testLeadNotFound},
		{"LockLeadsCreates", testLockLeadsCreates},
		{"LockLeadsSerializes", testLockLeadsSerializes},
		{"SaveLeadsRoundTrip", testSaveLeadsRoundTrip},
		{"SaveLeadsColumnsAndMirror", testSaveLeadsColumnsAndMirror},
		{"SaveLeadsUnknown", testSaveLeadsUnknown},
		{"ClaimDueLeads", testClaimDueLeads},
		{"MarkEvents", testMarkEvents},
		{"MarkEventsConcurrent", testMarkEventsConcurrent},
		{"PruneProcessed", testPruneProcessed},
		{"History", testHistory},
		{"HistoryOfOneEvent", testHistoryOfOneEvent},
		{"EnqueueDedupe", testEnqueueDedupe},
		{"ClaimOutbox", testClaimOutbox},
		{"CompleteOutbox", testCompleteOutbox},
		{"ExpiredLeases", testExpiredLeases},
		{"CompleteOutboxFenced", testCompleteOutboxFenced},
		{"CompleteOutboxDeferred", testCompleteOutboxDeferred},
		{"HandOff", testHandOff},
		{"HandOffChecks", testHandOffChecks},
		{"RecoverLeases", testRecoverLeases},
		{"ListOutbox", testListOutbox},
		{"Suppress", testSuppress},
		{"Desk", testDesk},
		{"DeskLockSerializes", testDeskLockSerializes},
		{"DeadLetters", testDeadLetters},
		{"RecentLeads", testRecentLeads},
		{"PublishVersions", testPublishVersions},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, setup(t))
		})
	}
	t.Run("Schema", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		err := s.CheckSchema(ctx)
		require.ErrorIs(t, err, store.ErrSchemaBehind, "empty database")
		require.NoError(t, s.Migrate(ctx))
		require.NoError(t, s.CheckSchema(ctx))
		require.NoError(t, s.Migrate(ctx), "second migrate is a no-op")
		require.NoError(t, s.CheckSchema(ctx))
	})
	t.Run("ClaimDueLeadsConcurrent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if cfg.singleWriter {
			testClaimDueLeadsSequential(t, b)
			return
		}
		testClaimDueLeadsConcurrent(t, b)
	})
	t.Run("ClaimOutboxConcurrent", func(t *testing.T) {
		t.Parallel()
		testClaimOutboxConcurrent(t, setup(t))
	})
}

// inTx runs fn in a transaction and requires it to commit.
func inTx(t *testing.T, b *bundle, fn func(tx store.Tx)) {
	t.Helper()
	require.NoError(t, b.s.InTx(b.ctx, func(_ context.Context, tx store.Tx) error {
		fn(tx)
		return nil
	}))
}

// inTxRetry runs fn in a transaction, retrying transient failures.
func inTxRetry(ctx context.Context, s store.Store, fn func(ctx context.Context, tx store.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.InTx(ctx, fn)
		if err == nil || !errors.Is(err, store.ErrTransient) || attempt >= 20 {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

// seedLeads creates and saves leads in one transaction.
func seedLeads(t *testing.T, b *bundle, leads ...*engine.Lead) {
	t.Helper()
	keys := make([]string, len(leads))
	for i, l := range leads {
		keys[i] = l.Key
	}
	require.NoError(t, b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.LockLeads(ctx, keys, b.now); err != nil {
			return err
		}
		return tx.SaveLeads(ctx, leads)
	}))
}

func docJSON(t *testing.T, l *engine.Lead) string {
	t.Helper()
	data, err := json.Marshal(l)
	require.NoError(t, err)
	return string(data)
}

// fullLead is a lead with every field set.
func fullLead(key string, now time.Time) *engine.Lead {
	return &engine.Lead{
		Key:    key,
		Email:  key + "@example.com",
		Traits: map[string]any{"name": "Ada", "plan": "trial", "seats": 12.0, "tags": []any{"a", "b"}},
		Status: engine.LeadActive,
		Owner:  "rep-1",
		Score:  engine.Score{Value: 42.5, At: now},
		Armed:  false, Crossings: 2,
		Escalation: &engine.Escalation{
			ID: "esc-" + key + "-2", Rep: "rep-1", At: now, Attempt: 2, Tried: []string{"rep-0"},
			AckDueAt: now.Add(time.Hour),
		},
		Enrollments: []*engine.Enrollment{
			{ID: "trial/1", Sequence: "trial", Version: "v1", Step: "tips", Status: engine.EnrollmentActive,
				NextRunAt: now.Add(2 * time.Hour), StartedAt: now.Add(-24 * time.Hour), Sent: []string{"welcome"},
				Opened: []string{"welcome"}, Clicked: []string{"welcome"}},
			{ID: "onboard/1", Sequence: "onboard", Version: "v7", Status: engine.EnrollmentCompleted,
				StartedAt: now.Add(-48 * time.Hour), EndedAt: now.Add(-time.Hour), Reason: "completed"},
			{ID: "winback/1", Sequence: "winback", Version: "v2", Step: "wait", Status: engine.EnrollmentActive,
				WaitingFor: engine.EventEmailClicked, NextRunAt: now.Add(72 * time.Hour), StartedAt: now},
		},
		RuleUse:   []engine.RuleUse{{Rule: "page-views", PeriodStart: now.Add(-time.Hour), Points: 3}},
		Sends:     []time.Time{now.Add(-time.Hour), now},
		CreatedAt: now.Add(-72 * time.Hour),
		UpdatedAt: now,
		NextRunAt: now.Add(time.Hour),
	}
}

func testInTxRollsBack(t *testing.T, b *bundle) {
	boom := errors.New("boom")
	err := b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.LockLeads(ctx, []string{"rolled"}, b.now); err != nil {
			return err
		}
		if _, err := tx.MarkEvents(ctx, []string{"ev-rolled"}, b.now); err != nil {
			return err
		}
		return fmt.Errorf("apply: %w", boom)
	})
	require.ErrorIs(t, err, boom, "fn's error comes back")
	_, err = b.s.Lead(b.ctx, "rolled")
	require.ErrorIs(t, err, store.ErrNotFound, "lead creation rolled back")
	inTx(t, b, func(tx store.Tx) {
		fresh, err := tx.MarkEvents(b.ctx, []string{"ev-rolled"}, b.now)
		require.NoError(t, err)
		require.True(t, fresh["ev-rolled"], "event mark rolled back")
	})
}

// testInTxPanic: a panic inside fn rolls the transaction back and
// releases its locks (and, for a single-writer store, the writer).
func testInTxPanic(t *testing.T, b *bundle) {
	require.Panics(t, func() {
		_ = b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
			if _, err := tx.LockLeads(ctx, []string{"panicky"}, b.now); err != nil {
				return err
			}
			panic("engine bug")
		})
	})
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	_, err := b.s.Lead(ctx, "panicky")
	require.ErrorIs(t, err, store.ErrNotFound, "rolled back")
	require.NoError(t, b.s.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		_, err := tx.LockLeads(ctx, []string{"panicky"}, b.now)
		return err
	}), "lock released")
}

func testLeadNotFound(t *testing.T, b *bundle) {
	_, err := b.s.Lead(b.ctx, "nobody")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testLockLeadsCreates(t *testing.T, b *bundle) {
	seedLeads(t, b, fullLead("existing", b.now))
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.LockLeads(b.ctx, nil, b.now)
		require.NoError(t, err)
		require.Empty(t, got)

		got, err = tx.LockLeads(b.ctx, []string{"new-b", "existing", "new-a", "new-b"}, b.now.Add(time.Minute))
		require.NoError(t, err)
		require.Len(t, got, 3)
		for _, k := range []string{"new-a", "new-b"} {
			require.JSONEq(t, docJSON(t, engine.NewLead(k, b.now.Add(time.Minute))), docJSON(t, got[k]), k)
		}
		require.JSONEq(t, docJSON(t, fullLead("existing", b.now)), docJSON(t, got["existing"]))

		// Locking again in the same transaction returns the same documents,
		// even with a later now and a sub-microsecond creation time.
		odd := b.now.Add(time.Minute + 789*time.Nanosecond)
		got, err = tx.LockLeads(b.ctx, []string{"new-c"}, odd)
		require.NoError(t, err)
		require.JSONEq(t, docJSON(t, engine.NewLead("new-c", odd)), docJSON(t, got["new-c"]))
		got, err = tx.LockLeads(b.ctx, []string{"new-a", "new-c"}, b.now.Add(time.Hour))
		require.NoError(t, err)
		require.JSONEq(t, docJSON(t, engine.NewLead("new-a", b.now.Add(time.Minute))), docJSON(t, got["new-a"]))
		require.JSONEq(t, docJSON(t, engine.NewLead("new-c", odd)), docJSON(t, got["new-c"]))

		// After SaveLeads the saved document comes back.
		got["new-c"].Email = "c@example.com"
		require.NoError(t, tx.SaveLeads(b.ctx, []*engine.Lead{got["new-c"]}))
		got, err = tx.LockLeads(b.ctx, []string{"new-c"}, b.now.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, "c@example.com", got["new-c"].Email)
	})
	// Created leads exist after commit even without SaveLeads.
	l, err := b.s.Lead(b.ctx, "new-a")
	require.NoError(t, err)
	require.Equal(t, "new-a", l.Key)
	require.Equal(t, engine.LeadActive, l.Status)
	require.True(t, l.CreatedAt.Equal(b.now.Add(time.Minute)))
}

// testLockLeadsSerializes: concurrent read-modify-write transactions on
// the same leads never lose an update.
func testLockLeadsSerializes(t *testing.T, b *bundle) {
	const workers, rounds = 6, 5
	keys := []string{"shared-1", "shared-2", "shared-3"}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				// Alternate key order: the store must lock in a stable order.
				ks := slices.Clone(keys)
				if (w+r)%2 == 1 {
					slices.Reverse(ks)
				}
				err := inTxRetry(b.ctx, b.s, func(ctx context.Context, tx store.Tx) error {
					got, err := tx.LockLeads(ctx, ks, b.now)
					if err != nil {
						return err
					}
					for _, l := range got {
						l.Score.Value++
					}
					return tx.SaveLeads(ctx, []*engine.Lead{got[keys[0]], got[keys[1]], got[keys[2]]})
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, k := range keys {
		l, err := b.s.Lead(b.ctx, k)
		require.NoError(t, err)
		require.Equal(t, float64(workers*rounds), l.Score.Value, k)
	}
}

func testSaveLeadsRoundTrip(t *testing.T, b *bundle) {
	tests := []struct {
		name string
		lead *engine.Lead
	}{
		{"full", fullLead("full", b.now)},
		{"minimal", engine.NewLead("minimal", b.now)},
		{"unsubscribed", func() *engine.Lead {
			l := engine.NewLead("unsub", b.now)
			l.Status, l.Email = engine.LeadUnsubscribed, "u@example.com"
			l.Traits = map[string]any{"nested": map[string]any{"deep": []any{1.0, "x", true, nil}}, "ünïcode": "✓ \"quoted\" <b>"}
			return l
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seedLeads(t, b, tc.lead)
			got, err := b.s.Lead(b.ctx, tc.lead.Key)
			require.NoError(t, err)
			require.JSONEq(t, docJSON(t, tc.lead), docJSON(t, got))
			inTx(t, b, func(tx store.Tx) {
				locked, err := tx.LockLeads(b.ctx, []string{tc.lead.Key}, b.now.Add(time.Hour))
				require.NoError(t, err)
				require.JSONEq(t, docJSON(t, tc.lead), docJSON(t, locked[tc.lead.Key]), "LockLeads returns the saved document")
			})
		})
	}
}

func testSaveLeadsColumnsAndMirror(t *testing.T, b *bundle) {
	in, ok := b.s.(Inspector)
	if !ok {
		t.Skip("store does not implement storetest.Inspector")
	}
	l := fullLead("mirror", b.now)
	seedLeads(t, b, l)

	row, err := in.InspectLead(b.ctx, "mirror")
	require.NoError(t, err)
	require.Equal(t, l.Email, row.Email)
	require.Equal(t, string(l.Status), row.Status)
	require.Equal(t, l.Owner, row.Owner)
	require.Equal(t, l.Score.Value, row.Score)
	require.True(t, l.NextRunAt.Equal(row.NextRunAt), "next_run_at %v", row.NextRunAt)

	requireMirror := func(want []*engine.Enrollment) {
		t.Helper()
		rows, err := in.InspectEnrollments(b.ctx, "mirror")
		require.NoError(t, err)
		want = slices.Clone(want)
		sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
		require.Len(t, rows, len(want))
		for i, e := range want {
			r := rows[i]
			require.Equal(t, EnrollmentRow{ID: e.ID, Sequence: e.Sequence, Version: e.Version, Step: e.Step,
				Status: string(e.Status), Reason: e.Reason}, EnrollmentRow{ID: r.ID, Sequence: r.Sequence,
				Version: r.Version, Step: r.Step, Status: r.Status, Reason: r.Reason}, e.ID)
			require.True(t, e.NextRunAt.Equal(r.NextRunAt), "%s next_run_at %v", e.ID, r.NextRunAt)
			require.True(t, e.StartedAt.Equal(r.StartedAt), "%s started_at %v", e.ID, r.StartedAt)
			require.True(t, e.EndedAt.Equal(r.EndedAt), "%s ended_at %v", e.ID, r.EndedAt)
		}
	}
	requireMirror(l.Enrollments)

	// Change one enrollment, drop one, add one; clear the timer.
	var saved *engine.Lead
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.LockLeads(b.ctx, []string{"mirror"}, b.now)
		require.NoError(t, err)
		saved = got["mirror"]
		e := saved.Enrollments[0]
		e.Step, e.Status, e.NextRunAt, e.EndedAt, e.Reason = "", engine.EnrollmentExited, time.Time{}, b.now, "goal: demo.booked"
		saved.Enrollments = append(saved.Enrollments[:1], saved.Enrollments[2],
			&engine.Enrollment{ID: "late/1", Sequence: "late", Version: "v1", Step: "s1",
				Status: engine.EnrollmentPaused, StartedAt: b.now})
		saved.NextRunAt = time.Time{}
		saved.Status, saved.Owner, saved.Email, saved.Score.Value = engine.LeadBounced, "", "new@example.com", -3
		require.NoError(t, tx.SaveLeads(b.ctx, []*engine.Lead{saved}))
	})
	requireMirror(saved.Enrollments)
	row, err = in.InspectLead(b.ctx, "mirror")
	require.NoError(t, err)
	require.Equal(t, LeadRow{Email: "new@example.com", Status: string(engine.LeadBounced), Score: -3}, row)
}

func testSaveLeadsUnknown(t *testing.T, b *bundle) {
	err := b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.SaveLeads(ctx, []*engine.Lead{engine.NewLead("ghost", b.now)})
	})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func dueLead(key string, now time.Time, next time.Duration) *engine.Lead {
	l := engine.NewLead(key, now)
	if next != 0 {
		l.NextRunAt = now.Add(next)
	}
	return l
}

func keysOf(ls []*engine.Lead) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Key
	}
	return out
}

func testClaimDueLeads(t *testing.T, b *bundle) {
	exact := engine.NewLead("exact", b.now)
	exact.NextRunAt = b.now // due at exactly now
	seedLeads(t, b,
		dueLead("due-3m", b.now, -3*time.Minute),
		dueLead("due-1m", b.now, -time.Minute),
		dueLead("no-timer", b.now, 0),
		dueLead("due-2m", b.now, -2*time.Minute),
		dueLead("later", b.now, time.Minute),
		exact,
	)
	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []string
	}{
		{"all due oldest first", b.now, 10, []string{"due-3m", "due-2m", "due-1m", "exact"}},
		{"limit", b.now, 2, []string{"due-3m", "due-2m"}},
		{"earlier now", b.now.Add(-90 * time.Second), 10, []string{"due-3m", "due-2m"}},
		{"later now", b.now.Add(time.Hour), 10, []string{"due-3m", "due-2m", "due-1m", "exact", "later"}},
		{"nothing due", b.now.Add(-time.Hour), 10, nil},
		{"zero limit", b.now, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inTx(t, b, func(tx store.Tx) {
				got, err := tx.ClaimDueLeads(b.ctx, tc.now, tc.limit)
				require.NoError(t, err)
				require.Equal(t, tc.want, nilIfEmpty(keysOf(got)))
			})
		})
	}
	// A claimed lead saved with its timer cleared is no longer due.
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.ClaimDueLeads(b.ctx, b.now, 1)
		require.NoError(t, err)
		require.Len(t, got, 1)
		got[0].NextRunAt = time.Time{}
		require.NoError(t, tx.SaveLeads(b.ctx, got))
	})
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.ClaimDueLeads(b.ctx, b.now, 10)
		require.NoError(t, err)
		require.Equal(t, []string{"due-2m", "due-1m", "exact"}, keysOf(got))
	})
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func manyDue(b *bundle, n int) []*engine.Lead {
	ls := make([]*engine.Lead, n)
	for i := range ls {
		ls[i] = dueLead(fmt.Sprintf("many-%03d", i), b.now, -time.Duration(n-i)*time.Second)
	}
	return ls
}

// testClaimDueLeadsConcurrent: while one transaction holds claimed leads,
// another claims only the others (SKIP LOCKED), and neither waits.
func testClaimDueLeadsConcurrent(t *testing.T, b *bundle) {
	seedLeads(t, b, manyDue(b, 20)...)
	claimedA := make(chan []string, 1)
	releaseA := make(chan struct{})
	errA := make(chan error, 1)
	go func() {
		errA <- b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
			got, err := tx.ClaimDueLeads(ctx, b.now, 10)
			if err != nil {
				close(claimedA)
				return err
			}
			claimedA <- keysOf(got)
			<-releaseA
			return nil
		})
	}()
	a, ok := <-claimedA
	if !ok {
		require.NoError(t, <-errA)
	}
	var bKeys []string
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.ClaimDueLeads(b.ctx, b.now, 20)
		require.NoError(t, err)
		bKeys = keysOf(got)
	})
	close(releaseA)
	require.NoError(t, <-errA)
	require.Len(t, a, 10)
	require.Len(t, bKeys, 10)
	for _, k := range bKeys {
		require.NotContains(t, a, k, "lead claimed by both transactions")
	}
	require.Equal(t, keysOf(manyDue(b, 20)[:10]), a, "first claimer got the oldest")

	// Leads an ingest transaction holds (LockLeads) are skipped too.
	locked := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.LockLeads(ctx, a[:3], b.now)
			close(locked)
			if err == nil {
				<-release
			}
			return err
		})
	}()
	<-locked
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.ClaimDueLeads(b.ctx, b.now, 5)
		require.NoError(t, err)
		require.Equal(t, a[3:8], keysOf(got), "held leads skipped, the next oldest claimed")
	})
	close(release)
	require.NoError(t, <-done)
}

// testClaimDueLeadsSequential is the single-writer equivalent: claimers
// queue, and a claim that advanced its leads' timers hides them from the
// next claimer.
func testClaimDueLeadsSequential(t *testing.T, b *bundle) {
	seedLeads(t, b, manyDue(b, 20)...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			errs <- inTxRetry(b.ctx, b.s, func(ctx context.Context, tx store.Tx) error {
				got, err := tx.ClaimDueLeads(ctx, b.now, 5)
				if err != nil {
					return err
				}
				for _, l := range got {
					l.NextRunAt = time.Time{}
				}
				if err := tx.SaveLeads(ctx, got); err != nil {
					return err
				}
				mu.Lock()
				for _, l := range got {
					seen[l.Key]++
				}
				mu.Unlock()
				return nil
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, 20)
	for k, n := range seen {
		require.Equal(t, 1, n, k)
	}
}

func testMarkEvents(t *testing.T, b *bundle) {
	steps := []struct {
		ids  []string
		want map[string]bool
	}{
		{nil, map[string]bool{}},
		{[]string{"e1", "e2", "e2"}, map[string]bool{"e1": true, "e2": true}},
		{[]string{"e2", "e3"}, map[string]bool{"e3": true}},
		{[]string{"e1", "e2", "e3"}, map[string]bool{}},
	}
	for i, st := range steps {
		inTx(t, b, func(tx store.Tx) {
			got, err := tx.MarkEvents(b.ctx, st.ids, b.now)
			require.NoError(t, err)
			require.Equal(t, st.want, got, "step %d", i)
		})
	}
}

// testMarkEventsConcurrent: an event id being recorded by an open
// transaction is fresh for exactly one of two concurrent transactions:
// the second waits, and sees the id as fresh only if the first rolled back.
func testMarkEventsConcurrent(t *testing.T, b *bundle) {
	for _, commitFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("first commits=%v", commitFirst), func(t *testing.T) {
			id := fmt.Sprintf("race-%v", commitFirst)
			marked := make(chan struct{})
			release := make(chan struct{})
			firstDone := make(chan error, 1)
			go func() {
				firstDone <- b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
					fresh, err := tx.MarkEvents(ctx, []string{id}, b.now)
					close(marked)
					if err != nil {
						return err
					}
					if !fresh[id] {
						return errors.New("first transaction: id not fresh")
					}
					<-release
					if !commitFirst {
						return errRollback
					}
					return nil
				})
			}()
			<-marked
			secondFresh := make(chan bool, 1)
			secondDone := make(chan error, 1)
			go func() {
				secondDone <- inTxRetry(b.ctx, b.s, func(ctx context.Context, tx store.Tx) error {
					fresh, err := tx.MarkEvents(ctx, []string{id}, b.now)
					if err == nil {
						secondFresh <- fresh[id]
					}
					return err
				})
			}()
			select {
			case <-secondFresh:
				t.Fatal("second transaction decided before the first finished")
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			err := <-firstDone
			if commitFirst {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, errRollback)
			}
			require.NoError(t, <-secondDone)
			require.Equal(t, !commitFirst, <-secondFresh)
		})
	}
}

var errRollback = errors.New("roll back on purpose")

func testPruneProcessed(t *testing.T, b *bundle) {
	inTx(t, b, func(tx store.Tx) {
		_, err := tx.MarkEvents(b.ctx, []string{"old-1", "old-2"}, b.now.Add(-2*time.Hour))
		require.NoError(t, err)
		_, err = tx.MarkEvents(b.ctx, []string{"recent"}, b.now)
		require.NoError(t, err)
	})
	n, err := b.s.PruneProcessed(b.ctx, b.now.Add(-time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	n, err = b.s.PruneProcessed(b.ctx, b.now.Add(-time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.MarkEvents(b.ctx, []string{"old-1", "recent"}, b.now)
		require.NoError(t, err)
		require.Equal(t, map[string]bool{"old-1": true}, got)
	})
}

func testHistory(t *testing.T, b *bundle) {
	entries := []store.History{
		{LeadKey: "h", At: b.now, Kind: "event", EventID: "ev-1", Data: json.RawMessage(`{"type":"trial.started"}`)},
		{LeadKey: "other", At: b.now, Kind: "event", EventID: "ev-x"},
		{LeadKey: "h", At: b.now.Add(time.Second), Kind: "score.changed", Data: json.RawMessage(`{"from":0,"to":5,"rule":"trial"}`)},
	}
	inTx(t, b, func(tx store.Tx) {
		require.NoError(t, tx.AppendHistory(b.ctx, nil))
		require.NoError(t, tx.AppendHistory(b.ctx, entries))
	})
	// Earlier "at" but appended later: order is append order.
	late := store.History{LeadKey: "h", At: b.now.Add(-time.Hour), Kind: "email.sent", EventID: "", Data: json.RawMessage(`{"step":"welcome"}`)}
	inTx(t, b, func(tx store.Tx) { require.NoError(t, tx.AppendHistory(b.ctx, []store.History{late})) })

	want := []store.History{entries[0], entries[2], late}
	tests := []struct {
		name  string
		key   string
		limit int
		want  []store.History
	}{
		{"all", "h", 0, want},
		{"latest two, oldest first", "h", 2, want[1:]},
		{"more than exist", "h", 10, want},
		{"other lead", "other", 0, []store.History{entries[1]}},
		{"unknown lead", "nobody", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.s.History(b.ctx, tc.key, tc.limit)
			require.NoError(t, err)
			require.Len(t, got, len(tc.want))
			for i, w := range tc.want {
				g := got[i]
				require.Equal(t, w.LeadKey, g.LeadKey)
				require.Equal(t, w.Kind, g.Kind)
				require.Equal(t, w.EventID, g.EventID)
				require.True(t, w.At.Equal(g.At), "at %v want %v", g.At, w.At)
				if len(w.Data) == 0 {
					require.Empty(t, g.Data)
				} else {
					require.JSONEq(t, string(w.Data), string(g.Data))
				}
			}
		})
	}
}

func item(kind, key string, next time.Time) store.OutboxItem {
	return store.OutboxItem{Kind: kind, DedupeKey: key, LeadKey: "lead-" + key,
		Payload: json.RawMessage(fmt.Sprintf(`{"key":%q}`, key)), NextAttemptAt: next, CreatedAt: next}
}

func enqueue(t *testing.T, b *bundle, items ...store.OutboxItem) {
	t.Helper()
	inTx(t, b, func(tx store.Tx) { require.NoError(t, tx.Enqueue(b.ctx, items)) })
}

func dedupeKeys(items []store.OutboxItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.DedupeKey
	}
	return out
}

func testEnqueueDedupe(t *testing.T, b *bundle) {
	x := item(store.KindEmail, "send-x", b.now)
	y := item(store.KindEvent, "event-y", b.now)
	xAgain := x
	xAgain.Payload = json.RawMessage(`{"changed":true}`)
	enqueue(t, b, x, y, xAgain)
	enqueue(t, b, xAgain)
	enqueue(t, b)

	got, err := b.s.ListOutbox(b.ctx, store.OutboxFilter{})
	require.NoError(t, err)
	require.Len(t, got, 2)
	byKey := map[string]store.OutboxItem{}
	for _, it := range got {
		byKey[it.DedupeKey] = it
	}
	gx := byKey["send-x"]
	require.JSONEq(t, string(x.Payload), string(gx.Payload), "first enqueue wins")
	require.Equal(t, store.KindEmail, gx.Kind)
	require.Equal(t, "lead-send-x", gx.LeadKey)
	require.Equal(t, store.StatusPending, gx.Status)
	require.Zero(t, gx.Attempts)
	require.True(t, b.now.Equal(gx.NextAttemptAt))
	require.True(t, b.now.Equal(gx.CreatedAt))
	require.True(t, gx.LeaseUntil.IsZero())
	require.NotZero(t, gx.ID)
	require.NotEqual(t, gx.ID, byKey["event-y"].ID)
}

func testClaimOutbox(t *testing.T, b *bundle) {
	enqueue(t, b,
		item(store.KindEmail, "e1", b.now.Add(-3*time.Minute)),
		item(store.KindNotifySlack, "s1", b.now.Add(-2*time.Minute)),
		item(store.KindEmail, "e2", b.now.Add(-time.Minute)),
		item(store.KindEmail, "e-future", b.now.Add(time.Minute)),
		item(store.KindNotifyWebhook, "w1", b.now),
	)
	tests := []struct {
		name string
		p    store.ClaimParams
		want []string
	}{
		{"zero limit", store.ClaimParams{Now: b.now, Limit: 0}, nil},
		{"nothing due yet", store.ClaimParams{Now: b.now.Add(-time.Hour), Limit: 10}, nil},
		{"kind and limit", store.ClaimParams{Now: b.now, Limit: 1, Lease: time.Minute, Kinds: []string{store.KindEmail}}, []string{"e1"}},
		{"kind, rest of due", store.ClaimParams{Now: b.now, Limit: 10, Lease: time.Minute, Kinds: []string{store.KindEmail}}, []string{"e2"}},
		{"two kinds", store.ClaimParams{Now: b.now, Limit: 10, Lease: time.Minute, Kinds: []string{store.KindNotifySlack, store.KindNotifyWebhook}}, []string{"s1", "w1"}},
		{"leased items are not claimed again", store.ClaimParams{Now: b.now, Limit: 10, Lease: time.Minute}, nil},
		{"all kinds, later", store.ClaimParams{Now: b.now.Add(time.Hour), Limit: 10, Lease: time.Minute}, []string{"e-future"}},
	}
	for _, tc := range tests {
		got, err := b.s.ClaimOutbox(b.ctx, tc.p)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, nilIfEmpty(dedupeKeys(got)), tc.name)
		for _, it := range got {
			require.Equal(t, store.StatusSending, it.Status, tc.name)
			require.Equal(t, 1, it.Attempts, tc.name)
			require.True(t, tc.p.Now.Add(tc.p.Lease).Equal(it.LeaseUntil), "%s: lease %v", tc.name, it.LeaseUntil)
			require.JSONEq(t, fmt.Sprintf(`{"key":%q}`, it.DedupeKey), string(it.Payload))
		}
	}
}

func testCompleteOutbox(t *testing.T, b *bundle) {
	later := b.now.Add(10 * time.Minute)
	tests := []struct {
		name      string
		result    store.OutboxResult
		wantErr   bool
		claimable time.Time // zero: never claimable again
	}{
		{"sent", store.OutboxResult{Status: store.StatusSent, At: b.now}, false, time.Time{}},
		{"failed", store.OutboxResult{Status: store.StatusFailed, Error: "550 no such user", At: b.now}, false, time.Time{}},
		{"unknown", store.OutboxResult{Status: store.StatusUnknown, Error: "connection lost after DATA", At: b.now}, false, time.Time{}},
		{"suppressed", store.OutboxResult{Status: store.StatusSuppressed, Error: "unsubscribed", At: b.now}, false, time.Time{}},
		{"retry", store.OutboxResult{Status: store.StatusRetry, Error: "421 try later", NextAt: later, At: b.now}, false, later},
		{"retry without time", store.OutboxResult{Status: store.StatusRetry, At: b.now}, true, time.Time{}},
		{"invalid status", store.OutboxResult{Status: store.StatusSending, At: b.now}, true, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key := "complete-" + tc.name
			enqueue(t, b, item("test."+key, key, b.now))
			claimed, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: 1, Lease: time.Minute, Kinds: []string{"test." + key}})
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			r := tc.result
			r.ID = claimed[0].ID
			err = b.s.CompleteOutbox(b.ctx, []store.OutboxResult{r})
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			got, err := b.s.ListOutbox(b.ctx, store.OutboxFilter{Kind: "test." + key})
			require.NoError(t, err)
			require.Len(t, got, 1)
			require.Equal(t, tc.result.Status, got[0].Status)
			require.Equal(t, tc.result.Error, got[0].LastError)
			require.True(t, got[0].LeaseUntil.IsZero(), "lease cleared")
			require.True(t, tc.result.At.Equal(got[0].UpdatedAt))
			require.Equal(t, 1, got[0].Attempts)

			probe := b.now.Add(24 * time.Hour)
			if !tc.claimable.IsZero() {
				require.True(t, tc.claimable.Equal(got[0].NextAttemptAt))
				again, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: tc.claimable.Add(-time.Second), Limit: 1, Lease: time.Minute, Kinds: []string{"test." + key}})
				require.NoError(t, err)
				require.Empty(t, again, "not before NextAt")
				probe = tc.claimable
			}
			again, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: probe, Limit: 1, Lease: time.Minute, Kinds: []string{"test." + key}})
			require.NoError(t, err)
			if tc.claimable.IsZero() {
				require.Empty(t, again, "final outcome is never claimed again")
			} else {
				require.Len(t, again, 1)
				require.Equal(t, 2, again[0].Attempts)
			}
		})
	}
	t.Run("unknown id", func(t *testing.T) {
		err := b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: 987654321, Status: store.StatusSent, At: b.now}})
		require.ErrorIs(t, err, store.ErrNotFound)
	})
	t.Run("empty", func(t *testing.T) {
		require.NoError(t, b.s.CompleteOutbox(b.ctx, nil))
	})
}

func testExpiredLeases(t *testing.T, b *bundle) {
	enqueue(t, b, item(store.KindEmail, "lease-1", b.now), item(store.KindEmail, "lease-2", b.now), item(store.KindEmail, "lease-3", b.now))
	claimed, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: 2, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, claimed, 2)
	_, err = b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now.Add(time.Second), Limit: 1, Lease: 5 * time.Minute})
	require.NoError(t, err)

	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []string
	}{
		{"lease running", b.now.Add(30 * time.Second), 10, nil},
		{"at lease end", b.now.Add(time.Minute), 10, nil},
		{"after first leases", b.now.Add(time.Minute + time.Microsecond), 10, []string{"lease-1", "lease-2"}},
		{"limit", b.now.Add(time.Hour), 1, []string{"lease-1"}},
		{"all", b.now.Add(time.Hour), 10, []string{"lease-1", "lease-2", "lease-3"}},
	}
	for _, tc := range tests {
		got, err := b.s.ExpiredLeases(b.ctx, tc.now, tc.limit)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, nilIfEmpty(dedupeKeys(got)), tc.name)
		for _, it := range got {
			require.Equal(t, store.StatusSending, it.Status)
		}
	}
	// Completing an expired item removes it from the list.
	require.NoError(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: claimed[0].ID, Status: store.StatusUnknown, Error: "lease expired", At: b.now.Add(time.Hour)}}))
	got, err := b.s.ExpiredLeases(b.ctx, b.now.Add(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	// Expired items are not claimable.
	again, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now.Add(time.Hour), Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.Empty(t, again)
}

func testListOutbox(t *testing.T, b *bundle) {
	items := []store.OutboxItem{
		item(store.KindEmail, "l1", b.now), item(store.KindEvent, "l2", b.now), item(store.KindEmail, "l3", b.now),
	}
	items[2].LeadKey = "lead-l1"
	enqueue(t, b, items...)
	tests := []struct {
		name string
		f    store.OutboxFilter
		want []string
	}{
		{"all newest first", store.OutboxFilter{}, []string{"l3", "l2", "l1"}},
		{"limit", store.OutboxFilter{Limit: 1}, []string{"l3"}},
		{"kind", store.OutboxFilter{Kind: store.KindEmail}, []string{"l3", "l1"}},
		{"lead", store.OutboxFilter{LeadKey: "lead-l1"}, []string{"l3", "l1"}},
		{"kind and lead", store.OutboxFilter{Kind: store.KindEvent, LeadKey: "lead-l1"}, nil},
	}
	for _, tc := range tests {
		got, err := b.s.ListOutbox(b.ctx, tc.f)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, nilIfEmpty(dedupeKeys(got)), tc.name)
	}
}

func testSuppress(t *testing.T, b *bundle) {
	require.NoError(t, b.s.Suppress(b.ctx, "Ada@Example.com", "bounced", b.now))
	require.NoError(t, b.s.Suppress(b.ctx, "ada@example.com", "complained", b.now), "idempotent")
	require.NoError(t, b.s.Suppress(b.ctx, "grace@example.com", "unsubscribed", b.now))
	inTx(t, b, func(tx store.Tx) {
		got, err := tx.Suppressed(b.ctx, []string{"ADA@example.com", "bob@example.com", "grace@example.com"})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"ADA@example.com": "bounced", "grace@example.com": "unsubscribed"}, got)
		got, err = tx.Suppressed(b.ctx, nil)
		require.NoError(t, err)
		require.Empty(t, got)
	})
}

func testDesk(t *testing.T, b *bundle) {
	inTx(t, b, func(tx store.Tx) {
		d, err := tx.Desk(b.ctx, false)
		require.NoError(t, err)
		require.NotNil(t, d.Reps)
		require.Empty(t, d.Reps)
		d.Reps["ana"] = &engine.RepLoad{Open: 2, Assigned: 7, LastAt: b.now}
		d.Reps["bo"] = &engine.RepLoad{}
		require.NoError(t, tx.SaveDesk(b.ctx, d))
	})
	require.NoError(t, b.s.SetRepAway(b.ctx, "bo", true))
	require.NoError(t, b.s.SetRepAway(b.ctx, "cy", true))
	require.NoError(t, b.s.SetRepAway(b.ctx, "cy", false))
	inTx(t, b, func(tx store.Tx) {
		d, err := tx.Desk(b.ctx, true)
		require.NoError(t, err)
		require.Len(t, d.Reps, 3)
		require.Equal(t, 2, d.Reps["ana"].Open)
		require.Equal(t, int64(7), d.Reps["ana"].Assigned)
		require.True(t, b.now.Equal(d.Reps["ana"].LastAt))
		require.False(t, d.Reps["ana"].Away)
		require.True(t, d.Reps["bo"].Away)
		require.False(t, d.Reps["cy"].Away)
		require.Equal(t, engine.RepLoad{}, *d.Reps["cy"])
		// Routing writes load, never the away flag.
		d.Reps["bo"].Away = false
		d.Reps["bo"].Open = 1
		require.NoError(t, tx.SaveDesk(b.ctx, d))
	})
	inTx(t, b, func(tx store.Tx) {
		d, err := tx.Desk(b.ctx, false)
		require.NoError(t, err)
		require.True(t, d.Reps["bo"].Away, "SaveDesk does not clear away")
		require.Equal(t, 1, d.Reps["bo"].Open)
	})
}

// testDeskLockSerializes: routing transactions that lock the desk never
// lose each other's assignments.
func testDeskLockSerializes(t *testing.T, b *bundle) {
	const workers, rounds = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range rounds {
				err := inTxRetry(b.ctx, b.s, func(ctx context.Context, tx store.Tx) error {
					d, err := tx.Desk(ctx, true)
					if err != nil {
						return err
					}
					r := d.Reps["ana"]
					if r == nil {
						r = &engine.RepLoad{}
						d.Reps["ana"] = r
					}
					r.Assigned++
					return tx.SaveDesk(ctx, d)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	inTx(t, b, func(tx store.Tx) {
		d, err := tx.Desk(b.ctx, false)
		require.NoError(t, err)
		require.Equal(t, int64(workers*rounds), d.Reps["ana"].Assigned)
	})
}

func testDeadLetters(t *testing.T, b *bundle) {
	dls := []store.DeadLetter{
		{At: b.now, Subject: "leads.trial.started", EventID: "ev-1", Reason: "missing subject", Payload: []byte(`{"id":"ev-1"`)},
		{At: b.now.Add(time.Second), Subject: "http", Reason: "not JSON", Payload: []byte{0xff, 0x00, 0x01}},
	}
	for _, dl := range dls {
		inTx(t, b, func(tx store.Tx) { require.NoError(t, tx.DeadLetter(b.ctx, dl)) })
	}
	got, err := b.s.DeadLetters(b.ctx, 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	for i, w := range []store.DeadLetter{dls[1], dls[0]} {
		g := got[i]
		require.NotZero(t, g.ID)
		require.True(t, w.At.Equal(g.At))
		require.Equal(t, w.Subject, g.Subject)
		require.Equal(t, w.EventID, g.EventID)
		require.Equal(t, w.Reason, g.Reason)
		require.Equal(t, w.Payload, g.Payload)
	}
	got, err = b.s.DeadLetters(b.ctx, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "not JSON", got[0].Reason)
}

func testPublishVersions(t *testing.T, b *bundle) {
	v1 := store.SequenceVersion{Sequence: "trial", Version: "h1", Source: []byte("id: trial\n"), PublishedAt: b.now}
	v1b := v1
	v1b.Source, v1b.PublishedAt = []byte("changed"), b.now.Add(time.Hour)
	v2 := store.SequenceVersion{Sequence: "trial", Version: "h2", Source: []byte("id: trial # v2\n"), PublishedAt: b.now.Add(time.Minute)}
	o1 := store.SequenceVersion{Sequence: "onboard", Version: "h9", Source: []byte("id: onboard\n"), PublishedAt: b.now.Add(2 * time.Minute)}

	require.NoError(t, b.s.PublishVersions(b.ctx, nil))
	require.NoError(t, b.s.PublishVersions(b.ctx, []store.SequenceVersion{v1}))
	require.NoError(t, b.s.PublishVersions(b.ctx, []store.SequenceVersion{v1b, v2, o1}))
	require.NoError(t, b.s.PublishVersions(b.ctx, []store.SequenceVersion{v2}))
	got, err := b.s.Versions(b.ctx)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, w := range []store.SequenceVersion{o1, v1, v2} {
		require.Equal(t, w.Sequence, got[i].Sequence)
		require.Equal(t, w.Version, got[i].Version)
		require.Equal(t, w.Source, got[i].Source)
		require.True(t, w.PublishedAt.Equal(got[i].PublishedAt))
	}
}

// testClaimOutboxConcurrent: concurrent dispatchers never lease the same
// item.
func testClaimOutboxConcurrent(t *testing.T, b *bundle) {
	const n = 60
	items := make([]store.OutboxItem, n)
	for i := range items {
		items[i] = item(store.KindEmail, fmt.Sprintf("c-%02d", i), b.now.Add(-time.Duration(n-i)*time.Second))
	}
	enqueue(t, b, items...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				got, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: 7, Lease: time.Minute})
				if errors.Is(err, store.ErrTransient) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, it := range got {
					seen[it.DedupeKey]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, n)
	for k, c := range seen {
		require.Equal(t, 1, c, k)
	}
}

func testRecentLeads(t *testing.T, b *bundle) {
	got, err := b.s.RecentLeads(b.ctx, 10)
	require.NoError(t, err)
	require.Empty(t, got)

	older, tie1, tie2 := fullLead("l-older", b.now), fullLead("l-tie-b", b.now), fullLead("l-tie-a", b.now)
	older.UpdatedAt = b.now.Add(-time.Hour)
	newest := fullLead("l-newest", b.now)
	newest.UpdatedAt = b.now.Add(time.Hour)
	seedLeads(t, b, older, tie1, tie2, newest)

	keys := func(ls []*engine.Lead) []string {
		out := make([]string, len(ls))
		for i, l := range ls {
			out[i] = l.Key
		}
		return out
	}
	got, err = b.s.RecentLeads(b.ctx, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"l-newest", "l-tie-a", "l-tie-b", "l-older"}, keys(got))
	require.Equal(t, docJSON(t, newest), docJSON(t, got[0]), "full document round-trips")

	got, err = b.s.RecentLeads(b.ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []string{"l-newest", "l-tie-a"}, keys(got))
}
