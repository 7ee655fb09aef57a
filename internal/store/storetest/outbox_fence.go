package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// claimOne claims the single due item of kind at now.
func claimOne(t *testing.T, b *bundle, kind string, now time.Time, lease time.Duration) store.OutboxItem {
	t.Helper()
	got, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: now, Limit: 1, Lease: lease, Kinds: []string{kind}})
	require.NoError(t, err)
	require.Len(t, got, 1)
	return got[0]
}

func onlyItem(t *testing.T, b *bundle, kind string) store.OutboxItem {
	t.Helper()
	got, err := b.s.ListOutbox(b.ctx, store.OutboxFilter{Kind: kind})
	require.NoError(t, err)
	require.Len(t, got, 1)
	return got[0]
}

// testCompleteOutboxFenced: a late outcome of an attempt whose lease
// expired never overwrites a newer claim; it is reported as ErrStale. The
// outcome of an attempt that recovery settled (and nobody claimed since)
// still records the truth.
func testCompleteOutboxFenced(t *testing.T, b *bundle) {
	t.Run("newer claim wins", func(t *testing.T) {
		kind := "test.fence-newer"
		enqueue(t, b, item(kind, "fence-newer", b.now))
		first := claimOne(t, b, kind, b.now, time.Minute)
		require.Equal(t, 1, first.Attempts)
		later := b.now.Add(2 * time.Minute)
		rec, err := b.s.RecoverLeases(b.ctx, store.RecoverParams{Now: later, Limit: 10})
		require.NoError(t, err)
		require.Len(t, rec, 1)
		second := claimOne(t, b, kind, later, time.Minute)
		require.Equal(t, 2, second.Attempts)

		err = b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: first.ID, Attempts: first.Attempts, Status: store.StatusFailed, Error: "late", At: later}})
		require.ErrorIs(t, err, store.ErrStale)
		require.NotErrorIs(t, err, store.ErrNotFound)
		got := onlyItem(t, b, kind)
		require.Equal(t, store.StatusSending, got.Status, "the newer claim still owns the item")
		require.False(t, got.LeaseUntil.IsZero())

		require.NoError(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: second.ID, Attempts: second.Attempts, Status: store.StatusSent, At: later}}))
		require.Equal(t, store.StatusSent, onlyItem(t, b, kind).Status)
		// A final outcome is never overwritten, not even by its own attempt.
		err = b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: second.ID, Attempts: second.Attempts, Status: store.StatusUnknown, At: later}})
		require.ErrorIs(t, err, store.ErrStale)
		require.Equal(t, store.StatusSent, onlyItem(t, b, kind).Status)
	})
	t.Run("late truth after recovery", func(t *testing.T) {
		kind := "test.fence-truth"
		enqueue(t, b, item(kind, "fence-truth", b.now))
		c := claimOne(t, b, kind, b.now, time.Minute)
		require.Equal(t, store.HandOffResult{}, handOff(t, b, c, b.now, time.Minute))
		rec, err := b.s.RecoverLeases(b.ctx, store.RecoverParams{Now: b.now.Add(2 * time.Minute), Limit: 10, UnknownKinds: []string{kind}})
		require.NoError(t, err)
		require.Len(t, rec, 1)
		require.Equal(t, store.StatusUnknown, rec[0].Status)
		require.NoError(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: c.ID, Attempts: c.Attempts, Status: store.StatusSent, At: b.now.Add(3 * time.Minute)}}))
		require.Equal(t, store.StatusSent, onlyItem(t, b, kind).Status)
	})
	t.Run("in transaction", func(t *testing.T) {
		kind := "test.fence-tx"
		enqueue(t, b, item(kind, "fence-tx-1", b.now), item(kind, "fence-tx-2", b.now))
		got, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: 2, Lease: time.Minute, Kinds: []string{kind}})
		require.NoError(t, err)
		require.Len(t, got, 2)
		results := []store.OutboxResult{
			{ID: got[0].ID, Attempts: got[0].Attempts, Status: store.StatusSent, At: b.now},
			{ID: got[1].ID, Attempts: got[1].Attempts + 5, Status: store.StatusSent, At: b.now},
		}
		// Rolled back: nothing recorded.
		boom := errors.New("boom")
		err = b.s.InTx(b.ctx, func(ctx context.Context, tx store.Tx) error {
			na, err := tx.CompleteOutbox(ctx, results)
			require.NoError(t, err)
			require.Equal(t, []int64{got[1].ID}, na)
			return boom
		})
		require.ErrorIs(t, err, boom)
		list, err := b.s.ListOutbox(b.ctx, store.OutboxFilter{Kind: kind})
		require.NoError(t, err)
		for _, it := range list {
			require.Equal(t, store.StatusSending, it.Status, "rolled back")
		}
		inTx(t, b, func(tx store.Tx) {
			na, err := tx.CompleteOutbox(b.ctx, results)
			require.NoError(t, err)
			require.Equal(t, []int64{got[1].ID}, na)
		})
		list, err = b.s.ListOutbox(b.ctx, store.OutboxFilter{Kind: kind})
		require.NoError(t, err)
		status := map[int64]string{}
		for _, it := range list {
			status[it.ID] = it.Status
		}
		require.Equal(t, map[int64]string{got[0].ID: store.StatusSent, got[1].ID: store.StatusSending}, status)
	})
}

