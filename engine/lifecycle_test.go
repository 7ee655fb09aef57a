package engine_test

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

func TestReenroll(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	tests := []struct {
		name string
		rule engine.Reenroll
		// trial.started at these hours after start; the first enrollment
		// completes after its 24h wait.
		at   []time.Duration
		want []string // enrollment ids
	}{
		{"never", engine.Reenroll{Mode: engine.ReenrollNever}, []time.Duration{0, 30 * time.Hour, 300 * time.Hour}, []string{"L1.s.1"}},
		{"default is never", engine.Reenroll{}, []time.Duration{0, 30 * time.Hour}, []string{"L1.s.1"}},
		{"always, but one active at a time", engine.Reenroll{Mode: engine.ReenrollAlways}, []time.Duration{0, 1 * time.Hour, 30 * time.Hour}, []string{"L1.s.1", "L1.s.2"}},
		{"after 72h", engine.Reenroll{Mode: engine.ReenrollAfter, After: 72 * time.Hour}, []time.Duration{0, 30 * time.Hour, 72 * time.Hour, 100 * time.Hour, 200 * time.Hour}, []string{"L1.s.1", "L1.s.2", "L1.s.3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := seq("s", email("a"), wait("w", 24*time.Hour))
			s.Enroll.Reenroll = tt.rule
			b := setup(t, content(s), start, nil)
			for _, d := range tt.at {
				b.run(start.Add(d))
				b.event(start.Add(d), "trial.started", nil)
			}
			var ids []string
			for _, en := range b.l.Enrollments {
				ids = append(ids, en.ID)
			}
			require.Equal(t, tt.want, ids)
		})
	}
}

func TestSeveralSequencesAndEnrollCondition(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	a := seq("a", email("a1"))
	b2 := seq("b", email("b1"))
	c := seq("c", email("c1"))
	c.Enroll.Condition = traitIs("plan", "pro")
	b := setup(t, content(c, b2, a), start, map[string]any{"plan": "free"})
	effs := b.event(start, "trial.started", nil)
	var seqs []string
	for _, en := range find[engine.Enrolled](effs) {
		seqs = append(seqs, en.Sequence)
		require.Equal(t, "ev1", en.Trigger)
	}
	require.Equal(t, []string{"a", "b"}, seqs, "sorted by id; c's condition does not hold")
}

func TestGoalReachedWhileWaiting(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	mk := func() *engine.Sequence {
		s := seq("s", email("a"), wait("w", 48*time.Hour), email("b"))
		s.Exit.On = []string{"demo.booked"}
		s.Exit.Condition = traitIs("customer", true)
		return s
	}
	t.Run("event", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(mk()), start, nil)
		b.event(start, "trial.started", nil)
		effs := b.event(start.Add(time.Hour), "demo.booked", nil)
		require.Equal(t, []engine.Effect{engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Reason: "goal:demo.booked"}}, effs)
		require.True(t, b.l.NextRunAt.IsZero())
		require.Empty(t, b.run(start.Add(100*time.Hour)))
	})
	t.Run("condition", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(mk()), start, nil)
		b.event(start, "trial.started", nil)
		b.n++
		effs := b.apply(start.Add(time.Hour), &engine.Event{ID: "x", Type: "identify", Lead: "L1", Traits: map[string]any{"customer": true}})
		require.Equal(t, []string{"exited"}, actions(effs))
		require.Equal(t, "goal:condition", find[engine.Exited](effs)[0].Reason)
	})
	t.Run("already reached at enrollment", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(mk()), start, map[string]any{"customer": true})
		effs := b.event(start, "trial.started", nil)
		require.Equal(t, []string{"ignored"}, actions(effs))
		require.Empty(t, b.l.Enrollments)
	})
}

func TestEventForLeadNotEnrolled(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	c := content(seq("s", email("a")))
	c.Scoring = &engine.Scoring{Rules: []*engine.Rule{{ID: "click", Event: engine.EventEmailClicked, Points: 5}}}
	b := setup(t, c, start, nil)
	effs := b.event(start, engine.EventEmailClicked, map[string]any{"step": "a", "sequence": "s"})
	require.Equal(t, []string{"score.changed"}, actions(effs))
	require.Empty(t, b.l.Enrollments)
	effs = b.event(start, "page.viewed", nil)
	require.Empty(t, effs)
}

