package simulate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

// scriptEngine is a stand-in engine for testing the virtual clock and queue
// alone (the real engine is exercised by the golden tests). Event types:
//
//	"in:<dur>"   wake me after dur (replaces any pending wake-up)
//	"every:<dur>" wake me every dur, forever
//	"stuck"      wake me now, and stay due after every wake-up
//	"bad"        rejected (dead letter)
type scriptEngine struct {
	every map[string]time.Duration
	stuck map[string]bool
}

func (s *scriptEngine) Apply(l *engine.Lead, in engine.Input) ([]engine.Effect, error) {
	if in.Event == nil {
		switch {
		case s.stuck[l.Key]:
			l.NextRunAt = in.Now
		case s.every[l.Key] > 0:
			l.NextRunAt = in.Now.Add(s.every[l.Key])
		default:
			l.NextRunAt = time.Time{}
		}
		return []engine.Effect{engine.Ignored{Reason: "tick"}}, nil
	}
	typ := in.Event.Type
	switch {
	case typ == "bad":
		return nil, fmt.Errorf("apply: %w", engine.ErrInvalidEvent)
	case typ == "stuck":
		s.stuck[l.Key] = true
		l.NextRunAt = in.Now
	case strings.HasPrefix(typ, "in:"):
		d, _ := time.ParseDuration(strings.TrimPrefix(typ, "in:"))
		l.NextRunAt = in.Now.Add(d)
	case strings.HasPrefix(typ, "every:"):
		d, _ := time.ParseDuration(strings.TrimPrefix(typ, "every:"))
		s.every[l.Key] = d
		l.NextRunAt = in.Now.Add(d)
	}
	return []engine.Effect{engine.Waiting{Until: l.NextRunAt, Reason: typ}}, nil
}

type queueRun struct {
	lines []string
	sum   *Summary
	err   error
	prog  []float64
}

func runScript(t *testing.T, src string) queueRun {
	t.Helper()
	sc, err := Parse("q.yaml", []byte(src))
	require.NoError(t, err)
	var out queueRun
	eng := &scriptEngine{every: map[string]time.Duration{}, stuck: map[string]bool{}}
	opts := Options{Progress: func(f float64) { out.prog = append(out.prog, f) }}
	out.sum, out.err = run(context.Background(), eng, &engine.Content{}, sc, &engine.Desk{}, opts, func(e *Entry) error {
		line := e.At.Format("02 15:04") + " " + e.Lead + " " + e.Action
		if e.Action == "ignored" {
			line += " " + e.Reason
		} else if e.Event != "" {
			line += " " + e.Event
		}
		out.lines = append(out.lines, line)
		return nil
	})
	return out
}

func TestQueueOrder(t *testing.T) {
	t.Parallel()
	// At 10:00: scripted events first (file order: L2 then L1), then the
	// timers due at 10:00 by lead id (L1, then L2).
	got := runScript(t, `start: 2026-03-02T08:00:00Z
until: 2026-03-02T12:00:00Z
leads: [{id: L2}, {id: L1}]
events:
  - {at: +0h, lead: L2, type: "in:2h"}
  - {at: +0h, lead: L1, type: "in:2h"}
  - {at: +2h, lead: L2, type: note}
  - {at: +2h, lead: L1, type: note}
`)
	require.NoError(t, got.err)
	require.Equal(t, []string{
		"02 08:00 L2 event in:2h", "02 08:00 L2 waiting in:2h",
		"02 08:00 L1 event in:2h", "02 08:00 L1 waiting in:2h",
		"02 10:00 L2 event note", "02 10:00 L2 waiting note",
		"02 10:00 L1 event note", "02 10:00 L1 waiting note",
		"02 10:00 L1 ignored tick", "02 10:00 L2 ignored tick",
	}, got.lines)
	require.Equal(t, 4, got.sum.Events)
	require.Equal(t, 2, got.sum.Wakeups)
}

func TestQueueUntilAndStale(t *testing.T) {
	t.Parallel()
	// L1 is rescheduled from 12:00 to 09:00, then 09:30: only the latest
	// wake-up fires. Periodic timers fire while due before until (11:00),
	// never at or after it.
	got := runScript(t, `start: 2026-03-02T08:00:00Z
until: 2026-03-02T11:00:00Z
leads: [{id: L1}, {id: P}]
events:
  - {at: +0h, lead: L1, type: "in:4h"}
  - {at: +0h, lead: P, type: "every:1h"}
  - {at: +30m, lead: L1, type: "in:30m"}
  - {at: +45m, lead: L1, type: "in:45m"}
`)
	require.NoError(t, got.err)
	require.Equal(t, []string{
		"02 08:00 L1 event in:4h", "02 08:00 L1 waiting in:4h",
		"02 08:00 P event every:1h", "02 08:00 P waiting every:1h",
		"02 08:30 L1 event in:30m", "02 08:30 L1 waiting in:30m",
		"02 08:45 L1 event in:45m", "02 08:45 L1 waiting in:45m",
		"02 09:00 P ignored tick",
		"02 09:30 L1 ignored tick",
		"02 10:00 P ignored tick",
	}, got.lines)
	require.Equal(t, []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1}, got.prog)
}

func TestQueueDuplicatesAndDeadLetters(t *testing.T) {
	t.Parallel()
	got := runScript(t, `start: 2026-03-02T08:00:00Z
until: 2026-03-02T11:00:00Z
leads: [{id: L1}]
events:
  - {at: +0h, lead: L1, type: note, id: e1}
  - {at: +1h, lead: L1, type: note, id: e1}
  - {at: +2h, lead: L1, type: bad}
`)
	require.NoError(t, got.err)
	require.Equal(t, []string{
		"02 08:00 L1 event note", "02 08:00 L1 waiting note",
		"02 09:00 L1 duplicate note",
		"02 10:00 L1 event bad", "02 10:00 L1 dead_letter bad",
	}, got.lines)
	require.Equal(t, 1, got.sum.Duplicates)
	require.Equal(t, 1, got.sum.DeadLetters)
	require.Equal(t, 2, got.sum.Events)
}

func TestQueueRunaway(t *testing.T) {
	t.Parallel()
	got := runScript(t, `start: 2026-03-02T08:00:00Z
until: 2026-03-02T11:00:00Z
leads: [{id: L1}]
events:
  - {at: +1h, lead: L1, type: stuck}
`)
	require.True(t, errors.Is(got.err, ErrRunaway), "got %v", got.err)
	require.ErrorContains(t, got.err, "lead L1")
}

func TestQueueCancel(t *testing.T) {
	t.Parallel()
	sc, err := Parse("q.yaml", []byte(head+"leads: [{id: L1}]\nevents: [{at: +1h, lead: L1, type: \"every:1m\"}]\n"))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = run(ctx, &scriptEngine{every: map[string]time.Duration{}, stuck: map[string]bool{}}, &engine.Content{}, sc, &engine.Desk{}, Options{}, func(*Entry) error {
		if n++; n == 100 {
			cancel()
		}
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
}
