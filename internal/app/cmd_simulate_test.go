package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const examplesDir = "../../examples"

func TestSimulateJSON(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(examplesDir, "scenarios", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := Main([]string{"simulate", examplesDir, "--scenario", file, "--format", "json"}, &stdout, &stderr)
			require.Equal(t, 0, code, "stderr: %s", stderr.String())
			require.Empty(t, stderr.String())

			actions := map[string]int{}
			var last time.Time
			sc := bufio.NewScanner(&stdout)
			lines := 0
			for sc.Scan() {
				lines++
				var line map[string]any
				require.NoError(t, json.Unmarshal(sc.Bytes(), &line), "line %d: %s", lines, sc.Text())
				for _, key := range []string{"at", "lead", "action"} {
					v, ok := line[key].(string)
					require.True(t, ok && v != "", "line %d has no %q: %s", lines, key, sc.Text())
				}
				at, err := time.Parse(time.RFC3339, line["at"].(string))
				require.NoError(t, err)
				require.Equal(t, time.UTC, at.Location(), "at is UTC")
				require.False(t, at.Before(last), "line %d goes back in time", lines)
				last = at
				actions[line["action"].(string)]++
			}
			require.NoError(t, sc.Err())
			require.Positive(t, actions["event"])
			require.Positive(t, actions["email.sent"]+actions["email.suppressed"])
		})
	}
}

func TestSimulateText(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"simulate", examplesDir, "--scenario", filepath.Join(examplesDir, "scenarios", "escalation.yaml")}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	out := stdout.String()
	require.True(t, strings.HasPrefix(out, "UTC "), out)
	require.Contains(t, out, "escalated")
	require.Contains(t, out, "\nSummary\n")
}

func TestSimulateProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("start: 2026-03-02T00:00:00Z\nuntil: 2026-03-09T00:00:00Z\nleads:\n  - {id: L1, emial: a@b.c}\n"), 0o644))
	var stdout, stderr bytes.Buffer
	code := Main([]string{"simulate", examplesDir, "--scenario", bad}, &stdout, &stderr)
	require.Equal(t, 1, code)
	require.Empty(t, stdout.String())
	require.Equal(t, filepath.ToSlash(bad)+":4:14: unknown key \"emial\" (did you mean \"email\"?)\n", stderr.String())

	stdout.Reset()
	stderr.Reset()
	code = Main([]string{"simulate", examplesDir}, &stdout, &stderr)
	require.Equal(t, 1, code)
	require.Contains(t, stderr.String(), "--scenario FILE is required")
}

func TestSimulateLeadsProgress(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := Main([]string{"simulate", examplesDir, "--scenario", filepath.Join(examplesDir, "scenarios", "trial-onboarding.yaml"),
		"--format", "json", "--leads", "1000"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	require.Contains(t, stderr.String(), "100% of the scenario's time span (1000 leads)")
	require.NotContains(t, stdout.String(), "simulate:", "progress never goes into the transcript")
	leads := map[string]bool{}
	for line := range strings.Lines(stdout.String()) {
		var e struct{ Lead string }
		require.NoError(t, json.Unmarshal([]byte(line), &e))
		leads[e.Lead] = true
	}
	require.Len(t, leads, 1000)
}

func TestSimulateContentProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(examplesDir)))
	seq := filepath.Join(dir, "sequences", "demo-no-show.yaml")
	src, err := os.ReadFile(seq)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(seq, []byte(strings.Replace(string(src), "wait: 90m", "wiat: 90m", 1)), 0o644))

	var stdout, stderr bytes.Buffer
	code := Main([]string{"simulate", dir, "--scenario", filepath.Join(examplesDir, "scenarios", "webinar-follow-up.yaml")}, &stdout, &stderr)
	require.Equal(t, 1, code)
	require.Empty(t, stdout.String(), "no transcript from content with problems")
	require.Regexp(t, `sequences/demo-no-show\.yaml:\d+:\d+: .*wiat`, stderr.String())
}
