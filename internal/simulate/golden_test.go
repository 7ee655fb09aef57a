package simulate_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/simulate"
	"github.com/nurture-oss/nurture/sequences"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts under testdata/")

const examplesDir = "../../examples"

var loadExamples = sync.OnceValues(func() (*sequences.Bundle, error) { return sequences.Load(examplesDir) })

func setup(t testing.TB) *sequences.Bundle {
	t.Helper()
	b, err := loadExamples()
	require.NoError(t, err, "the example content must load")
	return b
}

func transcript(t testing.TB, b *sequences.Bundle, sc *simulate.Scenario, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := simulate.Write(context.Background(), b.Content, sc, simulate.Options{DefaultZone: b.Project.Timezone}, format, &buf)
	require.NoError(t, err)
	return buf.Bytes()
}

func scenarios(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "scenarios", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// TestGolden pins the transcript of every example scenario in both formats.
// Run with -update to rewrite them, then read the diff.
func TestGolden(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, file := range scenarios(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc, err := simulate.ParseFile(file)
			require.NoError(t, err)
			for format, ext := range map[string]string{"json": ".jsonl", "text": ".txt"} {
				got := transcript(t, b, sc, format)
				golden := filepath.Join("testdata", name+ext)
				if *update {
					require.NoError(t, os.WriteFile(golden, got, 0o644))
					continue
				}
				want, err := os.ReadFile(golden)
				require.NoError(t, err, "missing golden file: run go test ./internal/simulate -run TestGolden -update")
				require.Equal(t, string(want), string(got), "transcript of %s (%s) changed; if intended, rerun with -update and review the diff", name, format)
			}
		})
	}
}

// TestDeterministic: two runs of the same scenario are byte-identical.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, file := range scenarios(t) {
		sc, err := simulate.ParseFile(file)
		require.NoError(t, err)
		sc = simulate.Clone(sc, 3*len(sc.Leads))
		for _, format := range []string{"json", "text"} {
			first := transcript(t, b, sc, format)
			second := transcript(t, b, sc, format)
			require.Equal(t, first, second, "%s (%s)", file, format)
		}
	}
}

// BenchmarkSimulate10k runs 10,000 leads through the 30-day trial
// onboarding scenario, writing the JSON transcript (to io.Discard).
func BenchmarkSimulate10k(b *testing.B) {
	bundle := setup(b)
	sc, err := simulate.ParseFile(filepath.Join(examplesDir, "scenarios", "trial-onboarding.yaml"))
	require.NoError(b, err)
	sc = simulate.Clone(sc, 10_000)
	opts := simulate.Options{DefaultZone: bundle.Project.Timezone}
	for _, format := range []string{"json", "text"} {
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var out countWriter
				sum, err := simulate.Write(context.Background(), bundle.Content, sc, opts, format, &out)
				require.NoError(b, err)
				require.Equal(b, 10_000, sum.Leads)
				b.ReportMetric(float64(out.lines), "lines/op")
			}
		})
	}
}

type countWriter struct{ lines int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

// TestUnsubscribeAtDueInstant pins the promise "unsubscribes take effect
// before the next send" at the tightest point: the unsubscribe is applied
// at the very instant the next email is due. The simulator applies the
// scripted event first; the email must not go out.
func TestUnsubscribeAtDueInstant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sc, err := simulate.Parse("inline.yaml", []byte(`start: 2026-03-02T00:00:00Z
until: 2026-03-06T00:00:00Z
leads: [{id: uma, email: uma@umber.example, traits: {plan: trial, timezone: America/New_York}}]
events:
  - {at: 2026-03-02T14:00:00Z, lead: uma, type: trial.started}
  - {at: 2026-03-03T14:00:00Z, lead: uma, type: email.unsubscribed}   # first-dashboard is due now
`))
	require.NoError(t, err)
	var sent []string
	_, err = simulate.Run(context.Background(), b.Content, sc, simulate.Options{}, func(e *simulate.Entry) error {
		if e.Action == "email.sent" {
			sent = append(sent, e.At.Format("01-02 15:04")+" "+e.Template)
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"03-02 14:00 trial-welcome"}, sent)
}

func TestUnknownRep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sc, err := simulate.Parse("reps.yaml", []byte("start: 2026-03-02T00:00:00Z\nuntil: 2026-03-06T00:00:00Z\nleads: [{id: L1}]\nreps:\n  away: [anna, ben]\n"))
	require.NoError(t, err)
	_, err = simulate.Run(context.Background(), b.Content, sc, simulate.Options{}, func(*simulate.Entry) error { return nil })
	require.ErrorIs(t, err, simulate.ErrScenario)
	require.EqualError(t, err, `reps.yaml:5:10: reps.away: unknown rep "anna" (did you mean "ana"?)`)
}