func TestDuplicateEvents(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	c := content(seq("s", email("a"), wait("w", time.Hour)))
	c.Scoring = &engine.Scoring{Rules: []*engine.Rule{{ID: "click", Event: engine.EventEmailClicked, Points: 5}}}
	b := setup(t, c, start, nil)
	b.event(start, "trial.started", nil)
	click := &engine.Event{ID: "c1", Type: engine.EventEmailClicked, Lead: "L1", Properties: map[string]any{"step": "a"}}
	require.Equal(t, []string{"score.changed"}, actions(b.apply(start.Add(time.Minute), click)))
	effs := b.apply(start.Add(2*time.Minute), click)
	require.Equal(t, []engine.Effect{engine.Ignored{Event: "c1", Reason: "duplicate event"}}, effs)
	require.Equal(t, 5.0, b.l.Score.Value)
	// A second click on the same step (another id) scores but records once.
	b.apply(start.Add(3*time.Minute), &engine.Event{ID: "c2", Type: engine.EventEmailClicked, Lead: "L1", Properties: map[string]any{"step": "a"}})
	require.Equal(t, []string{"a"}, b.l.Enrollments[0].Clicked)
	require.Equal(t, []string{"a"}, b.l.Enrollments[0].Opened, "a click counts as an open")
	// A duplicate trial.started does not enroll twice.
	b.apply(start.Add(4*time.Minute), &engine.Event{ID: "ev1", Type: "trial.started", Lead: "L1"})
	require.Len(t, b.l.Enrollments, 1)
}

func TestOutOfOrderEvents(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	c := content(seq("s", email("a"), wait("w", 24*time.Hour), email("b")))
	c.Scoring = &engine.Scoring{HalfLife: 24 * time.Hour, Rules: []*engine.Rule{{ID: "view", Event: "page.viewed", Points: 8}}}
	b := setup(t, c, start, nil)
	b.event(start, "trial.started", nil)
	b.event(start.Add(48*time.Hour), "page.viewed", nil) // the wait fired first (late tick)
	require.Equal(t, []string{"a", "b"}, b.l.Enrollments[0].Sent)
	require.InDelta(t, 8.0, b.l.Score.Value, 1e-9)
	// An event that happened earlier (event.Time) arrives now: it applies now.
	effs := b.apply(start.Add(49*time.Hour), &engine.Event{ID: "old", Type: "page.viewed", Lead: "L1", Time: start.Add(time.Hour)})
	sc := find[engine.ScoreChanged](effs)[0]
	require.InDelta(t, 8*math.Exp2(-1.0/24)+8, sc.Score, 1e-9, "decayed by the hour since the last change, then +8")
	// Input.Now behind the lead's clock (a worker with a slow clock): the
	// score is not decayed backwards (not inflated) and no timer fires early.
	before := b.l.Score
	effs = b.apply(start.Add(40*time.Hour), &engine.Event{ID: "skew", Type: "page.viewed", Lead: "L1"})
	require.InDelta(t, before.Value+8, find[engine.ScoreChanged](effs)[0].Score, 1e-9)
	require.Equal(t, before.At, b.l.Score.At, "score time never moves backwards")
	require.Equal(t, start.Add(49*time.Hour), b.l.UpdatedAt)
}

