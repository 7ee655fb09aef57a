// Package testdb gives a test its own PostgreSQL database: New creates a
// uniquely named database on the server at TEST_DATABASE_URL (default
// DefaultURL), drops it when the test ends and returns its URL. PostgreSQL
// being unreachable fails the test, unless -short is given, which skips it.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the server used when TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server tests create their databases on.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// New creates an empty, uniquely named database for tb, drops it (closing
// any connection still open to it) when tb ends, and returns its URL.
// Migrating it is the caller's business. With -short, tb is skipped; an
// unreachable server fails tb.
func New(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs PostgreSQL (TEST_DATABASE_URL); skipped with -short")
	}
	admin := AdminURL()
	u, drop, err := create(context.Background(), admin)
	if err != nil {
		tb.Fatalf("%v\nstart PostgreSQL or set TEST_DATABASE_URL; use -short to skip database tests", err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Errorf("%v", err)
		}
	})
	return u
}

// create makes the database on admin and returns its URL and how to drop it.
func create(ctx context.Context, admin string) (string, func() error, error) {
	base, err := url.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("TEST_DATABASE_URL is not a URL: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("PostgreSQL unreachable at TEST_DATABASE_URL %s: %w", base.Redacted(), err)
	}
	defer conn.Close(context.Background())
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "nurture_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return "", nil, fmt.Errorf("create test database %s: %w", name, err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("drop test database %s: %w", name, err)
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop test database %s: %w", name, err)
		}
		return nil
	}
	u := *base
	u.Path = "/" + name
	return u.String(), drop, nil
}
