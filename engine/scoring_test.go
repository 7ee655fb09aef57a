package engine_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

func scoringContent(sc *engine.Scoring, seqs ...*engine.Sequence) *engine.Content {
	c := content(seqs...)
	c.Scoring = sc
	return c
}

func TestScoringRules(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	t.Run("points, conditions and negative points", func(t *testing.T) {
		t.Parallel()
		sc := &engine.Scoring{Rules: []*engine.Rule{
			{ID: "pricing", Event: "page.viewed", Condition: cond(func(env *engine.Env) (bool, error) { return env.Event.Properties["path"] == "/pricing", nil }), Points: 10},
			{ID: "view", Event: "page.viewed", Points: 1},
			{ID: "unsub", Event: engine.EventEmailUnsubscribed, Points: -15},
		}}
		b := setup(t, scoringContent(sc), start, nil)
		effs := b.event(start, "page.viewed", map[string]any{"path": "/pricing"})
		require.Equal(t, []engine.Effect{
			engine.ScoreChanged{Rule: "pricing", Event: "ev1", Delta: 10, Score: 10},
			engine.ScoreChanged{Rule: "view", Event: "ev1", Delta: 1, Score: 11},
		}, effs)
		effs = b.event(start, engine.EventEmailUnsubscribed, nil)
		require.Equal(t, engine.ScoreChanged{Rule: "unsub", Event: "ev2", Delta: -15, Score: -4}, find[engine.ScoreChanged](effs)[0])
	})
	t.Run("caps", func(t *testing.T) {
		t.Parallel()
		sc := &engine.Scoring{Rules: []*engine.Rule{{ID: "view", Event: "page.viewed", Points: 2, CapPoints: 5, CapPeriod: 24 * time.Hour}}}
		b := setup(t, scoringContent(sc), start, nil)
		var deltas []float64
		var capped []bool
		for i := range 4 {
			for _, c := range find[engine.ScoreChanged](b.event(start.Add(time.Duration(i)*time.Hour), "page.viewed", nil)) {
				deltas, capped = append(deltas, c.Delta), append(capped, c.Capped)
			}
		}
		require.Equal(t, []float64{2, 2, 1, 0}, deltas)
		require.Equal(t, []bool{false, false, true, true}, capped)
		// A new period starts 24h after the first award.
		c := find[engine.ScoreChanged](b.event(start.Add(24*time.Hour), "page.viewed", nil))
		require.Equal(t, 2.0, c[0].Delta)
		require.Equal(t, 7.0, b.l.Score.Value)
	})
	t.Run("negative points are capped by magnitude", func(t *testing.T) {
		t.Parallel()
		sc := &engine.Scoring{Rules: []*engine.Rule{{ID: "bad", Event: "x", Points: -4, CapPoints: 6, CapPeriod: time.Hour}}}
		b := setup(t, scoringContent(sc), start, nil)
		b.event(start, "x", nil)
		c := find[engine.ScoreChanged](b.event(start, "x", nil))
		require.Equal(t, engine.ScoreChanged{Rule: "bad", Event: "ev2", Delta: -2, Score: -6, Capped: true}, c[0])
	})
	t.Run("decay", func(t *testing.T) {
		t.Parallel()
		sc := &engine.Scoring{HalfLife: 7 * 24 * time.Hour, Rules: []*engine.Rule{{ID: "demo", Event: "demo.requested", Points: 40}}}
		b := setup(t, scoringContent(sc), start, nil)
		b.event(start, "demo.requested", nil)
		c := find[engine.ScoreChanged](b.event(start.Add(7*24*time.Hour), "demo.requested", nil))
		require.InDelta(t, 60, c[0].Score, 1e-9, "40 halved after one half-life, +40")
		b.apply(start.Add(21*24*time.Hour), nil)
		require.InDelta(t, 15, b.l.Score.Value, 1e-9)
	})
	t.Run("machine traffic", func(t *testing.T) {
		t.Parallel()
		sc := &engine.Scoring{IgnoreMachine: true, Rules: []*engine.Rule{{ID: "click", Event: engine.EventEmailClicked, Points: 5}}}
		b := setup(t, scoringContent(sc, seq("s", email("a"), wait("w", time.Hour))), start, nil)
		b.event(start, "trial.started", nil)
		effs := b.apply(start.Add(time.Minute), &engine.Event{ID: "m", Type: engine.EventEmailClicked, Lead: "L1", Machine: true, Properties: map[string]any{"step": "a"}})
		require.Equal(t, []engine.Effect{engine.Ignored{Event: "m", Reason: "machine traffic"}}, effs)
		require.Empty(t, b.l.Enrollments[0].Clicked, "a link scanner's click is not a click")
		require.Zero(t, b.l.Score.Value)
	})
	t.Run("early opens", func(t *testing.T) {
		t.Parallel()
		sc := &engine.Scoring{IgnoreOpensWithin: 30 * time.Second, Rules: []*engine.Rule{{ID: "open", Event: engine.EventEmailOpened, Points: 1}}}
		b := setup(t, scoringContent(sc, seq("s", email("a"), wait("w", time.Hour))), start, nil)
		b.event(start, "trial.started", nil)
		effs := b.event(start.Add(5*time.Second), engine.EventEmailOpened, map[string]any{"step": "a"})
		require.Equal(t, []string{"ignored"}, actions(effs))
		require.Contains(t, effs[0].(engine.Ignored).Reason, "open within 30s")
		require.Empty(t, b.l.Enrollments[0].Opened)
		effs = b.event(start.Add(5*time.Minute), engine.EventEmailOpened, map[string]any{"step": "a"})
		require.Equal(t, []string{"score.changed"}, actions(effs))
		require.Equal(t, []string{"a"}, b.l.Enrollments[0].Opened)
	})
}

