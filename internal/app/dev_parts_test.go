package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/examples"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/sequences"
)

func TestDemoMorning(t *testing.T) {
	t.Parallel()
	b, err := sequences.LoadFS(examples.FS)
	require.NoError(t, err)
	tests := []struct {
		name string
		now  time.Time
		want time.Time
	}{
		{"monday night: tuesday", time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 6, 0, 0, 0, time.UTC)},
		{"thursday: skip friday and the weekend", time.Date(2026, 3, 5, 1, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 6, 0, 0, 0, time.UTC)},
		{"thanksgiving week: the holidays are skipped", time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC), time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)},
		{"christmas: skip 25th and 26th", time.Date(2026, 12, 24, 2, 0, 0, 0, time.UTC), time.Date(2026, 12, 28, 6, 0, 0, 0, time.UTC)},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, demoMorning(tc.now, b.Calendars), tc.name)
	}
}

func TestDevClock(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "clock")
	first := time.Now().Add(72 * time.Hour).UTC()
	c, err := newDevClock(path, 3600, first)
	require.NoError(t, err)
	n1 := c.Now()
	require.False(t, n1.Before(first), "a fresh clock starts at first")
	time.Sleep(20 * time.Millisecond)
	require.GreaterOrEqual(t, c.Now().Sub(n1), 60*time.Second, "an hour per second")
	require.NoError(t, c.save())

	// A restart resumes where the saved clock stopped, even at speed 1
	// and with another "first".
	c2, err := newDevClock(path, 1, time.Time{})
	require.NoError(t, err)
	require.False(t, c2.Now().Before(n1.Add(60*time.Second)))

	// A clock saved in the past never moves time backwards.
	require.NoError(t, os.WriteFile(path, []byte("2001-01-01T00:00:00Z\n"), 0o600))
	c3, err := newDevClock(path, 1, time.Time{})
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), c3.Now(), time.Second)

	require.NoError(t, os.WriteFile(path, []byte("yesterday"), 0o600))
	_, err = newDevClock(path, 1, time.Time{})
	require.Error(t, err)
}

func TestLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.5:80": false, "bad": false,
	} {
		require.Equal(t, want, loopback(addr), addr)
	}
}

type oneLead map[string]*engine.Lead

func (o oneLead) Lead(_ context.Context, key string) (*engine.Lead, error) {
	if l, ok := o[key]; ok {
		return l, nil
	}
	return nil, store.ErrNotFound
}

func TestConsoleLines(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	leads := oneLead{"lead-7": {Key: "lead-7", Traits: map[string]any{"first_name": "Ana", "timezone": "Europe/Berlin"}}}
	c := newConsole(&out, leads, []engine.Rep{{ID: "ben", Name: "Ben Carter"}})
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	c.Observe("lead-7", at, []engine.Effect{
		engine.Enrolled{Sequence: "trial-onboarding"},
		engine.SendEmail{Template: "trial-welcome", Sequence: "trial-onboarding", Step: "welcome"},
		engine.Waiting{Sequence: "trial-onboarding", Step: "pause", Reason: "wait", Until: at.Add(time.Hour)},
		&engine.ScoreChanged{Rule: "email-clicked", Delta: 5, Score: 27.5},
		engine.Escalated{Rep: "ben", Attempt: 1, Score: 101, Reason: "territory=amer"},
		engine.Exited{Sequence: "trial-onboarding", Step: "await", Reason: "escalated"},
	})
	c.Observe("lead-9", at, []engine.Effect{engine.Completed{Sequence: "webinar-follow-up"}})
	want := []string{
		"Mar 02 09:00 CET  lead-7 (Ana)         → enrolled in trial-onboarding",
		"Mar 02 09:00 CET  lead-7 (Ana)         ✉ trial-welcome  trial-onboarding/welcome",
		"Mar 02 09:00 CET  lead-7 (Ana)         ★ score +5 → 27.5  (email-clicked)",
		"Mar 02 09:00 CET  lead-7 (Ana)         🔥 escalated to Ben Carter at score 101: territory=amer",
		"Mar 02 09:00 CET  lead-7 (Ana)         ← left trial-onboarding at await (escalated)",
		"Mar 02 08:00 UTC  lead-9               ✓ completed webinar-follow-up",
	}
	require.Equal(t, want, strings.Split(strings.TrimSpace(out.String()), "\n"))
}
