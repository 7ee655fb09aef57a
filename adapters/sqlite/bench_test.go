package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/sqlite"
	"github.com/nurture-oss/nurture/internal/store/storetest"
)

func benchStore(b *testing.B) *sqlite.Store {
	s, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	require.NoError(b, s.Migrate(b.Context()))
	return s
}

// BenchmarkApplyBatch: LockLeads+MarkEvents+SaveLeads+AppendHistory, 500
// events on 500 leads per transaction (one writer).
func BenchmarkApplyBatch(b *testing.B) {
	storetest.BenchApplyBatch(b, benchStore(b), 500, 1)
}

// BenchmarkClaimDueLeads: claim 500 due leads and save them with their
// timers moved, per transaction.
func BenchmarkClaimDueLeads(b *testing.B) {
	storetest.BenchClaimDue(b, benchStore(b), 500, 1)
}