// hotModel escalates at 50 and re-arms below 20; each demo.requested is +60.
func hotModel(reps ...engine.Rep) *engine.Scoring {
	return &engine.Scoring{
		HalfLife:   24 * time.Hour,
		Threshold:  50,
		Rearm:      20,
		OnEscalate: engine.EscalationPause,
		Rules:      []*engine.Rule{{ID: "demo", Event: "demo.requested", Points: 60}, {ID: "view", Event: "page.viewed", Points: 10}},
		Routing:    engine.Routing{Strategy: engine.RouteRoundRobin, Reps: reps},
	}
}

func TestEscalationHysteresis(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	s := seq("s", email("a"), wait("w", 72*time.Hour), email("b"))
	b := setup(t, scoringContent(hotModel(engine.Rep{ID: "sam"}), s), start, nil)
	b.event(start, "trial.started", nil)

	effs := b.event(start.Add(time.Hour), "demo.requested", nil)
	require.Equal(t, []string{"score.changed", "escalated", "paused"}, actions(effs))
	esc := find[engine.Escalated](effs)[0]
	require.Equal(t, engine.Escalated{ID: "L1.escalation-1", Rep: "sam", Attempt: 1, Score: 60, Reason: "round-robin; 1 eligible; least assigned"}, esc)
	require.Equal(t, "sam", b.l.Owner)
	require.False(t, b.l.Armed)
	require.Equal(t, engine.EnrollmentPaused, b.l.Enrollments[0].Status)
	require.True(t, b.l.Enrollments[0].NextRunAt.IsZero(), "a paused enrollment has no timer")
	// The lead's timer is the re-arm instant: 60·2^(−Δ/24h) < 20 from
	// Δ = 24h·log2(3) ≈ 38h02m21s, rounded up to the minute.
	require.Equal(t, start.Add(time.Hour+38*time.Hour+3*time.Minute), b.l.NextRunAt)

	// Still above the threshold, or between the marks: no second escalation.
	effs = b.event(start.Add(2*time.Hour), "demo.requested", nil)
	require.Empty(t, find[engine.Escalated](effs))
	// The score (≈118.3 now) falls below 20 after 24h·log2(118.3/20) ≈ 61.5h:
	// decay alone re-arms the lead and resumes the sequence, no event needed.
	rearm := b.l.NextRunAt
	require.Equal(t, rearmInstant(b.l.Score.Value, b.l.Score.At, 24*time.Hour, 20), rearm)
	require.Empty(t, b.run(rearm.Add(-time.Minute)))
	require.False(t, b.l.Armed)
	effs = b.run(rearm)
	require.Equal(t, []engine.Effect{
		engine.Resumed{Enrollment: "L1.s.1", Sequence: "s", Step: "w"},
		engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Until: rearm.Add(71 * time.Hour), Reason: "wait"},
	}, effs, "the wait keeps the 71h it had left")
	require.True(t, b.l.Armed)
	en := b.l.Enrollments[0]
	require.Equal(t, engine.EnrollmentActive, en.Status)
	require.Equal(t, rearm.Add(71*time.Hour), b.l.NextRunAt)

	// Second crossing: a new id.
	effs = b.event(rearm.Add(time.Minute), "demo.requested", nil)
	esc = find[engine.Escalated](effs)[0]
	require.Equal(t, "L1.escalation-2", esc.ID)
	require.Equal(t, 2, b.l.Crossings)
	require.Equal(t, 1, b.desk.Reps["sam"].Open, "re-arming closed the first escalation")
	require.EqualValues(t, 2, b.desk.Reps["sam"].Assigned)
}

