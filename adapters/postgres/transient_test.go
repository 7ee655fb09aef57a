package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/testdb"
)

// scratchURL creates a database for t (dropped at the end).
func scratchURL(t *testing.T) string {
	t.Helper()
	return testdb.New(t)
}

// scratchStore opens a migrated store on a scratch database, closed at
// the end of t.
func scratchStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), scratchURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	require.NoError(t, s.Migrate(t.Context()))
	return s
}

// TestTransientOnKilledConnection: a transaction whose server backend is
// terminated mid-flight fails with store.ErrTransient, and the store keeps
// working afterwards (the pool replaces the connection).
func TestTransientOnKilledConnection(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := scratchStore(t)

	now := time.Now().UTC().Truncate(time.Microsecond)
	err := s.InTx(ctx, func(ctx context.Context, stx store.Tx) error {
		var pid int32
		if err := stx.(*tx).tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			return err
		}
		if _, err := s.pool.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			return err
		}
		_, err := stx.MarkEvents(ctx, []string{"ev-1"}, now)
		return err
	})
	require.ErrorIs(t, err, store.ErrTransient)

	// The retry succeeds on a fresh connection, and the event was not
	// recorded by the killed transaction.
	require.NoError(t, s.InTx(ctx, func(ctx context.Context, stx store.Tx) error {
		fresh, err := stx.MarkEvents(ctx, []string{"ev-1"}, now)
		if err == nil {
			require.True(t, fresh["ev-1"])
		}
		return err
	}))
}

// TestOpenUnreachable: an unreachable server is a transient error, and
// the URL's password is not echoed.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := Open(ctx, "postgres://u:sekrit@127.0.0.1:1/db?sslmode=disable&connect_timeout=2")
	require.ErrorIs(t, err, store.ErrTransient)
	require.NotContains(t, err.Error(), "sekrit")

	_, err = Open(ctx, "postgres://u:sekrit@[bad")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "sekrit")
}

// TestMigrateDown: the PostgreSQL migrations revert cleanly.
func TestMigrateDown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := scratchStore(t)
	db := stdlibDB(s)
	defer db.Close()
	p, err := newProvider(db)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)
	require.ErrorIs(t, s.CheckSchema(ctx), store.ErrSchemaBehind)
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.CheckSchema(ctx))
}

// TestMigrateConcurrent: several processes running `nurture migrate` at
// once serialize on goose's advisory lock; all succeed.
func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := scratchURL(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := Open(ctx, url)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			errs <- s.Migrate(ctx)
		}()
	}
	for range 3 {
		require.NoError(t, <-errs)
	}
	s, err := Open(ctx, url)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CheckSchema(ctx))
}
