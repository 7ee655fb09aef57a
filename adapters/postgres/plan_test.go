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

// Connections plan each statement once (generic plans) unless the URL
// chooses otherwise.
func TestPlanCacheMode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := scratchURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, c := range []struct{ url, want string }{
		{url, "force_generic_plan"},
		{url + sep + "plan_cache_mode=auto", "auto"},
	} {
		s, err := Open(ctx, c.url)
		require.NoError(t, err)
		var got string
		require.NoError(t, s.pool.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&got))
		s.Close()
		require.Equal(t, c.want, got, c.url)
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
