package app

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/adapters/sqlite"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/migrations"
)

// openedStore is a store plus what the operator surface needs beyond the
// store contract: a liveness ping and, for `migrate --status`, the
// database/sql handle and dialect of its migrations.
type openedStore struct {
	store.Store
	kind    string
	ping    func(ctx context.Context) error
	sqlDB   func() (*sql.DB, func(), error)
	dialect migrations.Dialect
}

// openStore opens the store the database URL names, chosen by scheme.
func openStore(ctx context.Context, rawURL string, log *slog.Logger) (*openedStore, error) {
	kind, arg, err := storeKind(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	switch kind {
	case "postgres":
		st, err := postgres.Open(ctx, arg, postgres.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", redactURL(rawURL), err)
		}
		return &openedStore{
			Store: st,
			kind:  kind,
			ping:  func(ctx context.Context) error { return st.Pool().Ping(ctx) },
			sqlDB: func() (*sql.DB, func(), error) {
				db := stdlib.OpenDBFromPool(st.Pool())
				return db, func() { _ = db.Close() }, nil
			},
			dialect: migrations.Postgres,
		}, nil
	case "sqlite":
		st, err := sqlite.Open(ctx, arg, sqlite.WithLogger(log))
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", rawURL, err)
		}
		return &openedStore{
			Store:   st,
			kind:    kind,
			ping:    func(ctx context.Context) error { return st.DB().PingContext(ctx) },
			sqlDB:   func() (*sql.DB, func(), error) { return st.DB(), func() {}, nil },
			dialect: migrations.SQLite,
		}, nil
	default:
		return nil, fmt.Errorf("open store: unhandled kind %q", kind)
	}
}
