// Package migrations holds Nurture's database schema as numbered SQL files,
// one directory per dialect (postgres/, sqlite/), embedded in the binary and
// applied with goose's Provider API (no global goose state).
//
// Version numbers are aligned across dialects: 00002_x.sql in postgres/ and
// 00002_x.sql in sqlite/ make the same change, so one version number
// describes the schema whatever the store. A test enforces the alignment.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Dialect names a directory of migrations.
type Dialect string

// Supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// TableName is the table goose records applied versions in.
const TableName = "goose_db_version"

// FS returns the migrations of one dialect.
func FS(d Dialect) (fs.FS, error) {
	switch d {
	case Postgres, SQLite:
		return fs.Sub(files, string(d))
	default:
		return nil, fmt.Errorf("migrations: unknown dialect %q", d)
	}
}

func gooseDialect(d Dialect) (goose.Dialect, error) {
	switch d {
	case Postgres:
		return goose.DialectPostgres, nil
	case SQLite:
		return goose.DialectSQLite3, nil
	default:
		return "", fmt.Errorf("migrations: unknown dialect %q", d)
	}
}

// NewProvider returns a goose provider for db's dialect. On PostgreSQL it
// holds a session advisory lock while migrating, so several processes may
// run `nurture migrate` at once. logger may be nil.
func NewProvider(db *sql.DB, d Dialect, logger *slog.Logger) (*goose.Provider, error) {
	fsys, err := FS(d)
	if err != nil {
		return nil, err
	}
	gd, err := gooseDialect(d)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	}
	if d == Postgres {
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("migrations: session locker: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("migrations: new provider: %w", err)
	}
	return p, nil
}

// Up applies every pending migration.
func Up(ctx context.Context, db *sql.DB, d Dialect, logger *slog.Logger) error {
	p, err := NewProvider(db, d, logger)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrations: up: %w", err)
	}
	return nil
}

// Versions returns the version the database is at (0 when no migration was
// ever applied) and the latest version this binary knows. It only reads: a
// database without the version table is at version 0.
func Versions(ctx context.Context, db *sql.DB, d Dialect) (current, latest int64, err error) {
	p, err := NewProvider(db, d, nil)
	if err != nil {
		return 0, 0, err
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		latest = srcs[len(srcs)-1].Version
	}
	gd, err := gooseDialect(d)
	if err != nil {
		return 0, 0, err
	}
	st, err := database.NewStore(gd, TableName)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: store: %w", err)
	}
	ext, ok := st.(database.StoreExtender)
	if !ok {
		return 0, 0, errors.New("migrations: goose store cannot check for its table")
	}
	exists, err := ext.TableExists(ctx, db)
	if errors.Is(err, errors.ErrUnsupported) && d == SQLite {
		var n int
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, TableName).Scan(&n)
		exists = n > 0
	}
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: version table: %w", err)
	}
	if !exists {
		return 0, latest, nil
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("migrations: current version: %w", err)
	}
	return current, latest, nil
}
