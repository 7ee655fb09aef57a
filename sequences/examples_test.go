package sequences_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/sequences"
)

// copyExamples copies examples/ (without scenarios) to a temp dir.
func copyExamples(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir("../examples", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("../examples", p)
		if d.IsDir() {
			if rel == "scenarios" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	require.NoError(t, err)
	return dst
}

// plant replaces old with new in dir/rel, exactly once.
func plant(t *testing.T, dir, rel, old, new string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(b), old), "%s: %q must occur once", rel, old)
	require.NoError(t, os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644))
}

func TestExamplesLoad(t *testing.T) {
	t.Parallel()
	b, err := sequences.Load("../examples")
	require.NoError(t, err)
	require.Len(t, b.Content.Sequences, 4)
	require.GreaterOrEqual(t, len(b.Templates), 8)
	for _, s := range b.Content.Sequences {
		require.Equal(t, b.Content.Current[s.ID], s.Version, s.ID)
		require.Len(t, s.Version, 16)
	}
	kinds := map[engine.StepKind]bool{}
	for _, s := range b.Content.Sequences {
		for _, st := range s.Steps {
			kinds[st.Kind] = true
		}
	}
	for _, k := range []engine.StepKind{engine.StepEmail, engine.StepWait, engine.StepWaitUntil, engine.StepWaitFor, engine.StepBranch, engine.StepGoto} {
		require.True(t, kinds[k], "examples use no %s step", k)
	}
	sc := b.Content.Scoring
	require.Equal(t, 100.0, sc.Threshold)
	require.Equal(t, 60.0, sc.Rearm)
	require.Equal(t, engine.RouteTerritory, sc.Routing.Strategy)
	require.Equal(t, "region", sc.Routing.TerritoryTrait)
	require.Len(t, b.Notify.Slack, 1)
	require.Equal(t, "NURTURE_SLACK_SDR_WEBHOOK_URL", b.Notify.Slack[0].URLEnv)
	require.Equal(t, "NURTURE_CRM_WEBHOOK_SECRET", b.Notify.Webhooks[0].SecretEnv)
	require.True(t, b.Notify.EmailRep)
	require.Equal(t, 4, b.Content.Limits.MaxEmails)

	trial := b.Sequence("trial-onboarding")
	require.NotNil(t, trial)
	require.Equal(t, engine.InFlightMigrate, trial.InFlight)
	require.Equal(t, "timezone", trial.Window.TimezoneTrait)
	require.True(t, trial.Window.Holidays.Holiday(2026, 12, 25))
	require.True(t, trial.Window.Holidays.Holiday(2027, 12, 25)) // every year
	require.True(t, trial.Window.Holidays.Holiday(2026, 12, 24)) // inline date
	require.False(t, trial.Window.Holidays.Holiday(2027, 12, 24))
	require.Equal(t, engine.ReenrollAfter, trial.Enroll.Reenroll.Mode)
}

// The acceptance check of issue 2: five planted mistakes, five problems,
// each with path:line:col.
func TestExamplesWithFivePlantedMistakes(t *testing.T) {
	t.Parallel()
	dir := copyExamples(t)
	plant(t, dir, "sequences/trial-onboarding.yaml", "    on_timeout: dashboard-nudge", "    on_timeuot: dashboard-nudge") // misspelled key
	plant(t, dir, "sequences/trial-onboarding.yaml", "    wait: 1d\n", "    wait: 1 day\n")                                // bad duration
	plant(t, dir, "sequences/webinar-follow-up.yaml", "email: webinar-case-study", "email: webinar-case-studies")          // missing template
	plant(t, dir, "sequences/webinar-follow-up.yaml", "goto: story-pause", "goto: story-paus")                             // goto to nowhere
	plant(t, dir, "sequences/re-engagement.yaml", `wait_until: "30 9 * * MON"`, `wait_until: "30 9 * MON"`)                // bad cron spec

	_, err := sequences.Load(dir)
	var pe *sequences.ProblemsError
	require.True(t, errors.As(err, &pe), "want problems, got %v", err)
	want := []string{
		`sequences/re-engagement.yaml:\d+:\d+: wait_until: bad cron spec "30 9 \* MON"`,
		`sequences/trial-onboarding.yaml:\d+:\d+: unknown key "on_timeuot" in step \(did you mean "on_timeout"\?\)`,
		`sequences/trial-onboarding.yaml:\d+:\d+: wait: bad duration "1 day"`,
		`sequences/webinar-follow-up.yaml:\d+:\d+: template "webinar-case-studies" not found .*did you mean "webinar-case-study"`,
		`sequences/webinar-follow-up.yaml:\d+:\d+: goto target "story-paus" is not a step in this sequence .*did you mean "story-pause"`,
	}
	out := pe.Error()
	for _, w := range want {
		require.Regexp(t, regexp.MustCompile("(?m)^"+w), out)
	}
	require.Len(t, pe.Problems, 5, out)
}
