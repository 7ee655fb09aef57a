package postgres

import (
	"database/sql"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/nurture-oss/nurture/migrations"
)

func stdlibDB(s *Store) *sql.DB { return stdlib.OpenDBFromPool(s.pool) }

func newProvider(db *sql.DB) (*goose.Provider, error) {
	return migrations.NewProvider(db, migrations.Postgres, nil)
}