func TestFrequencyCap(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	a := seq("a", email("a1"), email("a2"))
	b2 := seq("b", email("b1"))
	tx := seq("tx", email("receipt"))
	tx.Transactional = true
	c := content(a, b2, tx)
	c.Limits = engine.Limits{MaxEmails: 2, Period: 24 * time.Hour}
	b := setup(t, c, start, nil)
	effs := b.event(start, "trial.started", nil)
	// a1 and a2 use the cap; b1 waits for a1 to leave the 24h period; the
	// transactional receipt is not capped.
	var sent []string
	for _, s := range sends(effs) {
		sent = append(sent, s.Step)
	}
	require.Equal(t, []string{"a1", "a2", "receipt"}, sent)
	w := find[engine.Waiting](effs)
	require.Len(t, w, 1)
	require.Equal(t, engine.Waiting{Enrollment: "L1.b.1", Sequence: "b", Step: "b1", Until: start.Add(24 * time.Hour), Reason: "frequency_cap"}, w[0])
	effs = b.run(start.Add(30 * time.Hour))
	require.Equal(t, []string{"email.sent", "completed"}, actions(effs))
	require.Len(t, b.l.Sends, 1, "sends older than the period are forgotten")
}

func TestFrequencyCapThenWindow(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T15:00:00Z") // Monday 15:00 UTC
	s := seq("s", email("a1"), email("a2"))
	s.Window = &engine.Window{At: mustCron(t, "* 9-16 * * MON-FRI")}
	c := content(s)
	c.Limits = engine.Limits{MaxEmails: 1, Period: 24 * time.Hour}
	b := setup(t, c, start, nil)
	effs := b.event(start, "trial.started", nil)
	w := find[engine.Waiting](effs)
	require.Len(t, w, 1)
	require.Equal(t, start.Add(24*time.Hour), w[0].Until, "Tuesday 15:00 is inside the window")
	require.Equal(t, "frequency_cap", w[0].Reason)
}

func TestStatusEvents(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	tests := []struct {
		typ    string
		props  map[string]any
		status engine.LeadStatus
	}{
		{engine.EventEmailUnsubscribed, nil, engine.LeadUnsubscribed},
		{engine.EventEmailBounced, map[string]any{"kind": "hard"}, engine.LeadBounced},
		{engine.EventEmailComplained, nil, engine.LeadComplained},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			t.Parallel()
			b := setup(t, content(seq("s", email("a"), wait("w", time.Hour), email("b"))), start, nil)
			b.event(start, "trial.started", nil)
			effs := b.event(start.Add(time.Minute), tt.typ, tt.props)
			require.Equal(t, []engine.Effect{
				engine.StatusChanged{From: engine.LeadActive, To: tt.status, Event: "ev2"},
				engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Reason: string(tt.status)},
			}, effs)
			require.Equal(t, tt.status, b.l.Status)
			// Not enrolled again while suppressed.
			b.l.Enrollments = nil
			effs = b.event(start.Add(2*time.Minute), "trial.started", nil)
			require.Equal(t, []string{"ignored"}, actions(effs))
		})
	}
	t.Run("soft bounce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(seq("s", email("a"))), start, nil)
		require.Empty(t, b.event(start, engine.EventEmailBounced, map[string]any{"kind": "soft"}))
		require.Equal(t, engine.LeadActive, b.l.Status)
	})
	t.Run("transactional still sends nothing to a bounced address", func(t *testing.T) {
		t.Parallel()
		s := seq("s", email("receipt"))
		s.Transactional = true
		b := setup(t, content(s), start, nil)
		b.event(start, engine.EventEmailBounced, map[string]any{"kind": "hard"})
		effs := b.event(start, "trial.started", nil)
		require.Equal(t, []string{"enrolled", "email.suppressed", "completed"}, actions(effs))
	})
}

func TestTraitsAndEmailMerge(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	b := setup(t, content(), start, map[string]any{"a": "1", "b": "2"})
	b.apply(start, &engine.Event{ID: "i", Type: "identify", Lead: "L1", Email: "new@example.com", Traits: map[string]any{"b": "3", "c": "4"}})
	require.Equal(t, map[string]any{"a": "1", "b": "3", "c": "4"}, b.l.Traits)
	require.Equal(t, "new@example.com", b.l.Email)
}

