package postgres_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/internal/store/storetest"
)

func benchStore(b *testing.B) *postgres.Store {
	s, err := postgres.Open(b.Context(), testURL(b), postgres.WithMaxConns(8))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	require.NoError(b, s.Migrate(b.Context()))
	return s
}

// BenchmarkApplyBatch: LockLeads+MarkEvents+SaveLeads+AppendHistory, 500
// events on 500 leads per transaction.
func BenchmarkApplyBatch(b *testing.B) {
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("batch=500/workers=%d", workers), func(b *testing.B) {
			storetest.BenchApplyBatch(b, benchStore(b), 500, workers)
		})
	}
}

// BenchmarkClaimDueLeads: claim 500 due leads with SKIP LOCKED and save
// them with their timers moved, per transaction.
func BenchmarkClaimDueLeads(b *testing.B) {
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("batch=500/workers=%d", workers), func(b *testing.B) {
			storetest.BenchClaimDue(b, benchStore(b), 500, workers)
		})
	}
}

// BenchmarkBaseline measures, in the same run, the reference shapes of
// DESIGN.md §5 with bare SQL on narrow tables, so the store's numbers can
// be read as ratios of what this machine's PostgreSQL can do:
//   - apply: per transaction, insert 100 event ids and update 100 narrow rows;
//   - claim: per transaction, claim 100 due rows with SKIP LOCKED and clear them.
func BenchmarkBaseline(b *testing.B) {
	b.Run("apply/batch=100", func(b *testing.B) {
		s := benchStore(b)
		ctx := b.Context()
		p := s.Pool()
		_, err := p.Exec(ctx, `CREATE TABLE base_leads (key text PRIMARY KEY, n int NOT NULL DEFAULT 0);
			CREATE TABLE base_events (id text PRIMARY KEY);
			INSERT INTO base_leads SELECT 'k'||i FROM generate_series(0, 9999) i`)
		require.NoError(b, err)
		b.ResetTimer()
		for i := range b.N {
			keys := make([]string, 100)
			ids := make([]string, 100)
			for j := range keys {
				keys[j] = fmt.Sprintf("k%d", (i*100+j)%10000)
				ids[j] = fmt.Sprintf("e%d-%d", i, j)
			}
			tx, err := p.Begin(ctx)
			require.NoError(b, err)
			_, err = tx.Exec(ctx, `INSERT INTO base_events SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, ids)
			require.NoError(b, err)
			_, err = tx.Exec(ctx, `UPDATE base_leads SET n = n + 1 WHERE key = ANY($1)`, keys)
			require.NoError(b, err)
			require.NoError(b, tx.Commit(ctx))
		}
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("claim/batch=100", func(b *testing.B) {
		s := benchStore(b)
		ctx := b.Context()
		p := s.Pool()
		_, err := p.Exec(ctx, `CREATE TABLE base_timers (id bigint PRIMARY KEY, due timestamptz);
			CREATE INDEX ON base_timers (due) WHERE due IS NOT NULL`)
		require.NoError(b, err)
		_, err = p.Exec(ctx, `INSERT INTO base_timers SELECT i, now() - interval '1 day' + i * interval '1 ms' FROM generate_series(1, $1::int) i`, b.N*100)
		require.NoError(b, err)
		_, err = p.Exec(ctx, `VACUUM ANALYZE base_timers`)
		require.NoError(b, err)
		b.ResetTimer()
		for range b.N {
			tx, err := p.Begin(ctx)
			require.NoError(b, err)
			_, err = tx.Exec(ctx, `UPDATE base_timers SET due = NULL WHERE id IN (
				SELECT id FROM base_timers WHERE due <= now() ORDER BY due LIMIT 100 FOR UPDATE SKIP LOCKED)`)
			require.NoError(b, err)
			require.NoError(b, tx.Commit(ctx))
		}
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "timers/s")
	})
}
