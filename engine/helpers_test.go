package engine_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

// cond adapts a func to engine.Condition.
type cond func(env *engine.Env) (bool, error)

func (c cond) Eval(env *engine.Env) (bool, error) { return c(env) }

// always and never are constant conditions.
var (
	always = cond(func(*engine.Env) (bool, error) { return true, nil })
	never  = cond(func(*engine.Env) (bool, error) { return false, nil })
)

// traitIs holds when the lead's trait k equals v.
func traitIs(k string, v any) cond {
	return func(env *engine.Env) (bool, error) { return env.Lead.Traits[k] == v, nil }
}

// holidays is a Calendar of "YYYY-MM-DD" dates.
type holidays map[string]bool

func (h holidays) Holiday(y int, m time.Month, d int) bool {
	return h[time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)]
}

type everyDay struct{}

func (everyDay) Holiday(int, time.Month, int) bool { return true }

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func mustCron(t testing.TB, spec string) engine.Schedule {
	t.Helper()
	s, err := cronParser.Parse(spec)
	require.NoError(t, err)
	return s
}

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func at(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v.UTC()
}

// seq builds a one-version sequence enrolled on trial.started.
func seq(id string, steps ...*engine.Step) *engine.Sequence {
	return &engine.Sequence{
		ID: id, Version: "v1",
		Enroll: engine.Enroll{On: []string{"trial.started"}, Reenroll: engine.Reenroll{Mode: engine.ReenrollNever}},
		Steps:  steps,
		From:   "hello@example.com",
	}
}

func content(seqs ...*engine.Sequence) *engine.Content {
	c := &engine.Content{Current: map[string]string{}}
	for _, s := range seqs {
		c.Sequences = append(c.Sequences, s)
		c.Current[s.ID] = s.Version
	}
	return c
}

func email(id string) *engine.Step { return &engine.Step{ID: id, Kind: engine.StepEmail, Template: id} }
func wait(id string, d time.Duration) *engine.Step {
	return &engine.Step{ID: id, Kind: engine.StepWait, Wait: d}
}

type bundle struct {
	t    *testing.T
	e    *engine.Engine
	l    *engine.Lead
	desk *engine.Desk
	n    int
}

func setup(t *testing.T, c *engine.Content, start time.Time, traits map[string]any) *bundle {
	t.Helper()
	e, err := engine.New(c)
	require.NoError(t, err)
	l := engine.NewLead("L1", start)
	l.Email = "ana@example.com"
	l.Traits = traits
	return &bundle{t: t, e: e, l: l, desk: &engine.Desk{}}
}

// event applies an event of type typ at now.
func (b *bundle) event(now time.Time, typ string, props map[string]any) []engine.Effect {
	b.t.Helper()
	b.n++
	return b.apply(now, &engine.Event{ID: "ev" + itoa(b.n), Type: typ, Lead: b.l.Key, Time: now, Properties: props})
}

func (b *bundle) apply(now time.Time, ev *engine.Event) []engine.Effect {
	b.t.Helper()
	effs, err := b.e.Apply(b.l, engine.Input{Now: now, Event: ev, Desk: b.desk})
	require.NoError(b.t, err)
	return effs
}

// run ticks the lead at every timer due up to until, like the runtime's
// sweeper on a virtual clock.
func (b *bundle) run(until time.Time) []engine.Effect {
	b.t.Helper()
	var out []engine.Effect
	for i := 0; !b.l.NextRunAt.IsZero() && !b.l.NextRunAt.After(until); i++ {
		require.Less(b.t, i, 10000, "runaway timers")
		out = append(out, b.apply(b.l.NextRunAt, nil)...)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

func actions(effs []engine.Effect) []string {
	out := make([]string, len(effs))
	for i, f := range effs {
		out[i] = f.Action()
	}
	return out
}

func sends(effs []engine.Effect) []engine.SendEmail {
	var out []engine.SendEmail
	for _, f := range effs {
		if s, ok := f.(engine.SendEmail); ok {
			out = append(out, s)
		}
	}
	return out
}

func find[T engine.Effect](effs []engine.Effect) []T {
	var out []T
	for _, f := range effs {
		if v, ok := f.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func clone(t testing.TB, l *engine.Lead) *engine.Lead {
	t.Helper()
	b, err := json.Marshal(l)
	require.NoError(t, err)
	var c engine.Lead
	require.NoError(t, json.Unmarshal(b, &c))
	return &c
}
