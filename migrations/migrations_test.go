package migrations_test

import (
	"database/sql"
	"io/fs"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/nurture-oss/nurture/migrations"
)

var fileName = regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)

// TestAligned: both dialects have the same numbered files.
func TestAligned(t *testing.T) {
	t.Parallel()
	names := map[migrations.Dialect][]string{}
	for _, d := range []migrations.Dialect{migrations.Postgres, migrations.SQLite} {
		fsys, err := migrations.FS(d)
		require.NoError(t, err)
		entries, err := fs.ReadDir(fsys, ".")
		require.NoError(t, err)
		require.NotEmpty(t, entries, d)
		for _, e := range entries {
			require.Regexp(t, fileName, e.Name(), "%s: migration file name", d)
			names[d] = append(names[d], e.Name())
		}
	}
	require.Equal(t, names[migrations.Postgres], names[migrations.SQLite], "dialects must carry the same versions")
	_, err := migrations.FS("oracle")
	require.Error(t, err)
}

// TestSQLiteUpDown applies, reverts and reapplies the SQLite migrations
// (PostgreSQL's are applied by the postgres adapter's tests).
func TestSQLiteUpDown(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db"))
	require.NoError(t, err)
	defer db.Close()

	cur, latest, err := migrations.Versions(ctx, db, migrations.SQLite)
	require.NoError(t, err)
	require.Zero(t, cur)
	require.Positive(t, latest)

	require.NoError(t, migrations.Up(ctx, db, migrations.SQLite, nil))
	cur, _, err = migrations.Versions(ctx, db, migrations.SQLite)
	require.NoError(t, err)
	require.Equal(t, latest, cur)

	p, err := migrations.NewProvider(db, migrations.SQLite, nil)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)
	cur, _, err = migrations.Versions(ctx, db, migrations.SQLite)
	require.NoError(t, err)
	require.Zero(t, cur)
	var tables int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'leads'`).Scan(&tables))
	require.Zero(t, tables, "down removed the tables")

	require.NoError(t, migrations.Up(ctx, db, migrations.SQLite, nil))
}
