package sequences_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/sequences"
)

// The schemas under docs/schema/ are what `nurture schema` prints; editors
// read them through the examples' modelines. Regenerate with -update.
func TestCommittedSchemasAreCurrent(t *testing.T) {
	t.Parallel()
	files := map[string][]byte{"content.json": sequences.Schema()}
	for _, k := range sequences.SchemaKinds {
		files[k+".json"] = sequences.SchemaFor(k)
	}
	for name, want := range files {
		var v map[string]any
		require.NoError(t, json.Unmarshal(want, &v), name)
		require.Equal(t, "https://json-schema.org/draft/2020-12/schema", v["$schema"])
		p := filepath.Join("..", "docs", "schema", name)
		if *update {
			require.NoError(t, os.WriteFile(p, want, 0o644))
			continue
		}
		got, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "%s is stale: run go test ./sequences -run Schema -update", p)
	}
	require.Nil(t, sequences.SchemaFor("nope"))
}

// Every example file points its editor at the right schema.
func TestExamplesHaveModelines(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"nurture.yaml": "../docs/schema/nurture.json",
		"scoring.yaml": "../docs/schema/scoring.json",
	}
	seqs, _ := filepath.Glob("../examples/sequences/*.yaml")
	for _, p := range seqs {
		rel, _ := filepath.Rel("../examples", p)
		want[rel] = "../../docs/schema/sequence.json"
	}
	cals, _ := filepath.Glob("../examples/calendars/*.yaml")
	for _, p := range cals {
		rel, _ := filepath.Rel("../examples", p)
		want[rel] = "../../docs/schema/calendar.json"
	}
	require.GreaterOrEqual(t, len(want), 6)
	for rel, schema := range want {
		raw, err := os.ReadFile(filepath.Join("../examples", rel))
		require.NoError(t, err)
		first, _, _ := cutLine(string(raw))
		require.Equal(t, "# yaml-language-server: $schema="+schema, first, rel)
		_, err = os.Stat(filepath.Join("../examples", filepath.Dir(rel), schema))
		require.NoError(t, err, "modeline of %s points at a missing file", rel)
	}
}

func cutLine(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
