package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/sequences"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

// brokenContent writes a minimal content directory with two problems.
func brokenContent(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"nurture.yaml":         "fields:\n  first_name: string\ndefaults:\n  from: a@b.example\n",
		"templates/hi.html":    "---\nsubject: Hi\n---\n<p>{{ .lead.first_nme }}</p>\n",
		"sequences/hello.yaml": "id: hello\nenroll: {on: signed.up}\nsteps:\n  - {id: hi, email: hi}\n  - {id: later, wait: 2 days}\n",
	}
	for p, s := range files {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644))
	}
	return dir
}

func TestValidateCommand(t *testing.T) {
	t.Parallel()
	broken := brokenContent(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{"examples are clean", []string{"validate", examplesDir}, 0,
			[]string{examplesDir + ": ok: 4 sequences, 14 templates"}, nil, false},
		{"problems, one per line", []string{"validate", broken}, 1,
			[]string{
				"sequences/hello.yaml:5:23: wait: bad duration \"2 days\"",
				"templates/hi.html:4:7: template variable .lead.first_nme is not a declared lead field",
			},
			[]string{"2 problem(s) in " + broken}, false},
		{"missing directory", []string{"validate", filepath.Join(broken, "nope")}, 1, nil, []string{"nurture: validate: load content"}, true},
		{"bad format", []string{"validate", examplesDir, "--format", "xml"}, 1, nil, []string{"--format must be text or json"}, true},
		{"too many args", []string{"validate", "a", "b"}, 1, nil, []string{"accepts at most 1 arg"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runMain(t, tt.args...)
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
			for _, s := range tt.stdout {
				require.Contains(t, stdout, s)
			}
			for _, s := range tt.stderr {
				require.Contains(t, stderr, s)
			}
			if tt.noStdout {
				require.Empty(t, stdout)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runMain(t, "validate", brokenContent(t), "--format", "json")
	require.Equal(t, 1, code)
	var res struct {
		Valid    bool                `json:"valid"`
		Problems []sequences.Problem `json:"problems"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &res))
	require.False(t, res.Valid)
	require.Len(t, res.Problems, 2)
	require.Equal(t, sequences.Problem{Path: "sequences/hello.yaml", Line: 5, Col: 23, Msg: res.Problems[0].Msg}, res.Problems[0])

	code, stdout, _ = runMain(t, "validate", examplesDir, "--format", "json")
	require.Equal(t, 0, code)
	var ok struct {
		Valid    bool              `json:"valid"`
		Problems []any             `json:"problems"`
		Versions map[string]string `json:"versions"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &ok))
	require.True(t, ok.Valid)
	require.NotNil(t, ok.Problems)
	require.Empty(t, ok.Problems)
	require.Len(t, ok.Versions, 4)
}

// Not parallel: it sets an environment variable.
func TestValidateReadsContentDirFromEnv(t *testing.T) {
	t.Setenv("NURTURE_CONTENT_DIR", examplesDir)
	code, stdout, stderr := runMain(t, "validate")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(stdout, examplesDir+": ok"), stdout)
}

func TestSchemaCommand(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runMain(t, "schema")
	require.Equal(t, 0, code)
	require.Equal(t, string(sequences.Schema()), stdout)
	code, stdout, _ = runMain(t, "schema", "--kind", "sequence")
	require.Equal(t, 0, code)
	require.Equal(t, string(sequences.SchemaFor("sequence")), stdout)
	code, _, stderr := runMain(t, "schema", "--kind", "nope")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--kind must be one of")
	code, stdout, _ = runMain(t, "validate", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, stdout, "NURTURE_CONTENT_DIR")
}
