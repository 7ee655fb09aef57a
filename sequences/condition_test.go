package sequences_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/sequences"
)

func TestConditionEval(t *testing.T) {
	t.Parallel()
	fields := map[string]sequences.Field{
		"plan":      {Name: "plan", Type: sequences.FieldString, Default: "free"},
		"employees": {Name: "employees", Type: sequences.FieldNumber},
		"vip":       {Name: "vip", Type: sequences.FieldBool},
		"tags":      {Name: "tags", Type: sequences.FieldList},
	}
	lead := &engine.Lead{Key: "L1", Email: "ana@x.example", Traits: map[string]any{
		"plan": "trial", "employees": 250, "vip": "yes", "tags": []any{"webinar", 3},
	}}
	en := &engine.Enrollment{Sent: []string{"welcome", "tips"}, Opened: []string{"welcome"}, Clicked: []string{"tips"}}
	ev := &engine.Event{Type: "page.viewed", Properties: map[string]any{"path": "/pricing"}}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		src       string
		withSteps bool
		env       engine.Env
		want      bool
	}{
		{`traits.plan == "trial"`, false, engine.Env{Lead: lead}, true},
		{`traits.employees >= 200`, false, engine.Env{Lead: lead}, true},         // int coerced to number
		{`traits.vip`, false, engine.Env{Lead: lead}, false},                     // wrong type reads as zero
		{`"webinar" in traits.tags`, false, engine.Env{Lead: lead}, true},        // non-strings dropped
		{`traits.plan == "free"`, false, engine.Env{Lead: &engine.Lead{}}, true}, // default
		{`traits.employees == 0`, false, engine.Env{}, true},                     // nil lead
		{`email endsWith "x.example"`, false, engine.Env{Lead: lead}, true},
		{`score >= 40`, false, engine.Env{Lead: lead, Score: 41}, true},
		{`event.type == "page.viewed" && event.properties.path == "/pricing"`, false, engine.Env{Lead: lead, Event: ev}, true},
		{`event.properties.path == "/pricing"`, false, engine.Env{Lead: lead}, false}, // no event
		{`now.Hour() == 9`, false, engine.Env{Now: now}, true},
		{`opened("welcome") && !opened("tips") && clicked("tips") && sent("tips")`, true, engine.Env{Lead: lead, Enrollment: en}, true},
		{`clicked("welcome")`, true, engine.Env{Lead: lead}, false}, // no enrollment
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			t.Parallel()
			c, err := sequences.CompileCondition(tt.src, fields, tt.withSteps)
			require.NoError(t, err)
			got, err := c.Eval(&tt.env)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestConditionCompileErrors(t *testing.T) {
	t.Parallel()
	fields := map[string]sequences.Field{"plan": {Name: "plan", Type: sequences.FieldString}}
	for _, src := range []string{
		`traits.plann == "x"`,      // unknown field
		`traits.plan > 3`,          // type error
		`score`,                    // not a bool
		`now() > now`,              // the clock builtin is disabled
		`opened("welcome")`,        // no step helpers outside sequences
		`traits.plan == "x" &&`,    // syntax
		string(make([]byte, 3000)), // too long
	} {
		_, err := sequences.CompileCondition(src, fields, false)
		require.Error(t, err, src)
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"90m", 90 * time.Minute, false},
		{"2h", 2 * time.Hour, false},
		{"3d", 72 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"10s", 10 * time.Second, false},
		{"5bd", 0, true},
		{"3 days", 0, true},
		{"30", 0, true},
		{"", 0, true},
		{"-1d", 0, true},
		{"99999999999d", 0, true},
	}
	for _, tt := range tests {
		got, err := sequences.ParseDuration(tt.in)
		if tt.err {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestParseCron(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	s, err := sequences.ParseCron("0 9 * * MON-FRI")
	require.NoError(t, err)
	// Saturday 2026-03-28 10:00 Berlin → Monday 2026-03-30 09:00 Berlin
	// (after the spring-forward change), in the zone of the input.
	got := s.Next(time.Date(2026, 3, 28, 10, 0, 0, 0, berlin))
	require.Equal(t, time.Date(2026, 3, 30, 9, 0, 0, 0, berlin), got)
	d, err := sequences.ParseCron("@weekly")
	require.NoError(t, err)
	require.Equal(t, time.Sunday, d.Next(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)).Weekday())
	for _, bad := range []string{"", "* * *", "61 * * * *", "@every 1h", "TZ=Europe/Berlin 0 9 * * *", "TZ=x", "CRON_TZ=", "0 9 * * FUNDAY"} {
		_, err := sequences.ParseCron(bad)
		require.Error(t, err, bad)
	}
}
