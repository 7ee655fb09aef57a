package engine_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

func TestApplyRejectsBadInputAndLeavesLeadUnchanged(t *testing.T) {
	t.Parallel()
	now := at(t, "2026-03-02T08:00:00Z")
	tests := []struct {
		name    string
		lead    func() *engine.Lead
		in      engine.Input
		wantErr error
	}{
		{"missing id", nil, engine.Input{Now: now, Event: &engine.Event{Type: "x", Lead: "L1"}}, engine.ErrInvalidEvent},
		{"missing type", nil, engine.Input{Now: now, Event: &engine.Event{ID: "e", Lead: "L1"}}, engine.ErrInvalidEvent},
		{"missing lead", nil, engine.Input{Now: now, Event: &engine.Event{ID: "e", Type: "x"}}, engine.ErrInvalidEvent},
		{"other lead", nil, engine.Input{Now: now, Event: &engine.Event{ID: "e", Type: "x", Lead: "L2"}}, engine.ErrInvalidEvent},
		{"zero now", nil, engine.Input{Event: &engine.Event{ID: "e", Type: "x", Lead: "L1"}}, engine.ErrInvalidInput},
		{"nil lead", func() *engine.Lead { return nil }, engine.Input{Now: now}, engine.ErrInvalidInput},
		{"lead without key", func() *engine.Lead { return &engine.Lead{} }, engine.Input{Now: now}, engine.ErrInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, content(seq("s", email("welcome"))), now.Add(-time.Hour), map[string]any{"a": 1.0})
			b.event(now.Add(-time.Hour), "trial.started", nil)
			l := b.l
			if tt.lead != nil {
				l = tt.lead()
			}
			var before *engine.Lead
			if l != nil {
				before = clone(t, l)
			}
			effs, err := b.e.Apply(l, tt.in)
			require.True(t, errors.Is(err, tt.wantErr), "got %v", err)
			require.Nil(t, effs)
			if l != nil {
				require.Equal(t, before, clone(t, l))
			}
		})
	}
}

func TestNewRejectsBrokenContent(t *testing.T) {
	t.Parallel()
	bad := seq("s", &engine.Step{ID: "a", Kind: engine.StepGoto, Then: "nowhere"}, email("a"))
	c := content(bad)
	c.Current["ghost"] = "v9"
	_, err := engine.New(c)
	require.ErrorIs(t, err, engine.ErrInvalidContent)
	require.ErrorContains(t, err, `"nowhere" does not exist`)
	require.ErrorContains(t, err, "step a: defined twice")
	require.ErrorContains(t, err, "ghost")
	_, err = engine.New(nil)
	require.ErrorIs(t, err, engine.ErrInvalidContent)
}

func TestIDs(t *testing.T) {
	t.Parallel()
	require.Equal(t, "L1.trial-nurture.1", engine.EnrollmentID("L1", "trial-nurture", 1))
	require.Equal(t, "L1.trial-nurture.1.welcome", engine.SendID("L1.trial-nurture.1", "welcome"))
	require.Equal(t, "L1.escalation-2", engine.EscalationID("L1", 2))
	require.Equal(t, "ana%40x%2Eio.a%20b.1", engine.EnrollmentID("ana@x.io", "a b", 1))
	// Escaping keeps kinds apart: a sequence called "escalation" is not an escalation.
	require.NotEqual(t, engine.EscalationID("L1", 1), engine.EnrollmentID("L1", "escalation", 1))
}