// handOff hands off one claimed item (no address or lead to check).
func handOff(t *testing.T, b *bundle, c store.OutboxItem, now time.Time, lease time.Duration) store.HandOffResult {
	t.Helper()
	got, err := b.s.HandOff(b.ctx, []store.HandOff{{ID: c.ID, Attempts: c.Attempts}}, now, lease)
	require.NoError(t, err)
	require.Len(t, got, 1)
	return got[0]
}

// testHandOff: the hand-off mark applies only to the current attempt of a
// sending item, renews the lease, and a new claim clears it.
func testHandOff(t *testing.T, b *bundle) {
	kind := "test.handoff"
	enqueue(t, b, item(kind, "handoff", b.now))
	c := claimOne(t, b, kind, b.now, time.Minute)
	require.True(t, c.HandedAt.IsZero())
	stale := c
	stale.Attempts++
	require.Equal(t, store.HandOffResult{Stale: true}, handOff(t, b, stale, b.now, time.Minute))
	require.True(t, onlyItem(t, b, kind).HandedAt.IsZero(), "a stale attempt marks nothing")
	at := b.now.Add(30 * time.Second)
	require.Equal(t, store.HandOffResult{}, handOff(t, b, c, at, 5*time.Minute))
	got := onlyItem(t, b, kind)
	require.True(t, at.Equal(got.HandedAt), "handed at %s", got.HandedAt)
	require.True(t, at.Add(5*time.Minute).Equal(got.LeaseUntil), "lease renewed from the hand-off")
	// Not expired at the first lease's end any more.
	rec, err := b.s.RecoverLeases(b.ctx, store.RecoverParams{Now: b.now.Add(2 * time.Minute), Limit: 10})
	require.NoError(t, err)
	require.Empty(t, rec)

	require.NoError(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: c.ID, Attempts: c.Attempts, Status: store.StatusRetry, NextAt: b.now.Add(time.Hour), At: at}}))
	require.Equal(t, store.HandOffResult{Stale: true}, handOff(t, b, c, at, time.Minute), "completed: no longer sending")
	again := claimOne(t, b, kind, b.now.Add(time.Hour), time.Minute)
	require.True(t, again.HandedAt.IsZero(), "a new claim starts un-handed")
	require.Equal(t, 2, again.Attempts)
}

// testHandOffChecks: one call checks every item against the suppression
// list (case-insensitively) and its lead's status, hands off only those
// that pass, and answers in input order.
func testHandOffChecks(t *testing.T, b *bundle) {
	kind := "test.handoff-checks"
	unsub := fullLead("ho-unsub", b.now)
	unsub.Status = engine.LeadUnsubscribed
	seedLeads(t, b, fullLead("ho-active", b.now), unsub)
	require.NoError(t, b.s.Suppress(b.ctx, "listed@example.com", "hard_bounce", b.now))
	keys := []string{"ho-1", "ho-2", "ho-3", "ho-4", "ho-5", "ho-6"}
	for _, k := range keys {
		enqueue(t, b, item(kind, k, b.now))
	}
	claimed, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: len(keys), Lease: time.Minute, Kinds: []string{kind}})
	require.NoError(t, err)
	require.Len(t, claimed, len(keys))
	byKey := map[string]store.OutboxItem{}
	for _, c := range claimed {
		byKey[c.DedupeKey] = c
	}
	req := func(key, email, lead string, attemptDelta int) store.HandOff {
		c := byKey[key]
		return store.HandOff{ID: c.ID, Attempts: c.Attempts + attemptDelta, Email: email, LeadKey: lead}
	}
	// Deliberately not in id order: results follow the input.
	items := []store.HandOff{
		req("ho-6", "ok@example.com", "no-such-lead", 0), // unknown lead: nothing stops it
		req("ho-1", " Listed@Example.COM ", "ho-active", 0),
		req("ho-2", "ok@example.com", "ho-unsub", 0),
		req("ho-3", "ok@example.com", "ho-active", 0),
		req("ho-4", "", "", 0),
		req("ho-5", "ok@example.com", "ho-active", 1), // stale attempt
	}
	got, err := b.s.HandOff(b.ctx, items, b.now, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []store.HandOffResult{
		{}, {Suppressed: "hard_bounce"}, {Suppressed: string(engine.LeadUnsubscribed)}, {}, {}, {Stale: true},
	}, got)
	handed := map[string]bool{}
	list, err := b.s.ListOutbox(b.ctx, store.OutboxFilter{Kind: kind})
	require.NoError(t, err)
	for _, it := range list {
		handed[it.DedupeKey] = !it.HandedAt.IsZero()
	}
	require.Equal(t, map[string]bool{"ho-1": false, "ho-2": false, "ho-3": true, "ho-4": true, "ho-5": false, "ho-6": true}, handed)

	empty, err := b.s.HandOff(b.ctx, nil, b.now, time.Minute)
	require.NoError(t, err)
	require.Empty(t, empty)
}

