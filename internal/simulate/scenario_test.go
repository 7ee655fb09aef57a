package simulate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const head = "start: 2026-03-02T08:00:00Z\nuntil: 2026-03-30T00:00:00Z\n"

func TestParse(t *testing.T) {
	t.Parallel()
	src := head + `leads:
  - {id: L1, email: ana@example.com, traits: {first_name: Ana, timezone: Europe/Berlin, seats: 12}}
  - id: L2
    email: bo@example.com
events:
  - {at: +50h, lead: L1, type: email.clicked, properties: {step: tips}}
  - {at: 2026-03-02T08:00:00Z, lead: L2, type: trial.started, id: custom-1}
  - {at: 2026-03-02T08:00:00Z, lead: L1, type: trial.started, machine: true, traits: {plan: pro}}
reps:
  away: [sam]
  open: {ana: 2}
`
	sc, err := Parse("s.yaml", []byte(src))
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), sc.Start)
	require.Equal(t, time.Date(2026, 3, 30, 0, 0, 0, 0, time.UTC), sc.Until)
	require.Len(t, sc.Leads, 2)
	require.Equal(t, "Europe/Berlin", sc.Leads[0].Traits["timezone"])
	require.Equal(t, float64(12), sc.Leads[0].Traits["seats"], "numbers look as they would after JSON")
	require.Equal(t, Pos{Line: 4, Col: 10}, sc.Leads[0].Pos)

	// Sorted by time; ties keep file order.
	require.Len(t, sc.Events, 3)
	require.Equal(t, []string{"custom-1", "sim-3", "sim-1"}, []string{sc.Events[0].ID, sc.Events[1].ID, sc.Events[2].ID})
	require.Equal(t, sc.Start.Add(50*time.Hour), sc.Events[2].At)
	require.True(t, sc.Events[1].Machine)
	require.Equal(t, "pro", sc.Events[1].Traits["plan"])
	require.Equal(t, "tips", sc.Events[2].Properties["step"])
	require.Equal(t, []string{"sam"}, sc.Reps.Away)
	require.Equal(t, map[string]int{"ana": 2}, sc.Reps.Open)
}