func TestEmailAndWaitSteps(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	b := setup(t, content(seq("trial", email("welcome"), wait("pause", 48*time.Hour), email("tips"))), start, nil)
	effs := b.event(start, "trial.started", nil)
	require.Equal(t, []string{"enrolled", "email.sent", "waiting"}, actions(effs))
	s := sends(effs)[0]
	require.Equal(t, engine.SendEmail{SendID: "L1.trial.1.welcome", Enrollment: "L1.trial.1", Sequence: "trial", Version: "v1",
		Step: "welcome", Template: "welcome", To: "ana@example.com", From: "hello@example.com"}, s)
	w := find[engine.Waiting](effs)[0]
	require.Equal(t, start.Add(48*time.Hour), w.Until)
	require.Equal(t, "wait", w.Reason)
	require.Equal(t, start.Add(48*time.Hour), b.l.NextRunAt)

	// Never before due.
	require.Empty(t, b.apply(start.Add(47*time.Hour), nil))
	effs = b.run(start.Add(100 * time.Hour))
	require.Equal(t, []string{"email.sent", "completed"}, actions(effs))
	en := b.l.Enrollments[0]
	require.Equal(t, engine.EnrollmentCompleted, en.Status)
	require.Equal(t, []string{"welcome", "tips"}, en.Sent)
	require.True(t, b.l.NextRunAt.IsZero())
	// A late tick changes nothing.
	require.Empty(t, b.apply(start.Add(200*time.Hour), nil))
}

func TestEmailSuppressed(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	b := setup(t, content(seq("s", email("welcome"))), start, nil)
	b.l.Email = ""
	effs := b.event(start, "trial.started", nil)
	require.Equal(t, []string{"enrolled", "email.suppressed", "completed"}, actions(effs))
	require.Equal(t, "no_email", find[engine.EmailSuppressed](effs)[0].Reason)
	require.Empty(t, b.l.Enrollments[0].Sent)
}

func TestBusinessDays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		start string // UTC
		days  int
		hol   holidays
		tz    string
		want  string
	}{
		{"friday to monday", "2026-03-06T10:00:00Z", 1, nil, "", "2026-03-09T10:00:00Z"},
		{"thursday plus 3 over weekend", "2026-03-05T10:00:00Z", 3, nil, "", "2026-03-10T10:00:00Z"},
		{"holiday monday", "2026-03-06T10:00:00Z", 1, holidays{"2026-03-09": true}, "", "2026-03-10T10:00:00Z"},
		{"saturday start", "2026-03-07T10:00:00Z", 1, nil, "", "2026-03-09T10:00:00Z"},
		{"christmas week", "2026-12-24T15:00:00Z", 2, holidays{"2026-12-25": true, "2026-12-28": true}, "", "2026-12-30T15:00:00Z"},
		// Same local time across Berlin's spring-forward (09:00 CET → 09:00 CEST).
		{"across DST in lead zone", "2026-03-27T08:00:00Z", 1, nil, "Europe/Berlin", "2026-03-30T07:00:00Z"},
		// Local Saturday 00:30 in Tokyo is Friday in UTC: counting is local.
		{"local weekday", "2026-03-06T15:30:00Z", 1, nil, "Asia/Tokyo", "2026-03-08T15:30:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := seq("s", &engine.Step{ID: "bd", Kind: engine.StepWait, BusinessDays: tt.days}, email("after"))
			s.Window = &engine.Window{TimezoneTrait: "timezone", Holidays: tt.hol}
			start := at(t, tt.start)
			b := setup(t, content(s), start, map[string]any{"timezone": tt.tz})
			effs := b.event(start, "trial.started", nil)
			w := find[engine.Waiting](effs)
			require.Len(t, w, 1)
			require.Equal(t, "business_days", w[0].Reason)
			require.Equal(t, at(t, tt.want), w[0].Until)
			effs = b.run(at(t, tt.want))
			require.Len(t, sends(effs), 1)
		})
	}
}

