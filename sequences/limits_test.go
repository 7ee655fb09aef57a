package sequences_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Hostile files are rejected quickly, with a problem, never a panic.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	bomb := "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	for i := 'b'; i <= 'j'; i++ {
		bomb += string(i) + ": &" + string(i) + " [" + strings.Repeat("*"+string(i-1)+",", 9) + "]\n"
	}
	tests := map[string]struct {
		src, want string
	}{
		"too large":       {"id: x\n# " + strings.Repeat("x", 1<<20) + "\n", "at most 1048576 bytes"},
		"alias bomb":      {bomb, "anchors"},
		"deep flow":       {"id: " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n", "nesting deeper than"},
		"deep block":      {deepBlock(60), "nesting deeper than"},
		"merge key":       {"base: {a: 1}\nother:\n  <<: {a: 2}\n", "merge keys"},
		"tag":             {"id: !!str trial\n", "tags"},
		"binary":          {"\x00\x01\x02\xff\xfe", ""},
		"many nodes":      {"steps: [" + strings.Repeat("1,", 60000) + "1]\n", "YAML nodes"},
		"not a mapping":   {"- a\n- b\n", "sequence must be a mapping"},
		"scalar root":     {"hello\n", "sequence must be a mapping"},
		"unterminated":    {"id: \"abc\nsteps: [\n", "syntax error"},
		"tabs":            {"id: x\n\tenroll: y\n", ""},
		"huge number":     {"id: x\nenroll: {on: a}\nsteps:\n  - {id: a, wait: {business_days: 99999999999999999999999}}\n", "business_days"},
		"control chars":   {"id: \"\\u0000\"\n", ""},
		"duplicate keys":  {"id: a\nid: b\n", ""},
		"complex key":     {"? [a, b]\n: c\n", ""},
		"empty flow":      {"{}\n", "missing required key"},
		"null everywhere": {"id:\nenroll:\nsteps:\n", ""},
		"very long key":   {strings.Repeat("k", 70000) + ": 1\n", "unknown key"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			got := problemsOf(t, withFiles(map[string]string{"sequences/trial.yaml": tt.src}))
			require.Less(t, time.Since(start), 5*time.Second)
			require.NotEmpty(t, got)
			require.Contains(t, got, "sequences/trial.yaml")
			if tt.want != "" {
				require.Contains(t, got, tt.want)
			}
		})
	}
}

func deepBlock(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(strings.Repeat(" ", i) + "k:\n")
	}
	b.WriteString(strings.Repeat(" ", n) + "v\n")
	return b.String()
}