func TestEscalationExitsPerSequence(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	keep := seq("keep", email("k"), wait("w", time.Hour))
	keep.Exit.OnEscalation = engine.EscalationContinue
	stop := seq("stop", email("s"), wait("w", time.Hour))
	stop.Exit.OnEscalation = engine.EscalationExit
	b := setup(t, scoringContent(hotModel(engine.Rep{ID: "sam"}), keep, stop), start, nil)
	b.event(start, "trial.started", nil)
	effs := b.event(start, "demo.requested", nil)
	require.Equal(t, []string{"score.changed", "escalated", "exited"}, actions(effs))
	require.Equal(t, engine.Exited{Enrollment: "L1.stop.1", Sequence: "stop", Step: "w", Reason: "escalated"}, effs[2])
}

func TestNoRepAvailable(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	sc := hotModel(engine.Rep{ID: "sam", Away: true})
	sc.AckTimeout = time.Hour
	b := setup(t, scoringContent(sc), start, nil)
	effs := b.event(start, "demo.requested", nil)
	esc := find[engine.Escalated](effs)
	require.Len(t, esc, 1)
	require.Equal(t, engine.Escalated{ID: "L1.escalation-1", Rep: "", Attempt: 1, Score: 60, Reason: "no rep available"}, esc[0])
	// Nobody comes back: retried silently.
	require.Empty(t, b.apply(start.Add(time.Hour), nil))
	require.Equal(t, start.Add(2*time.Hour), b.l.NextRunAt)
}

func TestRouting(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	reps := []engine.Rep{
		{ID: "ana", Territories: []string{"EMEA"}, Capacity: 1},
		{ID: "ben", Territories: []string{"emea", "apac"}},
		{ID: "cat"},
		{ID: "dan", Territories: []string{"amer"}},
	}
	tests := []struct {
		name     string
		strategy engine.RoutingStrategy
		desk     map[string]*engine.RepLoad
		region   any
		want     string
		reason   string
	}{
		{"round robin: least assigned", engine.RouteRoundRobin, map[string]*engine.RepLoad{"ana": {Assigned: 3}, "ben": {Assigned: 1}, "cat": {Assigned: 1}, "dan": {Assigned: 2}}, nil, "ben", "round-robin; 4 eligible; least assigned"},
		{"round robin: ties by config order", engine.RouteRoundRobin, nil, nil, "ana", "round-robin; 4 eligible; least assigned"},
		{"territory, case-insensitive", engine.RouteTerritory, map[string]*engine.RepLoad{"ana": {Assigned: 5}}, "Emea", "ben", "territory=emea; 2 eligible; least assigned"},
		{"territory: capacity full", engine.RouteTerritory, map[string]*engine.RepLoad{"ana": {Open: 1}, "ben": {Assigned: 9}}, "emea", "ben", "territory=emea; 1 eligible; least assigned"},
		{"territory: away on the desk", engine.RouteTerritory, map[string]*engine.RepLoad{"ben": {Away: true}}, "apac", "cat", "territory=apac; no rep for it, catch-all reps; 1 eligible; least assigned"},
		{"territory: catch-all", engine.RouteTerritory, nil, "latam", "cat", "territory=latam; no rep for it, catch-all reps; 1 eligible; least assigned"},
		{"territory: everyone", engine.RouteTerritory, map[string]*engine.RepLoad{"cat": {Away: true}, "ana": {Assigned: 1}}, "latam", "ben", "territory=latam; no rep for it and no catch-all rep, everyone; 3 eligible; least assigned"},
		{"territory: trait missing", engine.RouteTerritory, nil, nil, "cat", "territory unknown; catch-all reps; 1 eligible; least assigned"},
		{"nobody", engine.RouteTerritory, map[string]*engine.RepLoad{"ana": {Away: true}, "ben": {Away: true}, "cat": {Away: true}, "dan": {Away: true}}, "emea", "", "no rep available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := hotModel(reps...)
			sc.Routing.Strategy = tt.strategy
			sc.Routing.TerritoryTrait = "region"
			b := setup(t, scoringContent(sc), start, map[string]any{"region": tt.region})
			b.desk.Reps = tt.desk
			effs := b.event(start, "demo.requested", nil)
			esc := find[engine.Escalated](effs)
			require.Len(t, esc, 1)
			require.Equal(t, tt.want, esc[0].Rep)
			require.Equal(t, tt.reason, esc[0].Reason)
			if tt.want != "" {
				ld := b.desk.Reps[tt.want]
				require.Equal(t, start, ld.LastAt)
				require.GreaterOrEqual(t, ld.Open, 1)
			}
		})
	}
}

