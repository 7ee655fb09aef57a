package engine_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

// decayed is v, decayed from at to t with half-life h, as the engine
// computes it.
func decayed(v float64, at, t time.Time, h time.Duration) float64 {
	return v * math.Exp2(-float64(t.Sub(at))/float64(h))
}

// rearmInstant is the first whole minute at which v, decaying from at with
// half-life h, is below mark (searched minute by minute).
func rearmInstant(v float64, at time.Time, h time.Duration, mark float64) time.Time {
	t := at.Truncate(time.Minute)
	for decayed(v, at, t, h) >= mark {
		t = t.Add(time.Minute)
	}
	return t
}

// TestRearmByDecay: a paused enrollment resumes when the decayed score
// falls below the re-arm mark, on a Tick at that instant, without waiting
// for the lead's next event; the resumed wait says until when.
func TestRearmByDecay(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	clickFor := &engine.Step{ID: "click", Kind: engine.StepWaitFor, Event: engine.EventEmailClicked, Timeout: 10 * time.Hour}
	forever := &engine.Step{ID: "forever", Kind: engine.StepWaitFor, Event: engine.EventEmailClicked}
	// Escalation at start+1h with score 60; 60·2^(−Δ/24h) < 20 from Δ ≈ 38h02m21s.
	rearm := start.Add(time.Hour + 38*time.Hour + 3*time.Minute)
	tests := []struct {
		name   string
		steps  []*engine.Step
		model  func(*engine.Scoring)
		noTick bool            // no re-arm instant: the lead has no timer while paused
		want   []engine.Effect // effects of the Tick at the re-arm instant
	}{
		{
			name:  "wait keeps the time it had left",
			steps: []*engine.Step{email("a"), wait("w", 72*time.Hour), email("b")},
			want: []engine.Effect{
				engine.Resumed{Enrollment: "L1.s.1", Sequence: "s", Step: "w"},
				engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Until: rearm.Add(71 * time.Hour), Reason: "wait"},
			},
		},
		{
			name:  "business days keep the time they had left",
			steps: []*engine.Step{email("a"), {ID: "bd", Kind: engine.StepWait, BusinessDays: 3}, email("b")},
			want: []engine.Effect{
				engine.Resumed{Enrollment: "L1.s.1", Sequence: "s", Step: "bd"},
				// Monday 08:00 + 3 business days = Thursday 08:00; 71h were left.
				engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "bd", Until: rearm.Add(71 * time.Hour), Reason: "business_days"},
			},
		},
		{
			name:  "wait_for keeps its timeout",
			steps: []*engine.Step{email("a"), clickFor, email("b")},
			want: []engine.Effect{
				engine.Resumed{Enrollment: "L1.s.1", Sequence: "s", Step: "click"},
				engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "click", Until: rearm.Add(9 * time.Hour), Reason: "wait_for", Event: engine.EventEmailClicked},
			},
		},
		{
			name:  "wait_for without a timeout waits on",
			steps: []*engine.Step{email("a"), forever, email("b")},
			want: []engine.Effect{
				engine.Resumed{Enrollment: "L1.s.1", Sequence: "s", Step: "forever"},
				engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "forever", Reason: "wait_for", Event: engine.EventEmailClicked},
			},
		},
		{
			name:   "no half-life: only an event can re-arm",
			steps:  []*engine.Step{email("a"), wait("w", 72*time.Hour), email("b")},
			model:  func(sc *engine.Scoring) { sc.HalfLife = 0 },
			noTick: true,
		},
		{
			name:   "a mark at zero is never reached by decay",
			steps:  []*engine.Step{email("a"), wait("w", 72*time.Hour), email("b")},
			model:  func(sc *engine.Scoring) { sc.Rearm = 0 },
			noTick: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := hotModel(engine.Rep{ID: "sam"})
			if tt.model != nil {
				tt.model(sc)
			}
			b := setup(t, scoringContent(sc, seq("s", tt.steps...)), start, nil)
			b.event(start, "trial.started", nil)
			effs := b.event(start.Add(time.Hour), "demo.requested", nil)
			require.Len(t, find[engine.Paused](effs), 1)
			if tt.noTick {
				require.True(t, b.l.NextRunAt.IsZero(), "nothing to wake up for")
				return
			}
			require.Equal(t, rearm, b.l.NextRunAt)
			// One minute earlier the score is still at or above the mark.
			early := clone(t, b.l)
			effs, err := b.e.Apply(early, engine.Input{Now: rearm.Add(-time.Minute), Desk: &engine.Desk{}})
			require.NoError(t, err)
			require.Empty(t, effs)
			require.False(t, early.Armed)

			require.Equal(t, tt.want, b.apply(rearm, nil))
			require.True(t, b.l.Armed)
			require.Less(t, b.l.Score.Value, 20.0)
			require.Equal(t, 0, b.desk.Reps["sam"].Open, "re-arming closed the escalation")
			require.Equal(t, engine.EnrollmentActive, b.l.Enrollments[0].Status)
			if w := tt.want[1].(engine.Waiting); !w.Until.IsZero() {
				require.Equal(t, w.Until, b.l.NextRunAt)
			} else {
				require.True(t, b.l.NextRunAt.IsZero())
			}
		})
	}
}

// TestRearmInstantPrecision: whatever the score, half-life and mark, the
// Tick at the lead's NextRunAt finds the decayed score below the mark (no
// Tick that wakes the lead for nothing, no tick loop), and it is the first
// such whole minute.
func TestRearmInstantPrecision(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	base := at(t, "2026-03-02T08:00:00Z")
	for i := range 5000 {
		halfLife := time.Duration(1+r.IntN(60*24*30)) * time.Minute
		if i%3 == 0 {
			halfLife = time.Duration(1 + r.Int64N(int64(90*24*time.Hour))) // not whole seconds
		}
		mark := 0.001 + r.Float64()*200
		v := mark * (1 + r.Float64()*r.Float64()*1e3)
		if i%5 == 0 {
			v = math.Nextafter(mark, math.Inf(1)) // barely above
		}
		if i%7 == 0 {
			v = mark // exactly at the mark: not below it yet
		}
		from := base.Add(time.Duration(r.Int64N(int64(time.Hour))))
		sc := &engine.Scoring{HalfLife: halfLife, Threshold: 1e9, Rearm: mark}
		e, err := engine.New(scoringContent(sc))
		require.NoError(t, err)
		l := engine.NewLead("L1", from)
		l.Armed, l.Crossings = false, 1
		l.Escalation = &engine.Escalation{ID: "L1.escalation-1", Rep: "sam", At: from, Attempt: 1}
		l.Score = engine.Score{Value: v, At: from}
		_, err = e.Apply(l, engine.Input{Now: from})
		require.NoError(t, err)
		next := l.NextRunAt
		require.False(t, next.IsZero(), "case %d", i)
		require.Zero(t, next.Second(), "whole minutes")
		require.Zero(t, next.Nanosecond(), "whole minutes")
		require.Less(t, decayed(v, from, next, halfLife), mark, "case %d", i)
		if prev := next.Add(-time.Minute); prev.After(from) {
			require.GreaterOrEqual(t, decayed(v, from, prev, halfLife), mark, "case %d: v=%v mark=%v h=%v: not the first minute below", i, v, mark, halfLife)
		}
		_, err = e.Apply(l, engine.Input{Now: next})
		require.NoError(t, err)
		require.True(t, l.Armed, "case %d: v=%v mark=%v h=%v: the tick at %s must re-arm", i, v, mark, halfLife, next)
		require.True(t, l.NextRunAt.IsZero())
	}
}