// testRecoverLeases: one statement settles expired leases; never handed
// off items are retried, handed-off ones of the unknown kinds become
// unknown.
func testRecoverLeases(t *testing.T, b *bundle) {
	enqueue(t, b,
		item(store.KindEmail, "rec-email-handed", b.now),
		item(store.KindEmail, "rec-email-waiting", b.now),
		item(store.KindNotifySlack, "rec-slack-handed", b.now),
		item(store.KindEmail, "rec-email-running", b.now.Add(time.Second)),
	)
	claimed, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: 3, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, claimed, 3)
	byKey := map[string]store.OutboxItem{}
	for _, c := range claimed {
		byKey[c.DedupeKey] = c
	}
	for _, k := range []string{"rec-email-handed", "rec-slack-handed"} {
		require.Equal(t, store.HandOffResult{}, handOff(t, b, byKey[k], b.now, time.Minute))
	}
	running := claimOne(t, b, store.KindEmail, b.now.Add(time.Second), 10*time.Minute)
	require.Equal(t, "rec-email-running", running.DedupeKey)

	now := b.now.Add(2 * time.Minute)
	got, err := b.s.RecoverLeases(b.ctx, store.RecoverParams{Now: now, Limit: 10, UnknownKinds: []string{store.KindEmail}})
	require.NoError(t, err)
	status := map[string]string{}
	for _, it := range got {
		status[it.DedupeKey] = it.Status
		require.True(t, it.LeaseUntil.IsZero())
		require.Equal(t, it.DedupeKey != "rec-email-waiting", !it.HandedAt.IsZero(), it.DedupeKey)
	}
	require.Equal(t, map[string]string{
		"rec-email-handed":  store.StatusUnknown,
		"rec-email-waiting": store.StatusRetry,
		"rec-slack-handed":  store.StatusRetry,
	}, status)
	again, err := b.s.RecoverLeases(b.ctx, store.RecoverParams{Now: now, Limit: 10, UnknownKinds: []string{store.KindEmail}})
	require.NoError(t, err)
	require.Empty(t, again, "settled once")
	retried, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: now, Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"rec-email-waiting", "rec-slack-handed"}, dedupeKeys(retried), "retries are due at once")
	require.Equal(t, store.StatusSending, onlyItemByKey(t, b, "rec-email-running").Status, "running lease untouched")

	t.Run("limit", func(t *testing.T) {
		kind := "test.rec-limit"
		enqueue(t, b, item(kind, "rec-limit-1", b.now), item(kind, "rec-limit-2", b.now))
		_, err := b.s.ClaimOutbox(b.ctx, store.ClaimParams{Now: b.now, Limit: 2, Lease: time.Minute, Kinds: []string{kind}})
		require.NoError(t, err)
		got, err := b.s.RecoverLeases(b.ctx, store.RecoverParams{Now: b.now.Add(3 * time.Minute), Limit: 1})
		require.NoError(t, err)
		require.Len(t, got, 1)
	})
}

func onlyItemByKey(t *testing.T, b *bundle, key string) store.OutboxItem {
	t.Helper()
	all, err := b.s.ListOutbox(b.ctx, store.OutboxFilter{Limit: 1000})
	require.NoError(t, err)
	for _, it := range all {
		if it.DedupeKey == key {
			return it
		}
	}
	t.Fatalf("no outbox item %s", key)
	return store.OutboxItem{}
}

// testCompleteOutboxDeferred: a throttle deferral gives the attempt back
// and accumulates the deferred time.
func testCompleteOutboxDeferred(t *testing.T, b *bundle) {
	kind := "test.deferred"
	enqueue(t, b, item(kind, "deferred", b.now))
	c := claimOne(t, b, kind, b.now, time.Minute)
	require.Equal(t, 1, c.Attempts)
	until := b.now.Add(5 * time.Minute)
	require.NoError(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: c.ID, Attempts: c.Attempts, Status: store.StatusRetry, Deferred: true, NextAt: until, At: b.now, Error: "deferred: domain_rate"}}))
	got := onlyItem(t, b, kind)
	require.Equal(t, 0, got.Attempts, "a deferral is not an attempt")
	require.Equal(t, 5*time.Minute, got.Deferred)
	require.True(t, until.Equal(got.NextAttemptAt))
	c = claimOne(t, b, kind, until, time.Minute)
	require.Equal(t, 1, c.Attempts)
	require.NoError(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: c.ID, Attempts: c.Attempts, Status: store.StatusRetry, Deferred: true, NextAt: until.Add(time.Minute), At: until}}))
	require.Equal(t, 6*time.Minute, onlyItem(t, b, kind).Deferred)
	require.Error(t, b.s.CompleteOutbox(b.ctx, []store.OutboxResult{{ID: c.ID, Status: store.StatusSent, Deferred: true, At: until}}), "deferred needs retry")
}
