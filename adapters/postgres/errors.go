package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nurture-oss/nurture/internal/store"
)

// translate turns a driver error into a store error: retryable ones wrap
// store.ErrTransient, no rows wraps store.ErrNotFound, context errors pass
// through, and anything else keeps its message but not its driver type.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case transient(err):
		return fmt.Errorf("%s: %w: %s", op, store.ErrTransient, err.Error())
	case dataException(err):
		return fmt.Errorf("%s: %w: %s", op, store.ErrInvalidData, err.Error())
	}
	return fmt.Errorf("%s: %s", op, err.Error())
}

// dataException reports a class 22 error: PostgreSQL refused a value
// (\u0000 in a string, a number out of range, invalid text). The same
// input fails again however often it is retried.
func dataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// transient reports whether retrying the transaction may succeed.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", // serialization_failure
			"40P01", // deadlock_detected
			"55P03", // lock_not_available
			"57014", // query_canceled (statement_timeout, pg_cancel_backend)
			"57P01", // admin_shutdown
			"57P02", // crash_shutdown
			"57P03", // cannot_connect_now
			"57P04", // database_dropped
			"58000", // system_error
			"58030": // io_error
			return true
		}
		// Class 08: connection exception; class 53: insufficient resources
		// (disk full, out of memory, too many connections).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "53")
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	var netErr net.Error // includes *net.OpError
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	// Errors pgx reports after the connection died mid-statement.
	msg := err.Error()
	return strings.Contains(msg, "conn closed") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "unexpected EOF")
}
