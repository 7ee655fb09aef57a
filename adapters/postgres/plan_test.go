package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/store"
)

// explain returns the plan of query as queryAfter runs it after setup.
func explain(t *testing.T, s *Store, setup, query string, args ...any) string {
	t.Helper()
	lines, err := queryAfter(t.Context(), s, "explain", setup, func(r scanner) (string, error) {
		var line string
		return line, r.Scan(&line)
	}, "EXPLAIN "+query, args...)
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

// The hand-off is planned once per connection, with nested loops over the
// primary keys whatever the statistics say (here: taken on empty tables),
// and the settings end with its transaction.
func TestHandOffPlanOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, scratchURL(t), WithMaxConns(1)) // one connection: the checks below share it
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Migrate(ctx))
	_, err = s.pool.Exec(ctx, "ANALYZE")
	require.NoError(t, err)

	mode := func(setup string) string {
		got, err := queryAfter(ctx, s, "mode", setup, func(r scanner) (string, error) {
			var m string
			return m, r.Scan(&m)
		}, "SELECT current_setting('plan_cache_mode')")
		require.NoError(t, err)
		return got[0]
	}
	require.Equal(t, "force_generic_plan", mode(qPlanOnce))
	require.Equal(t, "auto", mode("SELECT 1"), "the setting ended with the hand-off's transaction")

	now := time.Now().UTC()
	plan := explain(t, s, qPlanOnce, qHandOff, []int64{1, 2}, []int32{1, 1}, []string{"a@example.com", ""},
		[]string{"l-1", ""}, "active", now, now.Add(time.Minute))
	require.Contains(t, plan, "Nested Loop", plan)
	for _, bad := range []string{"Seq Scan on leads", "Seq Scan on suppressions", "Seq Scan on outbox", "Hash Join", "Merge Join"} {
		require.NotContains(t, plan, bad, plan)
	}
}

// A claim reads due items in index order and stops at its limit, even
// when the statistics predate a burst of enqueued items (they were taken
// on an empty outbox): without that, every claim scans and sorts the whole
// backlog, and draining it costs O(n²).
func TestClaimPlanStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := scratchStore(t)
	_, err := s.pool.Exec(ctx, "ANALYZE outbox")
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Microsecond)
	items := make([]store.OutboxItem, 5000)
	for i := range items {
		items[i] = store.OutboxItem{Kind: store.KindEmail, DedupeKey: fmt.Sprintf("burst-%d", i), LeadKey: fmt.Sprintf("l-%d", i),
			Payload: []byte(`{"to":"a@example.com"}`), NextAttemptAt: now.Add(-time.Minute), CreatedAt: now.Add(-time.Minute)}
	}
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx store.Tx) error { return tx.Enqueue(ctx, items) }))

	args := []any{now, []string{store.KindEmail}, 32, now.Add(time.Minute)}
	t.Logf("the planner's own choice:\n%s", explain(t, s, "SELECT 1", qClaimOutbox, args...))
	p := explain(t, s, qOrderedScan, qClaimOutbox, args...)
	require.Contains(t, p, "Index Scan using outbox_claimable", p)
	require.NotContains(t, p, "Sort", p)
	require.NotContains(t, p, "Bitmap", p)

	got, err := s.ClaimOutbox(ctx, store.ClaimParams{Now: now, Limit: 32, Lease: time.Minute, Kinds: []string{store.KindEmail}})
	require.NoError(t, err)
	require.Len(t, got, 32)
	require.Equal(t, "burst-0", got[0].DedupeKey, "oldest due first, then by id")
}
