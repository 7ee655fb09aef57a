package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/store/storetest"
	"github.com/nurture-oss/nurture/internal/testdb"
)

// testURL creates a uniquely named database for t, drops it when t ends,
// and returns its URL. It fails (not skips) when the server is unreachable,
// unless -short is given.
func testURL(tb testing.TB) string {
	tb.Helper()
	return testdb.New(tb)
}

// inspected adds storetest.Inspector to the store.
type inspected struct{ *postgres.Store }

func (s inspected) InspectLead(ctx context.Context, key string) (storetest.LeadRow, error) {
	var r storetest.LeadRow
	var next pgtype.Timestamptz
	err := s.Pool().QueryRow(ctx, `SELECT email, status, owner, score, next_run_at FROM leads WHERE key = $1`, key).
		Scan(&r.Email, &r.Status, &r.Owner, &r.Score, &next)
	if next.Valid {
		r.NextRunAt = next.Time
	}
	return r, err
}

func (s inspected) InspectEnrollments(ctx context.Context, leadKey string) ([]storetest.EnrollmentRow, error) {
	rows, err := s.Pool().Query(ctx, `SELECT id, sequence, version, step, status, reason, next_run_at, started_at, ended_at
		FROM enrollments WHERE lead_key = $1 ORDER BY id`, leadKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storetest.EnrollmentRow
	for rows.Next() {
		var r storetest.EnrollmentRow
		var next, started, ended pgtype.Timestamptz
		if err := rows.Scan(&r.ID, &r.Sequence, &r.Version, &r.Step, &r.Status, &r.Reason, &next, &started, &ended); err != nil {
			return nil, err
		}
		r.NextRunAt, r.StartedAt, r.EndedAt = next.Time, started.Time, ended.Time
		out = append(out, r)
	}
	return out, rows.Err()
}

func newStore(t *testing.T) store.Store {
	s, err := postgres.Open(t.Context(), testURL(t), postgres.WithMaxConns(8))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return inspected{s}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newStore)
}