func TestVersions(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	v1 := &engine.Sequence{ID: "s", Version: "v1", Enroll: engine.Enroll{On: []string{"trial.started"}},
		Steps: []*engine.Step{email("a"), wait("w", 48*time.Hour), email("b")}}
	mkV2 := func(policy engine.InFlightPolicy, steps ...*engine.Step) *engine.Sequence {
		return &engine.Sequence{ID: "s", Version: "v2", Enroll: v1.Enroll, InFlight: policy, Steps: steps}
	}
	tests := []struct {
		name    string
		v2      *engine.Sequence
		want    []string // actions on the next tick
		version string
		sent    string // step sent after the wait, if any
	}{
		{"continue", mkV2(engine.InFlightContinue, email("a"), wait("w", 48*time.Hour), email("c")), []string{"email.sent", "completed"}, "v1", "b"},
		{"migrate", mkV2(engine.InFlightMigrate, email("a"), wait("w", 48*time.Hour), email("c")), []string{"migrated", "email.sent", "completed"}, "v2", "c"},
		{"migrate, step gone", mkV2(engine.InFlightMigrate, email("a"), wait("other", time.Hour)), []string{"exited"}, "v1", ""},
		{"exit", mkV2(engine.InFlightExit, email("a")), []string{"exited"}, "v1", ""},
		{"migrate, step changed kind", mkV2(engine.InFlightMigrate, email("a"), email("w"), email("c")), []string{"migrated", "email.sent", "email.sent", "completed"}, "v2", "w"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, content(v1), start, nil)
			b.event(start, "trial.started", nil)
			// Publish v2: both versions known, v2 current.
			c2 := &engine.Content{Sequences: []*engine.Sequence{v1, tt.v2}, Current: map[string]string{"s": "v2"}}
			e2, err := engine.New(c2)
			require.NoError(t, err)
			b.e = e2
			effs := b.run(start.Add(100 * time.Hour))
			if len(effs) == 0 { // migrations happen lazily: touch the lead
				effs = b.apply(start.Add(time.Hour), nil)
				effs = append(effs, b.run(start.Add(100*time.Hour))...)
			}
			require.Equal(t, tt.want, actions(effs))
			if x := find[engine.Exited](effs); len(x) > 0 {
				require.Equal(t, "version", x[0].Reason)
			}
			require.Equal(t, tt.version, b.l.Enrollments[0].Version)
			if tt.sent != "" {
				require.Equal(t, tt.sent, sends(effs)[0].Step)
			}
			// New enrollments use the current version.
			b.l.Enrollments = nil
			effs = b.event(start.Add(200*time.Hour), "trial.started", nil)
			require.Equal(t, "v2", find[engine.Enrolled](effs)[0].Version)
		})
	}
	t.Run("unknown version", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(v1), start, nil)
		b.event(start, "trial.started", nil)
		b.l.Enrollments[0].Version = "gone"
		effs := b.apply(start.Add(time.Hour), nil)
		require.Equal(t, []engine.Effect{engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Reason: "version_unknown"}}, effs)
	})
	t.Run("retired sequence keeps running, enrolls nobody", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(v1), start, nil)
		b.event(start, "trial.started", nil)
		e2, err := engine.New(&engine.Content{Sequences: []*engine.Sequence{v1}})
		require.NoError(t, err)
		b.e = e2
		require.Len(t, sends(b.run(start.Add(100*time.Hour))), 1)
		b.l.Enrollments = nil
		require.Empty(t, b.event(start.Add(200*time.Hour), "trial.started", nil))
	})
}