func TestRoundRobinAcrossLeads(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	e, err := engine.New(scoringContent(hotModel(engine.Rep{ID: "a"}, engine.Rep{ID: "b"}, engine.Rep{ID: "c", Capacity: 1})))
	require.NoError(t, err)
	desk := &engine.Desk{}
	var got []string
	for i := range 6 {
		l := engine.NewLead("L"+itoa(i), start)
		effs, err := e.Apply(l, engine.Input{Now: start, Desk: desk, Event: &engine.Event{ID: "e", Type: "demo.requested", Lead: l.Key}})
		require.NoError(t, err)
		got = append(got, find[engine.Escalated](effs)[0].Rep)
	}
	require.Equal(t, []string{"a", "b", "c", "a", "b", "a"}, got, "c is at capacity after one")
}

func TestAckAndSLA(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	mk := func(t *testing.T) *bundle {
		sc := hotModel(engine.Rep{ID: "ana"}, engine.Rep{ID: "ben"}, engine.Rep{ID: "cat", Away: true})
		sc.AckTimeout = 2 * time.Hour
		b := setup(t, scoringContent(sc), start, nil)
		b.event(start, "demo.requested", nil)
		require.Equal(t, start.Add(2*time.Hour), b.l.NextRunAt)
		return b
	}
	t.Run("acknowledged in time", func(t *testing.T) {
		t.Parallel()
		b := mk(t)
		effs := b.event(start.Add(time.Hour), engine.EventEscalationAcked, map[string]any{"escalation": "L1.escalation-1", "rep": "ana"})
		require.Equal(t, []engine.Effect{engine.Acknowledged{ID: "L1.escalation-1", Rep: "ana"}}, effs)
		require.True(t, b.l.Escalation.AckDueAt.IsZero())
		require.Equal(t, start.Add(38*time.Hour+3*time.Minute), b.l.NextRunAt, "no ack deadline; only the re-arm instant")
		require.Empty(t, b.apply(start.Add(3*time.Hour), nil))
		// A second ack is ignored.
		effs = b.event(start.Add(3*time.Hour), engine.EventEscalationAcked, map[string]any{"escalation": "L1.escalation-1", "rep": "ana"})
		require.Equal(t, []string{"ignored"}, actions(effs))
	})
	t.Run("re-routed, then nobody else", func(t *testing.T) {
		t.Parallel()
		b := mk(t)
		require.Empty(t, b.apply(start.Add(2*time.Hour-time.Second), nil), "never before due")
		effs := b.apply(start.Add(2*time.Hour), nil)
		require.Len(t, effs, 1)
		esc := effs[0].(engine.Escalated)
		require.InDelta(t, 60*math.Exp2(-2.0/24), esc.Score, 1e-9)
		esc.Score = 0
		require.Equal(t, engine.Escalated{ID: "L1.escalation-1", Rep: "ben", Attempt: 2,
			Reason: "not acknowledged within 2h0m0s; round-robin; 1 eligible; least assigned"}, esc)
		require.Equal(t, "ben", b.l.Owner)
		require.Equal(t, 0, b.desk.Reps["ana"].Open)
		require.Equal(t, 1, b.desk.Reps["ben"].Open)
		effs = b.apply(start.Add(4*time.Hour), nil)
		require.Equal(t, []engine.Effect{engine.Ignored{Reason: "escalation L1.escalation-1 not acknowledged within 2h0m0s; " +
			"no other eligible rep for the lead; stays with ben, no further re-routing"}}, effs, "the SLA stops: no more escalated effects")
		require.Equal(t, "ben", b.l.Escalation.Rep)
		require.Equal(t, 2, b.l.Escalation.Attempt)
		require.True(t, b.l.Escalation.AckDueAt.IsZero())
		require.Equal(t, start.Add(38*time.Hour+3*time.Minute), b.l.NextRunAt, "only the re-arm instant is left")
		require.Empty(t, b.apply(start.Add(6*time.Hour), nil))
		// The first rep may still take it.
		effs = b.event(start.Add(5*time.Hour), engine.EventEscalationAcked, map[string]any{"rep": "ana"})
		require.Equal(t, []engine.Effect{engine.Acknowledged{ID: "L1.escalation-1", Rep: "ana"}}, effs)
		require.Equal(t, "ana", b.l.Owner)
		require.Equal(t, 1, b.desk.Reps["ana"].Open)
		require.Equal(t, 0, b.desk.Reps["ben"].Open)
	})
	t.Run("ack of another escalation", func(t *testing.T) {
		t.Parallel()
		b := mk(t)
		effs := b.event(start.Add(time.Hour), engine.EventEscalationAcked, map[string]any{"escalation": "L1.escalation-7", "rep": "ana"})
		require.Equal(t, []string{"ignored"}, actions(effs))
	})
}

