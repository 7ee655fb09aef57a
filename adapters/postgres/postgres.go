// Package postgres is the reference store: store.Store on PostgreSQL through
// pgx/v5 (pgxpool).
//
// Every transaction method handles a whole batch in one round trip: batches
// travel as array parameters expanded with unnest, and methods that need
// two statements send them as one pgx.Batch. Leads are locked in key order
// (deadlock-free across workers); due timers and outbox items are claimed
// with FOR UPDATE SKIP LOCKED, so any number of workers can share the
// database. Driver errors never leave the package untranslated: retryable
// ones wrap store.ErrTransient, missing rows store.ErrNotFound.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/migrations"
)

// Store is store.Store on PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	maxConns int32
}

// WithLogger sets the logger (migrations log through it). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxConns caps the connection pool (default: pgxpool's, or the URL's
// pool_max_conns).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// Open connects to the database at url (postgres://…) and checks that it
// answers. It does not migrate or check the schema: see Migrate and
// CheckSchema.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The message may contain the password: do not echo it.
		return nil, errors.New("postgres: open: invalid database URL")
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, translate("open", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, translate("open: ping", err)
	}
	return &Store{pool: pool, logger: o.logger}, nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Pool exposes the connection pool (for tests and tools).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// InTx runs fn in one READ COMMITTED transaction and commits when fn
// returns nil. fn's own error is returned unchanged (after rollback).
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	ptx, err := s.pool.Begin(ctx)
	if err != nil {
		return translate("begin", err)
	}
	// Roll back on error and on panic (a rollback after commit is a no-op).
	defer func() { _ = ptx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(ctx, &tx{tx: ptx}); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return translate("commit", err)
	}
	return nil
}

// Migrate applies pending migrations (under an advisory lock, so concurrent
// migrators are safe).
func (s *Store) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	if err := migrations.Up(ctx, db, migrations.Postgres, s.logger); err != nil {
		return translate("migrate", err)
	}
	return nil
}

// CheckSchema returns store.ErrSchemaBehind when migrations are pending.
func (s *Store) CheckSchema(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	cur, latest, err := migrations.Versions(ctx, db, migrations.Postgres)
	if err != nil {
		return translate("check schema", err)
	}
	if cur < latest {
		return fmt.Errorf("schema at version %d, this binary needs %d: %w", cur, latest, store.ErrSchemaBehind)
	}
	return nil
}

// scanner is pgx.Row / pgx.Rows.
type scanner interface{ Scan(dest ...any) error }

func collect[T any](rows pgx.Rows, op string, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}
