package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/sqlite"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/store/storetest"
)

// inspected adds storetest.Inspector to the store.
type inspected struct{ *sqlite.Store }

func fromMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

func (s inspected) InspectLead(ctx context.Context, key string) (storetest.LeadRow, error) {
	var r storetest.LeadRow
	var next sql.NullInt64
	err := s.DB().QueryRowContext(ctx, `SELECT email, status, owner, score, next_run_at FROM leads WHERE key = ?`, key).
		Scan(&r.Email, &r.Status, &r.Owner, &r.Score, &next)
	r.NextRunAt = fromMicros(next)
	return r, err
}

func (s inspected) InspectEnrollments(ctx context.Context, leadKey string) ([]storetest.EnrollmentRow, error) {
	rows, err := s.DB().QueryContext(ctx, `SELECT id, sequence, version, step, status, reason, next_run_at, started_at, ended_at
		FROM enrollments WHERE lead_key = ? ORDER BY id`, leadKey)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storetest.EnrollmentRow
	for rows.Next() {
		var r storetest.EnrollmentRow
		var next, started, ended sql.NullInt64
		if err := rows.Scan(&r.ID, &r.Sequence, &r.Version, &r.Step, &r.Status, &r.Reason, &next, &started, &ended); err != nil {
			return nil, err
		}
		r.NextRunAt, r.StartedAt, r.EndedAt = fromMicros(next), fromMicros(started), fromMicros(ended)
		out = append(out, r)
	}
	return out, rows.Err()
}

func newStore(t *testing.T) store.Store {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nurture.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return inspected{s}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newStore, storetest.SingleWriter())
}

func TestOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{"plain path", filepath.Join(dir, "a.db"), false},
		{"sqlite URL", "sqlite://" + filepath.Join(dir, "b.db"), false},
		{"memory", ":memory:", true},
		{"empty", "", true},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "c.db"), true},
		{"odd characters", filepath.Join(dir, "with space %41 & more.db"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := sqlite.Open(t.Context(), tc.path)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.NoError(t, s.Close())
			require.FileExists(t, strings.TrimPrefix(tc.path, "sqlite://"))
		})
	}
}

// TestReopen: state survives closing and reopening the file (nurture dev
// restarted on the same data directory).
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nurture.db")
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		ls, err := tx.LockLeads(ctx, []string{"kept"}, storetest.Now)
		if err != nil {
			return err
		}
		ls["kept"].Email = "kept@example.com"
		return tx.SaveLeads(ctx, []*engine.Lead{ls["kept"]})
	}))
	require.NoError(t, s.Close())

	s, err = sqlite.Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CheckSchema(ctx))
	l, err := s.Lead(ctx, "kept")
	require.NoError(t, err)
	require.Equal(t, "kept@example.com", l.Email)
}