func TestPausedEnrollment(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	s := seq("s", email("a"),
		&engine.Step{ID: "click", Kind: engine.StepWaitFor, Event: engine.EventEmailClicked, Timeout: 10 * time.Hour},
		email("b"))
	s.Exit.On = []string{"demo.booked"}
	mk := func(t *testing.T) *bundle {
		b := setup(t, scoringContent(hotModel(engine.Rep{ID: "sam"}), s), start, nil)
		b.event(start, "trial.started", nil)
		effs := b.event(start.Add(time.Hour), "demo.requested", nil)
		require.Equal(t, []engine.Paused{{Enrollment: "L1.s.1", Sequence: "s", Step: "click", Reason: "escalated"}}, find[engine.Paused](effs))
		return b
	}
	t.Run("ignores awaited events and timers, resumes with the time left", func(t *testing.T) {
		t.Parallel()
		b := mk(t)
		require.Empty(t, b.event(start.Add(2*time.Hour), engine.EventEmailClicked, map[string]any{"step": "a"}))
		require.Empty(t, b.apply(start.Add(20*time.Hour), nil))
		require.Equal(t, engine.EnrollmentPaused, b.l.Enrollments[0].Status)
		resumeAt := b.l.NextRunAt // the re-arm instant: decay alone wakes the lead
		require.Equal(t, start.Add(time.Hour+38*time.Hour+3*time.Minute), resumeAt)
		require.Equal(t, []engine.Effect{
			engine.Resumed{Enrollment: "L1.s.1", Sequence: "s", Step: "click"},
			engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "click", Until: resumeAt.Add(9 * time.Hour), Reason: "wait_for", Event: engine.EventEmailClicked},
		}, b.apply(resumeAt, nil))
		require.Equal(t, resumeAt.Add(9*time.Hour), b.l.NextRunAt)
		effs := b.event(resumeAt.Add(time.Hour), engine.EventEmailClicked, map[string]any{"step": "a"})
		require.Equal(t, []string{"email.sent", "completed"}, actions(effs))
	})
	t.Run("goal reached while paused", func(t *testing.T) {
		t.Parallel()
		b := mk(t)
		effs := b.event(start.Add(2*time.Hour), "demo.booked", nil)
		require.Equal(t, []engine.Effect{engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "click", Reason: "goal:demo.booked"}}, effs)
		require.Empty(t, b.apply(start.Add(6*24*time.Hour), nil), "nothing to resume")
	})
}

