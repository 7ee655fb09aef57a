// Package sqlite is store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go), for `nurture dev` and single-process
// installations. It passes the same conformance suite as the PostgreSQL
// store.
//
// Concurrency model: SQLite allows one writer at a time, so the store owns
// exactly one write connection (a database/sql pool of size one, with
// BEGIN IMMEDIATE transactions) and every write transaction queues for it.
// Readers use a separate pool and, thanks to WAL, never block the writer
// nor wait for it. Because at most one write transaction runs at any time,
// claims need no row locks: where PostgreSQL uses FOR UPDATE SKIP LOCKED,
// this store simply selects, and the next claimer (queued behind the
// writer) sees the committed result. The database file must therefore be
// used by one process at a time; busy_timeout covers brief overlaps such as
// a second process running `nurture migrate`.
//
// Do not call Store methods from inside an InTx function: the writer
// connection is taken, and the call would wait for itself.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"

	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/migrations"
)

// Store is store.Store on SQLite.
type Store struct {
	w, r   *sql.DB
	logger *slog.Logger

	mu     sync.Mutex
	warmed bool
	stmts  map[string]*sql.Stmt // prepared on the writer connection
}

var _ store.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	synchronous string
}

// WithLogger sets the logger (migrations log through it). Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithSynchronous sets PRAGMA synchronous (default FULL: a committed
// transaction survives power loss, which the exactly-once promise relies
// on; NORMAL is faster and survives process crashes only).
func WithSynchronous(mode string) Option { return func(o *options) { o.synchronous = mode } }

// Open opens (creating if needed) the database file at path. A
// "sqlite://" prefix is accepted and removed. It does not migrate.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{synchronous: "FULL"}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	path = strings.TrimPrefix(path, "sqlite://")
	if path == "" || path == ":memory:" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: open %q: need a file path", path)
	}
	base := path + "?_busy_timeout=10000&_journal_mode=WAL&_foreign_keys=1"
	w, err := sql.Open("sqlite", base+"&_synchronous="+o.synchronous+"&_txlock=immediate")
	if err != nil {
		return nil, translate("open", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, translate("open "+path, err)
	}
	r, err := sql.Open("sqlite", base+"&_query_only=1")
	if err != nil {
		w.Close()
		return nil, translate("open", err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, translate("open "+path, err)
	}
	return &Store{w: w, r: r, logger: o.logger, stmts: map[string]*sql.Stmt{}}, nil
}

// Close closes both pools.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		_ = st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return errors.Join(s.r.Close(), s.w.Close())
}

// DB exposes the reader pool (for tests and tools).
func (s *Store) DB() *sql.DB { return s.r }

// hotQueries are prepared once on the writer connection.
var hotQueries = []string{
	qLockInsert, qLeadState, qMarkEvent, qSaveLead, qUpsertEnrollment,
	qAppendHistory, qEnqueue, qCompleteOutbox,
}

// warm prepares the hot statements on the writer connection, once the
// schema exists. It must run outside a write transaction: the transaction
// holds the only writer connection.
func (s *Store) warm(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warmed {
		return
	}
	stmts := make(map[string]*sql.Stmt, len(hotQueries))
	for _, q := range hotQueries {
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil { // schema not there yet: try again next time
			for _, st := range stmts {
				_ = st.Close()
			}
			return
		}
		stmts[q] = st
	}
	s.stmts, s.warmed = stmts, true
}

// stmt returns q bound to tx: the statement prepared by warm, or one
// prepared for this transaction only.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	s.mu.Lock()
	st, ok := s.stmts[q]
	s.mu.Unlock()
	if ok {
		return tx.StmtContext(ctx, st), nil
	}
	return tx.PrepareContext(ctx, q)
}

// InTx runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits when fn returns nil. fn's own error is
// returned unchanged (after rollback).
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	s.warm(ctx)
	stx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate("begin", err)
	}
	// Roll back on error and on panic (after commit it is a no-op).
	defer func() { _ = stx.Rollback() }()
	if err := fn(ctx, &tx{tx: stx, s: s}); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return translate("commit", err)
	}
	return nil
}

// writeTx runs fn in a write transaction with translated errors.
func (s *Store) writeTx(ctx context.Context, op string, fn func(tx *sql.Tx) error) error {
	s.warm(ctx)
	stx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(op+": begin", err)
	}
	// Roll back on error and on panic (after commit it is a no-op).
	defer func() { _ = stx.Rollback() }()
	if err := fn(stx); err != nil {
		return err
	}
	if err := stx.Commit(); err != nil {
		return translate(op+": commit", err)
	}
	return nil
}

// Migrate applies pending migrations.
func (s *Store) Migrate(ctx context.Context) error {
	if err := migrations.Up(ctx, s.w, migrations.SQLite, s.logger); err != nil {
		return translate("migrate", err)
	}
	return nil
}

// CheckSchema returns store.ErrSchemaBehind when migrations are pending.
func (s *Store) CheckSchema(ctx context.Context) error {
	cur, latest, err := migrations.Versions(ctx, s.r, migrations.SQLite)
	if err != nil {
		return translate("check schema", err)
	}
	if cur < latest {
		return fmt.Errorf("schema at version %d, this binary needs %d: %w", cur, latest, store.ErrSchemaBehind)
	}
	return nil
}

// translate turns a driver error into a store error: busy/locked wrap
// store.ErrTransient, no rows wraps store.ErrNotFound, context errors pass
// through, anything else keeps its message but not its driver type.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case transient(err):
		return fmt.Errorf("%s: %w: %s", op, store.ErrTransient, err.Error())
	}
	return fmt.Errorf("%s: %s", op, err.Error())
}

func transient(err error) bool {
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED, sqlite3lib.SQLITE_IOERR,
			sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_NOMEM, sqlite3lib.SQLITE_PROTOCOL:
			return true
		}
		return false
	}
	return errors.Is(err, sql.ErrConnDone)
}