func TestWaitUntilDST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tz, spec, start string
		want                  []string // successive firings, UTC
	}{
		{"berlin 09:00 across spring-forward", "Europe/Berlin", "0 9 * * *", "2026-03-28T10:00:00Z",
			[]string{"2026-03-29T07:00:00Z", "2026-03-30T07:00:00Z"}},
		{"berlin 09:00 across fall-back", "Europe/Berlin", "0 9 * * *", "2026-10-24T10:00:00Z",
			[]string{"2026-10-25T08:00:00Z", "2026-10-26T08:00:00Z"}},
		{"new york 09:00 across spring-forward", "America/New_York", "0 9 * * *", "2026-03-07T15:00:00Z",
			[]string{"2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"}},
		{"new york 09:00 across fall-back", "America/New_York", "0 9 * * *", "2026-10-31T15:00:00Z",
			[]string{"2026-11-01T14:00:00Z", "2026-11-02T14:00:00Z"}},
		// 02:30 does not exist on 2026-03-29 in Berlin: fire at 03:00 CEST, the first instant after the gap.
		{"berlin time in gap", "Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
		{"new york time in gap", "America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z",
			[]string{"2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"}},
		// 02:30 happens twice on 2026-10-25 in Berlin: fire once, at the first (CEST) occurrence.
		{"berlin doubled time", "Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"new york doubled time", "America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z",
			[]string{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}},
		{"leap day", "UTC", "0 9 29 2 *", "2026-03-01T00:00:00Z",
			[]string{"2028-02-29T09:00:00Z", "2032-02-29T09:00:00Z"}},
		{"leap day in zone", "America/New_York", "0 9 29 2 *", "2028-02-28T15:00:00Z",
			[]string{"2028-02-29T14:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// wait_until, email, goto wait_until: one firing per loop.
			s := seq("s",
				&engine.Step{ID: "until", Kind: engine.StepWaitUntil, At: mustCron(t, tt.spec)},
				email("ping"),
				&engine.Step{ID: "again", Kind: engine.StepWaitUntil, At: mustCron(t, tt.spec)},
				&engine.Step{ID: "done", Kind: engine.StepEnd})
			start := at(t, tt.start)
			b := setup(t, content(s), start, map[string]any{"timezone": tt.tz})
			effs := b.event(start, "trial.started", nil)
			var got []string
			for _, w := range find[engine.Waiting](effs) {
				got = append(got, w.Until.Format(time.RFC3339))
			}
			effs = b.run(at(t, tt.want[0]))
			require.Len(t, sends(effs), 1)
			for _, w := range find[engine.Waiting](effs) {
				got = append(got, w.Until.Format(time.RFC3339))
			}
			require.Equal(t, tt.want, got[:len(tt.want)])
		})
	}
}

