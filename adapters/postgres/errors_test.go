package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/store"
)

func TestTranslate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		err     error
		wantErr error // nil: neither sentinel
	}{
		{"no rows", pgx.ErrNoRows, store.ErrNotFound},
		{"serialization", &pgconn.PgError{Code: "40001", Message: "could not serialize"}, store.ErrTransient},
		{"deadlock", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}, store.ErrTransient},
		{"admin shutdown", &pgconn.PgError{Code: "57P01", Message: "terminating connection"}, store.ErrTransient},
		{"connection failure", &pgconn.PgError{Code: "08006"}, store.ErrTransient},
		{"too many connections", &pgconn.PgError{Code: "53300"}, store.ErrTransient},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), store.ErrTransient},
		{"statement timeout", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, store.ErrTransient},
		{"disk full", &pgconn.PgError{Code: "53100", Message: "could not extend file"}, store.ErrTransient},
		{"out of memory", &pgconn.PgError{Code: "53200"}, store.ErrTransient},
		{"connection does not exist", &pgconn.PgError{Code: "08003"}, store.ErrTransient},
		{"NUL in a string", &pgconn.PgError{Code: "22P05", Message: "unsupported Unicode escape sequence"}, store.ErrInvalidData},
		{"numeric out of range", &pgconn.PgError{Code: "22003"}, store.ErrInvalidData},
		{"unique violation", &pgconn.PgError{Code: "23505", Message: "duplicate key"}, nil},
		{"syntax", &pgconn.PgError{Code: "42601", Message: "syntax error"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := translate("op key", tc.err)
			require.Error(t, got)
			require.Contains(t, got.Error(), "op key")
			var pgErr *pgconn.PgError
			require.False(t, errors.As(got, &pgErr), "driver error leaked: %#v", got)
			if tc.wantErr != nil {
				require.ErrorIs(t, got, tc.wantErr)
			} else {
				require.NotErrorIs(t, got, store.ErrTransient)
				require.NotErrorIs(t, got, store.ErrNotFound)
				require.NotErrorIs(t, got, store.ErrInvalidData)
			}
		})
	}
	require.ErrorIs(t, translate("op", context.Canceled), context.Canceled)
	require.NoError(t, translate("op", nil))
}