// TestRerouteStaysInTiers: when the ack SLA passes, the escalation moves to
// the next rep of the lead's own tiers (territory reps, then catch-all reps)
// and never to another territory's reps unless no rep covers the lead's
// territory at all. Once every candidate was tried the SLA stops with one
// ignored effect: no more escalated effects.
func TestRerouteStaysInTiers(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	reps := []engine.Rep{
		{ID: "ana", Territories: []string{"amer"}},
		{ID: "ben", Territories: []string{"amer"}},
		{ID: "clara", Territories: []string{"emea"}},
		{ID: "kenji", Territories: []string{"apac"}},
		{ID: "dana"}, // catch-all
	}
	stop := func(rep string) string {
		return "escalation L1.escalation-1 not acknowledged within 1h0m0s; no other eligible rep for the lead; stays with " + rep + ", no further re-routing"
	}
	tests := []struct {
		name     string
		strategy engine.RoutingStrategy
		region   any
		away     []string
		want     []string // reps, in order, of the escalated effects
		stopped  string   // the ignored effect that stops the SLA ("" = none)
	}{
		{"amer: territory reps, then the catch-all", engine.RouteTerritory, "amer", nil, []string{"ana", "ben", "dana"}, stop("dana")},
		{"amer, ana away: never to emea or apac", engine.RouteTerritory, "amer", []string{"ana"}, []string{"ben", "dana"}, stop("dana")},
		{"emea, no catch-all free: stays with clara", engine.RouteTerritory, "emea", []string{"dana"}, []string{"clara"}, stop("clara")},
		{"latam: nobody covers it, catch-all then everyone", engine.RouteTerritory, "latam", nil, []string{"dana", "ana", "ben", "clara", "kenji"}, stop("kenji")},
		{"no region: catch-all then everyone", engine.RouteTerritory, nil, []string{"ben", "clara", "kenji"}, []string{"dana", "ana"}, stop("ana")},
		{"round robin: everyone", engine.RouteRoundRobin, "amer", []string{"clara", "kenji"}, []string{"ana", "ben", "dana"}, stop("dana")},
		// Everyone of the lead's tiers is away: nobody from another territory
		// is assigned; the engine retries silently every timeout.
		{"emea, clara and dana away: no rep, not amer", engine.RouteTerritory, "emea", []string{"clara", "dana"}, []string{""}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := hotModel(reps...)
			sc.AckTimeout = time.Hour
			sc.Routing.Strategy = tt.strategy
			sc.Routing.TerritoryTrait = "region"
			b := setup(t, scoringContent(sc), start, map[string]any{"region": tt.region})
			b.desk.Reps = map[string]*engine.RepLoad{}
			for _, r := range tt.away {
				b.desk.Reps[r] = &engine.RepLoad{Away: true}
			}
			effs := b.event(start, "demo.requested", nil)
			effs = append(effs, b.run(start.Add(24*time.Hour))...)
			var got []string
			for i, f := range find[engine.Escalated](effs) {
				require.Equal(t, i+1, f.Attempt)
				require.Equal(t, "L1.escalation-1", f.ID)
				got = append(got, f.Rep)
			}
			require.Equal(t, tt.want, got)
			ign := find[engine.Ignored](effs)
			if tt.stopped == "" {
				require.Empty(t, ign)
				require.Equal(t, start.Add(25*time.Hour), b.l.NextRunAt, "still retrying every hour")
				return
			}
			require.Equal(t, []engine.Ignored{{Reason: tt.stopped}}, ign)
			last := tt.want[len(tt.want)-1]
			require.Equal(t, last, b.l.Owner)
			require.True(t, b.l.Escalation.AckDueAt.IsZero(), "the SLA stopped")
			for _, r := range reps {
				want := 0
				if r.ID == last {
					want = 1
				}
				if ld := b.desk.Reps[r.ID]; ld != nil {
					require.Equal(t, want, ld.Open, r.ID)
				} else {
					require.Zero(t, want, r.ID)
				}
			}
		})
	}
}
