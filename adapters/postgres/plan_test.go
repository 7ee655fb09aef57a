package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/store"
)

// The hand-off is planned once per connection, with nested loops over the
// primary keys whatever the statistics say (here: taken on empty tables),
// and the settings end with its transaction.
func TestHandOffPlanOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := scratchStore(t)
	_, err := s.pool.Exec(ctx, "ANALYZE")
	require.NoError(t, err)
	conn, err := s.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()

	now := time.Now().UTC()
	b := &pgx.Batch{}
	b.Queue(qPlanOnce)
	b.Queue("SELECT current_setting('plan_cache_mode')")
	b.Queue("EXPLAIN "+qHandOff, []int64{1, 2}, []int32{1, 1}, []string{"a@example.com", ""}, []string{"l-1", ""},
		"active", now, now.Add(time.Minute))
	br := conn.SendBatch(ctx, b)
	_, err = br.Exec()
	require.NoError(t, err)
	var mode string
	require.NoError(t, br.QueryRow().Scan(&mode))
	require.Equal(t, "force_generic_plan", mode)
	rows, err := br.Query()
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NoError(t, br.Close())
	plan := strings.Join(lines, "\n")
	require.Contains(t, plan, "Nested Loop", plan)
	for _, bad := range []string{"Seq Scan on leads", "Seq Scan on suppressions", "Seq Scan on outbox", "Hash Join", "Merge Join"} {
		require.NotContains(t, plan, bad, plan)
	}

	require.NoError(t, conn.QueryRow(ctx, "SELECT current_setting('plan_cache_mode')").Scan(&mode))
	require.Equal(t, "auto", mode, "the setting ended with the hand-off's transaction")
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

	plan := func(ordered bool) string {
		b := &pgx.Batch{}
		if ordered {
			b.Queue(qOrderedScan)
		}
		b.Queue("EXPLAIN "+qClaimOutbox, now, []string{store.KindEmail}, 32, now.Add(time.Minute))
		br := s.pool.SendBatch(ctx, b)
		defer func() { require.NoError(t, br.Close()) }()
		if ordered {
			_, err := br.Exec()
			require.NoError(t, err)
		}
		rows, err := br.Query()
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	t.Logf("the planner's own choice:\n%s", plan(false))
	p := plan(true)
	require.Contains(t, p, "Index Scan using outbox_claimable", p)
	require.NotContains(t, p, "Sort", p)
	require.NotContains(t, p, "Bitmap", p)

	got, err := s.ClaimOutbox(ctx, store.ClaimParams{Now: now, Limit: 32, Lease: time.Minute, Kinds: []string{store.KindEmail}})
	require.NoError(t, err)
	require.Len(t, got, 32)
	require.Equal(t, "burst-0", got[0].DedupeKey, "oldest due first, then by id")
}
