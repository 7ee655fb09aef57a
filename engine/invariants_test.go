package engine_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

// TestInvariantsUnderRandomInput drives leads with random events, ticks
// and clock jumps (including inputs older than the lead's clock) and checks
// the promises that must hold whatever happens.
func TestInvariantsUnderRandomInput(t *testing.T) {
	t.Parallel()
	c := benchContent(t)
	loop := seq("loop", email("l1"), &engine.Step{ID: "back", Kind: engine.StepGoto, Then: "l1"})
	loop.Enroll.On = []string{"loop.me"}
	c.Sequences = append(c.Sequences, loop)
	c.Current["loop"] = "v1"
	// Strong intent, so that leads escalate, get re-routed and re-arm.
	c.Scoring.Rules = append(c.Scoring.Rules, &engine.Rule{ID: "demo", Event: "demo.requested", Points: 60})
	e, err := engine.New(c)
	require.NoError(t, err)
	types := []string{"trial.started", "page.viewed", engine.EventEmailOpened, engine.EventEmailClicked, "demo.booked",
		engine.EventEscalationAcked, engine.EventEmailUnsubscribed, "feature.used", "loop.me", engine.EventEmailBounced, "demo.requested"}
	steps := []string{"welcome", "tips", "offer", "nudge", "nope", ""}
	disarmed := 0
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 7))
		now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		l := engine.NewLead("L1", now)
		desk := &engine.Desk{}
		sent := map[string]bool{}
		escalations := map[string]int{}
		for i := range 400 {
			now = now.Add(time.Duration(r.IntN(12*60)) * time.Minute)
			in := engine.Input{Now: now, Desk: desk}
			if r.IntN(10) == 0 {
				in.Now = now.Add(-time.Duration(r.IntN(600)) * time.Minute) // a slow clock
			}
			if r.IntN(4) != 0 {
				typ := types[r.IntN(len(types))]
				if typ == engine.EventEmailUnsubscribed && r.IntN(8) != 0 {
					typ = "page.viewed"
				}
				id := "e" + strconv.Itoa(i)
				if r.IntN(20) == 0 && i > 0 {
					id = "e" + strconv.Itoa(i-1) // a redelivery
				}
				in.Event = &engine.Event{ID: id, Type: typ, Lead: "L1", Email: "ana@example.com", Machine: r.IntN(10) == 0,
					Traits:     map[string]any{"timezone": []string{"Europe/Berlin", "America/New_York", "bogus", ""}[r.IntN(4)]},
					Properties: map[string]any{"step": steps[r.IntN(len(steps))], "kind": "hard", "rep": "ana"}}
			}
			effs, err := e.Apply(l, in)
			require.NoError(t, err)
			for _, f := range effs {
				switch f := f.(type) {
				case engine.SendEmail:
					require.False(t, sent[f.SendID], "seed %d: %s sent twice", seed, f.SendID)
					sent[f.SendID] = true
				case engine.Waiting:
					if !f.Until.IsZero() {
						require.True(t, f.Until.After(in.Now), "seed %d: waiting until %s at %s", seed, f.Until, in.Now)
					}
				case engine.Escalated:
					if f.Attempt == 1 {
						escalations[f.ID]++
						require.Equal(t, 1, escalations[f.ID], "one escalation per crossing")
					}
				}
			}
			// NextRunAt is the earliest pending timer.
			var next time.Time
			active := map[string]bool{}
			for _, en := range l.Enrollments {
				if en.Status == engine.EnrollmentActive && !en.NextRunAt.IsZero() && (next.IsZero() || en.NextRunAt.Before(next)) {
					next = en.NextRunAt
				}
				if !en.Status.Ended() {
					require.False(t, active[en.Sequence], "one active enrollment per sequence")
					active[en.Sequence] = true
					require.NotEmpty(t, en.Step)
				} else {
					require.Empty(t, en.Step)
				}
			}
			if esc := l.Escalation; esc != nil && esc.AckedBy == "" && !esc.AckDueAt.IsZero() && (next.IsZero() || esc.AckDueAt.Before(next)) {
				next = esc.AckDueAt
			}
			if l.Armed {
				require.Equal(t, next, l.NextRunAt)
			} else {
				// Disarmed with decay: the re-arm instant is a timer too.
				disarmed++
				require.False(t, l.NextRunAt.IsZero(), "seed %d: a disarmed lead re-arms by decay", seed)
				require.True(t, next.IsZero() || !l.NextRunAt.After(next))
			}
			for _, ld := range desk.Reps {
				require.GreaterOrEqual(t, ld.Open, 0)
			}
		}
	}
	require.NotZero(t, disarmed, "the random input escalates leads")
}