func TestSendWindow(t *testing.T) {
	t.Parallel()
	berlin := mustZone(t, "Europe/Berlin")
	tests := []struct {
		name   string
		spec   string
		def    *time.Location
		hol    engine.Calendar
		traits map[string]any
		now    string
		want   string // "" = sends now
		exit   string
	}{
		{"inside window", "* 9-16 * * MON-FRI", nil, nil, nil, "2026-03-02T10:15:30Z", "", ""},
		{"before window", "* 9-16 * * MON-FRI", nil, nil, nil, "2026-03-02T07:59:00Z", "2026-03-02T09:00:00Z", ""},
		{"after window friday", "* 9-16 * * MON-FRI", nil, nil, nil, "2026-03-06T17:00:00Z", "2026-03-09T09:00:00Z", ""},
		{"lead zone from trait", "* 9-16 * * *", nil, nil, map[string]any{"tz": "America/New_York"}, "2026-03-02T10:00:00Z", "2026-03-02T14:00:00Z", ""},
		{"missing trait uses default zone", "* 9-16 * * *", berlin, nil, nil, "2026-03-02T07:00:00Z", "2026-03-02T08:00:00Z", ""},
		{"invalid trait uses default zone", "* 9-16 * * *", berlin, nil, map[string]any{"tz": "Mars/Olympus"}, "2026-03-02T07:00:00Z", "2026-03-02T08:00:00Z", ""},
		{"non-string trait uses default zone", "* 9-16 * * *", berlin, nil, map[string]any{"tz": 42.0}, "2026-03-02T07:00:00Z", "2026-03-02T08:00:00Z", ""},
		{"Local is never trusted", "* 9-16 * * *", nil, nil, map[string]any{"tz": "Local"}, "2026-03-02T07:00:00Z", "2026-03-02T09:00:00Z", ""},
		{"invalid trait no default is UTC", "* 9-16 * * *", nil, nil, map[string]any{"tz": "nope"}, "2026-03-02T07:00:00Z", "2026-03-02T09:00:00Z", ""},
		{"crosses midnight: evening", "* 22-23,0-5 * * *", nil, nil, nil, "2026-03-02T21:30:00Z", "2026-03-02T22:00:00Z", ""},
		{"crosses midnight: after midnight", "* 22-23,0-5 * * *", nil, nil, nil, "2026-03-03T03:10:00Z", "", ""},
		{"crosses midnight: morning", "* 22-23,0-5 * * *", nil, nil, nil, "2026-03-03T06:00:00Z", "2026-03-03T22:00:00Z", ""},
		{"holiday skipped", "* 9-16 * * MON-FRI", nil, holidays{"2026-03-02": true}, nil, "2026-03-02T10:00:00Z", "2026-03-03T09:00:00Z", ""},
		{"holiday is local", "* * * * *", nil, holidays{"2026-03-03": true}, map[string]any{"tz": "Asia/Tokyo"}, "2026-03-02T16:00:00Z", "2026-03-03T15:00:00Z", ""},
		{"never opens", "* 9-16 * * *", nil, everyDay{}, nil, "2026-03-02T10:00:00Z", "", "send_window_never_opens"},
		{"holidays only window", "", nil, holidays{"2026-03-02": true}, nil, "2026-03-02T10:00:00Z", "2026-03-03T00:00:00Z", ""},
		{"09:00 local across spring-forward", "0 9 * * *", nil, nil, map[string]any{"tz": "America/New_York"}, "2026-03-07T15:00:00Z", "2026-03-08T13:00:00Z", ""},
		{"window only in gap opens after gap", "* 2 * * *", nil, nil, map[string]any{"tz": "Europe/Berlin"}, "2026-03-28T23:00:00Z", "2026-03-29T01:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := seq("s", email("welcome"))
			s.Window = &engine.Window{TimezoneTrait: "tz", DefaultZone: tt.def, Holidays: tt.hol}
			if tt.spec != "" {
				s.Window.At = mustCron(t, tt.spec)
			}
			now := at(t, tt.now)
			b := setup(t, content(s), now, tt.traits)
			effs := b.event(now, "trial.started", nil)
			switch {
			case tt.exit != "":
				x := find[engine.Exited](effs)
				require.Len(t, x, 1)
				require.Equal(t, tt.exit, x[0].Reason)
			case tt.want == "":
				require.Len(t, sends(effs), 1)
			default:
				require.Empty(t, sends(effs))
				w := find[engine.Waiting](effs)
				require.Len(t, w, 1)
				require.Equal(t, "send_window", w[0].Reason)
				require.Equal(t, at(t, tt.want), w[0].Until)
				require.Equal(t, time.UTC, w[0].Until.Location())
				effs = b.run(at(t, tt.want))
				require.Len(t, sends(effs), 1, "sends once the window opens")
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	clickedTips := cond(func(env *engine.Env) (bool, error) { return env.Event.Properties["step"] == "tips", nil })
	mk := func() *engine.Content {
		return content(seq("s",
			email("tips"),
			&engine.Step{ID: "clicked", Kind: engine.StepWaitFor, Event: engine.EventEmailClicked, Match: clickedTips, Timeout: 72 * time.Hour, OnTimeout: "nudge"},
			&engine.Step{ID: "offer", Kind: engine.StepEmail, Template: "offer", Then: "end"},
			email("nudge")))
	}
	t.Run("matched", func(t *testing.T) {
		t.Parallel()
		b := setup(t, mk(), start, nil)
		effs := b.event(start, "trial.started", nil)
		w := find[engine.Waiting](effs)[0]
		require.Equal(t, engine.Waiting{Enrollment: "L1.s.1", Sequence: "s", Step: "clicked", Until: start.Add(72 * time.Hour), Reason: "wait_for", Event: "email.clicked"}, w)
		// A click on another step does not match.
		effs = b.event(start.Add(time.Hour), engine.EventEmailClicked, map[string]any{"step": "other"})
		require.Equal(t, []string{"ignored"}, actions(effs))
		effs = b.event(start.Add(2*time.Hour), engine.EventEmailClicked, map[string]any{"step": "tips"})
		require.Equal(t, []string{"email.sent", "completed"}, actions(effs))
		require.Equal(t, "offer", sends(effs)[0].Step)
		require.Equal(t, []string{"tips"}, b.l.Enrollments[0].Clicked)
		require.Empty(t, b.run(start.Add(100*time.Hour)))
	})
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		b := setup(t, mk(), start, nil)
		b.event(start, "trial.started", nil)
		require.Empty(t, b.apply(start.Add(72*time.Hour-time.Second), nil))
		effs := b.run(start.Add(100 * time.Hour))
		require.Equal(t, []string{"email.sent", "completed"}, actions(effs))
		require.Equal(t, "nudge", sends(effs)[0].Step)
		// A click after the timeout path was taken changes nothing in the sequence.
		effs = b.event(start.Add(101*time.Hour), engine.EventEmailClicked, map[string]any{"step": "tips"})
		require.Empty(t, effs)
	})
	t.Run("late tick still times out before the event", func(t *testing.T) {
		t.Parallel()
		// The runtime was late: the click arrives after the timeout was due
		// but before the tick ran. State as of now: the timeout happened first.
		b := setup(t, mk(), start, nil)
		b.event(start, "trial.started", nil)
		effs := b.event(start.Add(80*time.Hour), engine.EventEmailClicked, map[string]any{"step": "tips"})
		require.Equal(t, []string{"email.sent", "completed"}, actions(effs))
		require.Equal(t, "nudge", sends(effs)[0].Step)
	})
}

func TestBranch(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	clicked := cond(func(env *engine.Env) (bool, error) {
		for _, s := range env.Enrollment.Clicked {
			if s == "welcome" {
				return true, nil
			}
		}
		return false, nil
	})
	opened := cond(func(env *engine.Env) (bool, error) { return len(env.Enrollment.Opened) > 0, nil })
	hot := cond(func(env *engine.Env) (bool, error) { return env.Score >= 10, nil })
	tests := []struct {
		name   string
		events func(b *bundle)
		traits map[string]any
		want   string
	}{
		{"clicked", func(b *bundle) {
			b.event(start.Add(time.Hour), engine.EventEmailClicked, map[string]any{"step": "welcome", "sequence": "s"})
		}, nil, "clicked-mail"},
		{"opened only", func(b *bundle) {
			b.event(start.Add(time.Hour), engine.EventEmailOpened, map[string]any{"step": "welcome"})
		}, nil, "opened-mail"},
		{"score", func(b *bundle) { b.event(start.Add(time.Hour), "demo.requested", nil) }, nil, "hot-mail"},
		{"trait", nil, map[string]any{"plan": "enterprise"}, "enterprise-mail"},
		{"else", nil, nil, "fallback-mail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := content(seq("s",
				email("welcome"),
				wait("w", 24*time.Hour),
				&engine.Step{ID: "b", Kind: engine.StepBranch, Cases: []engine.BranchCase{
					{If: clicked, Goto: "clicked-mail"},
					{If: opened, Goto: "opened-mail"},
					{If: hot, Goto: "hot-mail"},
					{If: traitIs("plan", "enterprise"), Goto: "enterprise-mail"},
				}, Else: "fallback-mail"},
				&engine.Step{ID: "clicked-mail", Kind: engine.StepEmail, Template: "a", Then: "end"},
				&engine.Step{ID: "opened-mail", Kind: engine.StepEmail, Template: "b", Then: "end"},
				&engine.Step{ID: "hot-mail", Kind: engine.StepEmail, Template: "c", Then: "end"},
				&engine.Step{ID: "enterprise-mail", Kind: engine.StepEmail, Template: "d", Then: "end"},
				&engine.Step{ID: "fallback-mail", Kind: engine.StepEmail, Template: "e"},
			))
			c.Scoring = &engine.Scoring{Rules: []*engine.Rule{{ID: "demo", Event: "demo.requested", Points: 20}}}
			b := setup(t, c, start, tt.traits)
			b.event(start, "trial.started", nil)
			if tt.events != nil {
				tt.events(b)
			}
			effs := b.run(start.Add(48 * time.Hour))
			s := sends(effs)
			require.Len(t, s, 1)
			require.Equal(t, tt.want, s[0].Step)
			require.Equal(t, engine.EnrollmentCompleted, b.l.Enrollments[0].Status)
		})
	}
}