// TestStatusEventsBeforeDueTimers pins "unsubscribes take effect before the
// next send" at the tightest point: the status event arrives at the very
// instant an email is due (or a paused enrollment would resume into one).
// The status changes first, so nothing is sent in that Apply.
func TestStatusEventsBeforeDueTimers(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	due := start.Add(24 * time.Hour) // b is due: the wait ends now
	tests := []struct {
		name  string
		typ   string
		props map[string]any
		want  []engine.Effect
	}{
		{"unsubscribed", engine.EventEmailUnsubscribed, nil, []engine.Effect{
			engine.StatusChanged{From: engine.LeadActive, To: engine.LeadUnsubscribed, Event: "ev2"},
			engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Reason: "unsubscribed"},
		}},
		{"hard bounce", engine.EventEmailBounced, map[string]any{"kind": "hard"}, []engine.Effect{
			engine.StatusChanged{From: engine.LeadActive, To: engine.LeadBounced, Event: "ev2"},
			engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Reason: "bounced"},
		}},
		{"complained", engine.EventEmailComplained, nil, []engine.Effect{
			engine.StatusChanged{From: engine.LeadActive, To: engine.LeadComplained, Event: "ev2"},
			engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "w", Reason: "complained"},
		}},
		{"soft bounce changes nothing: the due email goes out", engine.EventEmailBounced, map[string]any{"kind": "soft"}, []engine.Effect{
			engine.SendEmail{SendID: "L1.s.1.b", Enrollment: "L1.s.1", Sequence: "s", Version: "v1", Step: "b", Template: "b",
				To: "ana@example.com", From: "hello@example.com"},
			engine.Completed{Enrollment: "L1.s.1", Sequence: "s"},
		}},
		{"any other event comes after the due timers", "page.viewed", nil, []engine.Effect{
			engine.SendEmail{SendID: "L1.s.1.b", Enrollment: "L1.s.1", Sequence: "s", Version: "v1", Step: "b", Template: "b",
				To: "ana@example.com", From: "hello@example.com"},
			engine.Completed{Enrollment: "L1.s.1", Sequence: "s"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, content(seq("s", email("a"), wait("w", 24*time.Hour), email("b"))), start, nil)
			require.Len(t, sends(b.event(start, "trial.started", nil)), 1)
			require.Equal(t, due, b.l.NextRunAt)
			require.Equal(t, tt.want, b.event(due, tt.typ, tt.props))
		})
	}
	t.Run("redelivered unsubscribe", func(t *testing.T) {
		t.Parallel()
		b := setup(t, content(seq("s", email("a"), wait("w", 24*time.Hour), email("b"))), start, nil)
		b.event(start, "trial.started", nil)
		b.event(start.Add(time.Hour), engine.EventEmailUnsubscribed, nil)
		// A complaint, then the unsubscribe again: the duplicate must not
		// move the status back.
		b.event(start.Add(2*time.Hour), engine.EventEmailComplained, nil)
		effs := b.apply(start.Add(3*time.Hour), &engine.Event{ID: "ev2", Type: engine.EventEmailUnsubscribed, Lead: "L1"})
		require.Equal(t, []engine.Effect{engine.Ignored{Event: "ev2", Reason: "duplicate event"}}, effs)
		require.Equal(t, engine.LeadComplained, b.l.Status)
	})
	t.Run("unsubscribe at the re-arm instant", func(t *testing.T) {
		t.Parallel()
		// b waits for the frequency cap; the escalation pauses it; at the
		// re-arm instant it would resume and send at once.
		c := scoringContent(hotModel(engine.Rep{ID: "sam"}), seq("s", email("a"), email("b")))
		c.Limits = engine.Limits{MaxEmails: 1, Period: 24 * time.Hour}
		b := setup(t, c, start, nil)
		b.event(start, "trial.started", nil)
		require.Len(t, find[engine.Paused](b.event(start.Add(time.Hour), "demo.requested", nil)), 1)
		rearm := b.l.NextRunAt
		require.Equal(t, start.Add(time.Hour+38*time.Hour+3*time.Minute), rearm)
		// Without the unsubscribe, the resume sends b.
		ctl := clone(t, b.l)
		effs, err := b.e.Apply(ctl, engine.Input{Now: rearm, Desk: &engine.Desk{}})
		require.NoError(t, err)
		require.Equal(t, []string{"resumed", "email.sent", "completed"}, actions(effs))

		effs = b.event(rearm, engine.EventEmailUnsubscribed, nil)
		require.Equal(t, []engine.Effect{
			engine.StatusChanged{From: engine.LeadActive, To: engine.LeadUnsubscribed, Event: "ev3"},
			engine.Exited{Enrollment: "L1.s.1", Sequence: "s", Step: "b", Reason: "unsubscribed"},
		}, effs)
		require.True(t, b.l.Armed)
	})
}
