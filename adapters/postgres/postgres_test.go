package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/store/storetest"
)

const defaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// testURL creates a uniquely named database for t, drops it when t ends,
// and returns its URL. It fails (not skips) when the server is unreachable,
// unless -short is given.
func testURL(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("PostgreSQL tests skipped with -short")
	}
	admin := os.Getenv("TEST_DATABASE_URL")
	if admin == "" {
		admin = defaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		tb.Fatalf("PostgreSQL unreachable at TEST_DATABASE_URL (default %s): %v\n"+
			"start PostgreSQL or set TEST_DATABASE_URL; use -short to skip database tests", defaultURL, err)
	}
	defer conn.Close(ctx)
	var buf [6]byte
	_, _ = rand.Read(buf[:])
	name := "nurture_test_" + hex.EncodeToString(buf[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop test database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	require.NoError(tb, err)
	u.Path = "/" + name
	return u.String()
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
