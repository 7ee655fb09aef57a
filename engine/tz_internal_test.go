package engine

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"
)

var testParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// wallMatches reports whether the 5-field spec matches the wall clock of t
// (in t's location).
func wallMatches(s *cron.SpecSchedule, t time.Time) bool {
	if 1<<uint(t.Minute())&s.Minute == 0 || 1<<uint(t.Hour())&s.Hour == 0 || 1<<uint(t.Month())&s.Month == 0 {
		return false
	}
	domMatch := 1<<uint(t.Day())&s.Dom > 0
	dowMatch := 1<<uint(t.Weekday())&s.Dow > 0
	if s.Dom&(1<<63) > 0 || s.Dow&(1<<63) > 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// reference is a slow, obviously correct nextLocal: walk minute by minute
// over absolute time; a gap whose skipped wall-clock minutes contain a
// match fires at the first instant after the gap; the second pass of a
// repeated hour never fires.
func reference(s *cron.SpecSchedule, after time.Time, loc *time.Location) time.Time {
	t := after.In(loc).Truncate(time.Minute).Add(time.Minute)
	for range 60 * 24 * 400 {
		prev := t.Add(-time.Minute)
		_, po := prev.Zone()
		_, co := t.Zone()
		if co > po { // t is the first instant after a gap: did a skipped minute match?
			fz := time.FixedZone("", po)
			for w := prev.In(fz).Add(time.Minute); w.Before(t.In(fz).Add(time.Duration(co-po) * time.Second)); w = w.Add(time.Minute) {
				if wallMatches(s, w) && t.After(after) {
					return t
				}
			}
		}
		if _, _, rep := repeated(t); !rep && wallMatches(s, t) && t.After(after) {
			return t
		}
		t = t.Add(time.Minute)
	}
	return time.Time{}
}

func TestNextLocalMatchesReference(t *testing.T) {
	t.Parallel()
	specs := []string{"0 9 * * *", "30 2 * * *", "30 1 * * *", "*/15 1-3 * * *", "* 22-23,0-5 * * *", "0 2 * * SUN", "0 0 * * *", "59 1 * * *", "0 3 * * *", "5 2,3 * * *"}
	zones := []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo", "UTC"}
	starts := []string{"2026-03-07T12:00:00Z", "2026-03-08T06:10:00Z", "2026-03-28T23:30:00Z", "2026-03-29T00:59:00Z", "2026-10-24T20:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T00:45:00Z", "2026-10-25T01:15:00Z", "2026-11-01T05:10:00Z", "2026-11-01T05:45:00Z", "2026-11-01T06:20:00Z", "2026-04-04T15:20:00Z", "2018-11-03T02:30:00Z"}
	for _, z := range zones {
		loc, err := time.LoadLocation(z)
		require.NoError(t, err)
		for _, spec := range specs {
			s, err := testParser.Parse(spec)
			require.NoError(t, err)
			ss := s.(*cron.SpecSchedule)
			for _, st := range starts {
				after, _ := time.Parse(time.RFC3339, st)
				// Walk several consecutive firings.
				for i := range 6 {
					want := reference(ss, after, loc)
					got := nextLocal(s, after, loc)
					require.Truef(t, want.Equal(got), "%s %q after %s (#%d): got %s want %s", z, spec, after.In(loc), i, got, want)
					after = got
				}
			}
		}
	}
}

// TestRobfigRawDST pins what the raw SpecSchedule does in a zone with DST,
// which is why nextLocal never asks it to evaluate one.
func TestRobfigRawDST(t *testing.T) {
	t.Parallel()
	ny, _ := time.LoadLocation("America/New_York")
	s, _ := testParser.Parse("30 2 * * *")
	// 02:30 does not exist on 2026-03-08: robfig skips the day.
	require.Equal(t, time.Date(2026, 3, 9, 2, 30, 0, 0, ny), s.Next(time.Date(2026, 3, 8, 0, 0, 0, 0, ny)))
	require.Equal(t, time.Date(2026, 3, 8, 3, 0, 0, 0, ny), nextLocal(s, time.Date(2026, 3, 8, 0, 0, 0, 0, ny), ny))
	// 01:30 happens twice on 2026-11-01: robfig fires at both.
	s2, _ := testParser.Parse("30 1 * * *")
	first := s2.Next(time.Date(2026, 11, 1, 0, 0, 0, 0, ny))
	second := s2.Next(first)
	require.Equal(t, time.Hour, second.Sub(first))
	require.Equal(t, first, nextLocal(s2, time.Date(2026, 11, 1, 0, 0, 0, 0, ny), ny))
	require.Equal(t, first.Add(25*time.Hour), nextLocal(s2, first, ny))
	// Lord Howe shifts by 30 minutes: robfig skips a whole day.
	lh, _ := time.LoadLocation("Australia/Lord_Howe")
	s3, _ := testParser.Parse("0 9 * * *")
	after := time.Date(2026, 4, 4, 15, 20, 0, 0, time.UTC) // 01:50 local, second pass
	require.Equal(t, 6, s3.Next(after.In(lh)).Day())
	require.Equal(t, 5, nextLocal(s3, after, lh).Day())
}

// TestNextLocalDenseAroundTransitions starts the search every 47 minutes
// (and one nanosecond before whole minutes, as the window check does)
// across two days around each 2026 transition in Berlin and New York.
func TestNextLocalDenseAroundTransitions(t *testing.T) {
	t.Parallel()
	specs := []string{"0 9 * * *", "30 2 * * *", "30 1 * * *", "* 2 * * *", "*/10 1-2 * * *", "* 22-23,0-5 * * *"}
	cases := map[string][]string{
		"Europe/Berlin":    {"2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z"},
		"America/New_York": {"2026-03-07T18:00:00Z", "2026-10-31T18:00:00Z"},
	}
	for z, starts := range cases {
		loc, err := time.LoadLocation(z)
		require.NoError(t, err)
		for _, spec := range specs {
			s, err := testParser.Parse(spec)
			require.NoError(t, err)
			ss := s.(*cron.SpecSchedule)
			for _, st := range starts {
				t0, _ := time.Parse(time.RFC3339, st)
				for after := t0; after.Before(t0.Add(48 * time.Hour)); after = after.Add(47 * time.Minute) {
					for _, a := range []time.Time{after, after.Truncate(time.Minute).Add(-time.Nanosecond)} {
						want := reference(ss, a, loc)
						got := nextLocal(s, a, loc)
						require.Truef(t, want.Equal(got), "%s %q after %s: got %s want %s", z, spec, a.In(loc), got, want)
					}
				}
			}
		}
	}
}

func TestLocalTime(t *testing.T) {
	t.Parallel()
	ny, _ := time.LoadLocation("America/New_York")
	// In the gap: the first instant after it.
	require.Equal(t, time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC), localTime(2026, 3, 8, 2, 30, 0, 0, ny).UTC())
	// Doubled: the first occurrence (EDT).
	require.Equal(t, time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC), localTime(2026, 11, 1, 1, 30, 0, 0, ny).UTC())
	require.Equal(t, time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC), localTime(2026, 11, 1, 9, 0, 0, 0, ny).UTC())
}
