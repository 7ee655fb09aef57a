package engine_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

// benchContent is a typical program: a five-step trial sequence with a send
// window in the lead's zone and a wait_for, plus a scoring model with caps,
// decay, machine filtering, escalation and reps.
func benchContent(b testing.TB) *engine.Content {
	clickedTips := cond(func(env *engine.Env) (bool, error) { return env.Event.Properties["step"] == "tips", nil })
	s := &engine.Sequence{
		ID: "trial-nurture", Version: "v1",
		Enroll: engine.Enroll{On: []string{"trial.started"}, Reenroll: engine.Reenroll{Mode: engine.ReenrollNever}},
		Exit:   engine.Exit{On: []string{"demo.booked"}},
		Window: &engine.Window{At: mustCron(b, "* 8-18 * * MON-FRI"), TimezoneTrait: "timezone", DefaultZone: time.UTC},
		Steps: []*engine.Step{
			email("welcome"),
			wait("pause", 48*time.Hour),
			email("tips"),
			{ID: "clicked", Kind: engine.StepWaitFor, Event: engine.EventEmailClicked, Match: clickedTips, Timeout: 72 * time.Hour, OnTimeout: "nudge"},
			{ID: "offer", Kind: engine.StepEmail, Template: "offer", Then: "end"},
			email("nudge"),
		},
	}
	c := content(s)
	c.Limits = engine.Limits{MaxEmails: 3, Period: 24 * time.Hour}
	c.Scoring = &engine.Scoring{
		HalfLife: 7 * 24 * time.Hour, IgnoreMachine: true, IgnoreOpensWithin: 10 * time.Second,
		Threshold: 100, Rearm: 40, OnEscalate: engine.EscalationPause, AckTimeout: 4 * time.Hour,
		Rules: []*engine.Rule{
			{ID: "view", Event: "page.viewed", Points: 1, CapPoints: 10, CapPeriod: 24 * time.Hour},
			{ID: "open", Event: engine.EventEmailOpened, Points: 2, CapPoints: 6, CapPeriod: 24 * time.Hour},
			{ID: "click", Event: engine.EventEmailClicked, Points: 5, CapPoints: 10, CapPeriod: 24 * time.Hour},
		},
		Routing: engine.Routing{Strategy: engine.RouteTerritory, TerritoryTrait: "region", Reps: []engine.Rep{
			{ID: "ana", Territories: []string{"emea"}}, {ID: "ben"},
		}},
	}
	return c
}

// benchStream is one lead's 1024 events: trial.started, then page views,
// opens (some by a privacy proxy), clicks on the tips email and other events.
func benchStream() []engine.Event {
	cycle := []struct {
		typ, step string
		machine   bool
	}{
		{"page.viewed", "", false}, {"page.viewed", "", false}, {engine.EventEmailOpened, "welcome", false}, {"feature.used", "", false},
		{"page.viewed", "", false}, {engine.EventEmailOpened, "welcome", true}, {"page.viewed", "", false}, {"feature.used", "", false},
		{"page.viewed", "", false}, {engine.EventEmailClicked, "tips", false}, {"page.viewed", "", false}, {"feature.used", "", false},
		{"page.viewed", "", false}, {"page.viewed", "", false}, {"feature.used", "", false}, {"page.viewed", "", false},
	}
	events := make([]engine.Event, 1024)
	for i := range events {
		c := cycle[i%len(cycle)]
		events[i] = engine.Event{ID: "e" + strconv.Itoa(i), Type: c.typ, Lead: "L1", Machine: c.machine, Properties: map[string]any{"step": c.step}}
	}
	events[0].Type = "trial.started"
	events[0].Email = "ana@example.com"
	events[0].Traits = map[string]any{"timezone": "Europe/Berlin", "region": "emea"}
	return events
}

// BenchmarkApply applies a typical event stream to one in-memory lead: every
// 1024 events a fresh lead enrolls (email, wait), then page views, opens,
// clicks and other events arrive, firing the sequence's timers on the way.
// One op is one event.
func BenchmarkApply(b *testing.B) {
	e, err := engine.New(benchContent(b))
	if err != nil {
		b.Fatal(err)
	}
	events := benchStream()
	perLead := len(events)
	desk := &engine.Desk{}
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	var l *engine.Lead
	var now time.Time
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % perLead
		if k == 0 {
			now = start
			l = engine.NewLead("L1", now)
		}
		now = now.Add(7 * time.Minute) // a lead's 1024 events span ~5 days
		if _, err := e.Apply(l, engine.Input{Now: now, Event: &events[k], Desk: desk}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestBenchmarkStreamIsTypical checks that the benchmark's stream really
// exercises the engine: enrollment, sends, waits, scoring and escalation.
func TestBenchmarkStreamIsTypical(t *testing.T) {
	t.Parallel()
	e, err := engine.New(benchContent(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	l := engine.NewLead("L1", start)
	count := map[string]int{}
	now := start
	for _, ev := range benchStream() {
		now = now.Add(7 * time.Minute)
		effs, err := e.Apply(l, engine.Input{Now: now, Event: &ev, Desk: &engine.Desk{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range effs {
			count[f.Action()]++
		}
	}
	for _, a := range []string{"enrolled", "email.sent", "waiting", "score.changed", "escalated", "ignored", "completed"} {
		if count[a] == 0 {
			t.Errorf("stream never produced %q: %v", a, count)
		}
	}
	t.Logf("effects over 1024 events: %v", count)
}

// TestDeterministic applies the same stream to two leads and requires the
// same effects and the same state, byte for byte.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	run := func() ([]engine.Effect, []byte) {
		e, err := engine.New(benchContent(t))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
		l := engine.NewLead("L1", start)
		desk := &engine.Desk{}
		var all []engine.Effect
		now := start
		for i, ev := range benchStream() {
			now = now.Add(7 * time.Minute)
			in := engine.Input{Now: now, Event: &ev, Desk: desk}
			if i%10 == 9 {
				in.Event = nil // ticks in between
			}
			effs, err := e.Apply(l, in)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, effs...)
		}
		state, err := json.Marshal([]any{l, desk})
		require.NoError(t, err)
		return all, state
	}
	e1, s1 := run()
	e2, s2 := run()
	require.Equal(t, e1, e2)
	require.Equal(t, string(s1), string(s2))
}