func TestConditionErrorCountsAsFalse(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	boom := cond(func(*engine.Env) (bool, error) { return false, errors.New("boom") })
	c := content(seq("s", &engine.Step{ID: "b", Kind: engine.StepBranch, Cases: []engine.BranchCase{{If: boom, Goto: "x"}}, Else: "y"},
		&engine.Step{ID: "x", Kind: engine.StepEmail, Template: "x", Then: "end"}, email("y")))
	b := setup(t, c, start, nil)
	effs := b.event(start, "trial.started", nil)
	require.Equal(t, []string{"enrolled", "condition.failed", "email.sent", "completed"}, actions(effs))
	require.Equal(t, engine.ConditionFailed{Where: "branch", Sequence: "s", Step: "b", Event: "ev1", Error: "boom"}, effs[1])
	require.Equal(t, "y", sends(effs)[0].Step)
}

func TestGotoLoopGuard(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	c := content(seq("s", email("a"), &engine.Step{ID: "back", Kind: engine.StepGoto, Then: "a"}))
	b := setup(t, c, start, nil)
	effs := b.event(start, "trial.started", nil)
	x := find[engine.Exited](effs)
	require.Len(t, x, 1)
	require.Equal(t, "loop", x[0].Reason)
	require.Len(t, sends(effs), 1, "a step's email is sent once per enrollment, even when revisited")
	sup := find[engine.EmailSuppressed](effs)
	require.NotEmpty(t, sup)
	require.Equal(t, "already_sent", sup[0].Reason)

	// A loop with a wait in it is fine: it waits.
	c = content(seq("s", wait("w", time.Hour), &engine.Step{ID: "back", Kind: engine.StepGoto, Then: "w"}))
	b = setup(t, c, start, nil)
	b.event(start, "trial.started", nil)
	b.run(start.Add(10 * time.Hour))
	require.Equal(t, engine.EnrollmentActive, b.l.Enrollments[0].Status)
	require.Equal(t, start.Add(11*time.Hour), b.l.NextRunAt)
}

func TestEmptySequenceAndEndStep(t *testing.T) {
	t.Parallel()
	start := at(t, "2026-03-02T08:00:00Z")
	b := setup(t, content(seq("empty"), seq("ends", &engine.Step{ID: "stop", Kind: engine.StepEnd}, email("never"))), start, nil)
	effs := b.event(start, "trial.started", nil)
	require.Equal(t, []string{"enrolled", "completed", "enrolled", "completed"}, actions(effs))
	require.Equal(t, "empty", find[engine.Enrolled](effs)[0].Sequence, "sequences enroll in id order")
}