func TestParseProblems(t *testing.T) {
	t.Parallel()
	lead := "leads:\n  - {id: L1, email: ana@example.com}\n"
	tests := []struct {
		name string
		src  string
		want []string // problems, in order
	}{
		{"syntax", "start: [\n", []string{"s.yaml:1:8: sequence end token ']' not found"}},
		{"unknown top key", head + "leeds: []\n", []string{`s.yaml:3:1: unknown key "leeds" (did you mean "leads"?)`}},
		{"unknown lead key", head + "leads:\n  - {id: L1, emial: a@b.c}\n", []string{`s.yaml:4:14: unknown key "emial" (did you mean "email"?)`}},
		{"unknown event key", head + lead + "events:\n  - {at: +1h, lead: L1, typ: x}\n", []string{`s.yaml:6:25: unknown key "typ" (did you mean "type"?)`}},
		{"wrong type", head + "leads:\n  - id: L1\n    traits: [1]\n", []string{"s.yaml:5:13: sequence was used where mapping is expected"}},
		{"mapping for a scalar", head + "leads:\n  - id: {a: 1}\n", []string{"s.yaml:4:9: expected a single value, found a mapping"}},
		{"bad start", "start: 2026-03-02\nuntil: 2026-03-30T00:00:00Z\n" + lead,
			[]string{`s.yaml:1:8: start: "2026-03-02" is not an RFC 3339 time such as 2026-03-02T08:00:00Z`}},
		{"missing until", "start: 2026-03-02T08:00:00Z\n" + lead, []string{"s.yaml:1:1: missing until (an RFC 3339 time such as 2026-03-02T08:00:00Z)"}},
		{"until before start", "start: 2026-03-02T08:00:00Z\nuntil: 2026-03-01T00:00:00Z\n" + lead,
			[]string{"s.yaml:2:8: until (2026-03-01T00:00:00Z) must be after start (2026-03-02T08:00:00Z)"}},
		{"no leads", head, []string{"s.yaml:1:1: no leads: declare at least one under leads:"}},
		{"duplicate lead", head + "leads:\n  - {id: L1}\n  - {id: L1}\n", []string{`s.yaml:5:10: lead "L1" is declared twice (first at line 4)`}},
		{"bad email", head + "leads:\n  - {id: L1, email: nope}\n", []string{`s.yaml:4:21: lead "L1": email "nope" is not an address`}},
		{"every event problem", head + lead + "events:\n  - {at: +2x, lead: L2, type: a}\n  - {at: 2026-04-01T00:00:00Z, lead: L1}\n  - {at: 2026-03-01T00:00:00Z, lead: L1, type: b}\n  - {at: tomorrow, lead: L1, type: c}\n  - {lead: L1, type: d}\n", []string{
			`s.yaml:6:10: at: offset "+2x": unknown unit 'x' (use w, d, h, m or s)`,
			`s.yaml:6:21: unknown lead "L2" (did you mean "L1"?)`,
			`s.yaml:7:10: events[1]: missing type`,
			`s.yaml:7:10: event at 2026-04-01T00:00:00Z is not before until (2026-03-30T00:00:00Z)`,
			`s.yaml:8:10: event at 2026-03-01T00:00:00Z is before start (2026-03-02T08:00:00Z)`,
			`s.yaml:9:10: at: "tomorrow" is neither an RFC 3339 time (2026-03-02T08:00:00Z) nor an offset from start (+50h, +2d, +1d6h30m)`,
			`s.yaml:10:12: events[4]: missing at`,
		}},
		{"anchors", head + "leads:\n  - &a {id: L1}\n  - *a\n", []string{"s.yaml:4:5: YAML anchors and aliases are not allowed in scenarios"}},
		{"not a mapping", "- 1\n- 2\n", []string{"s.yaml:1:1: expected a mapping with start, until, leads and events, found a sequence"}},
		{"empty", "", []string{"s.yaml:1:1: expected one YAML document with start, until, leads and events"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("s.yaml", []byte(tt.src))
			require.Error(t, err)
			require.ErrorIs(t, err, ErrScenario)
			var pe *ProblemsError
			require.True(t, errors.As(err, &pe))
			got := make([]string, len(pe.Problems))
			for i, p := range pe.Problems {
				got[i] = p.String()
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseOffset(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{"+50h", 50 * time.Hour, ""},
		{"+2d", 48 * time.Hour, ""},
		{"+1w2d", 9 * 24 * time.Hour, ""},
		{"+1d6h30m", 30*time.Hour + 30*time.Minute, ""},
		{"+90s", 90 * time.Second, ""},
		{"+0m", 0, ""},
		{"50h", 0, "must look like"},
		{"+", 0, "must look like"},
		{"+h", 0, "must look like"},
		{"+5", 0, "must look like"},
		{"+5y", 0, "unknown unit"},
		{"+99999999999999w", 0, "too large"},
		{"+2000000000w", 0, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseOffset(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseTooLarge(t *testing.T) {
	t.Parallel()
	_, err := Parse("big.yaml", []byte(strings.Repeat("#", MaxScenarioSize+1)))
	require.ErrorIs(t, err, ErrScenario)
	require.ErrorContains(t, err, "the limit is")
}

func TestClone(t *testing.T) {
	t.Parallel()
	src := head + `leads:
  - {id: A, email: a@example.com}
  - {id: B, email: b@example.com}
events:
  - {at: +1h, lead: B, type: x}
  - {at: +1h, lead: A, type: y}
`
	sc, err := Parse("s.yaml", []byte(src))
	require.NoError(t, err)
	c := Clone(sc, 5)
	ids := []string{}
	for _, l := range c.Leads {
		ids = append(ids, l.ID+" "+l.Email)
	}
	require.Equal(t, []string{"A.1 a+1@example.com", "B.1 b+1@example.com", "A.2 a+2@example.com", "B.2 b+2@example.com", "A.3 a+3@example.com"}, ids)
	evs := []string{}
	for _, e := range c.Events {
		evs = append(evs, e.Lead+" "+e.Type+" "+e.ID)
	}
	require.Equal(t, []string{"B.1 x sim-1/B.1", "B.2 x sim-1/B.2", "A.1 y sim-2/A.1", "A.2 y sim-2/A.2", "A.3 y sim-2/A.3"}, evs)
	require.Len(t, sc.Leads, 2, "the original is untouched")
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(head + "leads:\n  - {id: L1, email: a@b.c}\nevents:\n  - {at: +1h, lead: L1, type: x}\n"))
	f.Add([]byte("start: [\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse("f.yaml", data)
		if err != nil {
			var pe *ProblemsError
			if errors.As(err, &pe) {
				require.NotEmpty(t, pe.Problems)
			}
			return
		}
		require.True(t, sc.Until.After(sc.Start))
		require.NotEmpty(t, sc.Leads)
	})
}
