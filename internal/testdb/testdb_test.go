package testdb

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestNewCreatesAndDrops(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("use", func(t *testing.T) {
		u := New(t)
		ctx := context.Background()
		c, err := pgx.Connect(ctx, u)
		require.NoError(t, err)
		defer c.Close(ctx)
		require.NoError(t, c.QueryRow(ctx, "SELECT current_database()").Scan(&name))
		require.Regexp(t, `^nurture_test_[0-9a-f]{16}$`, name)
		other := New(t)
		require.NotEqual(t, u, other, "every call gets its own database")
	})
	ctx := context.Background()
	c, err := pgx.Connect(ctx, AdminURL())
	require.NoError(t, err)
	defer c.Close(ctx)
	var n int
	require.NoError(t, c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n))
	require.Zero(t, n, "the database is dropped when the test ends")
}

func TestUnreachableIsAnError(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	_, _, err = create(context.Background(), "postgres://postgres:hunter2@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	require.ErrorContains(t, err, "PostgreSQL unreachable at TEST_DATABASE_URL")
	require.NotContains(t, err.Error(), "hunter2", "the password is not printed")
}
