package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// shellCommand is one command of a README code block, split into words the
// way a POSIX shell would for the simple commands the README uses (quotes,
// backslash-newline continuations, comments).
type shellCommand struct {
	Line  string   // as written, continuations joined
	Words []string // after quote removal
}

// readmeCommands returns the commands of README.md's ```sh blocks.
func readmeCommands(t *testing.T) []shellCommand {
	t.Helper()
	src := string(repoFile(t, "README.md"))
	blocks := regexp.MustCompile("(?ms)^```sh\n(.*?)^```").FindAllStringSubmatch(src, -1)
	require.NotEmpty(t, blocks, "README.md has shell code blocks")
	var out []shellCommand
	for _, b := range blocks {
		cmds, ok := shellCommands(strings.ReplaceAll(b[1], "\\\n", " "))
		require.True(t, ok, "README shell block has unbalanced quotes:\n%s", b[1])
		out = append(out, cmds...)
	}
	return out
}

// shellCommands splits text into commands (a newline outside quotes ends
// one) and each into words: single and double quotes group (and may span
// lines), a # at the start of a word begins a comment. ok=false on an open
// quote.
func shellCommands(text string) (cmds []shellCommand, ok bool) {
	var words []string
	var cur, line strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, shellCommand{Line: strings.Join(strings.Fields(line.String()), " "), Words: words})
		}
		words = nil
		line.Reset()
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(text[i+1:], c)
			if j < 0 {
				return nil, false
			}
			cur.WriteString(text[i+1 : i+1+j])
			line.WriteString(text[i : i+2+j])
			i += j + 1
			inWord = true
			continue
		case c == '\n':
			endCmd()
			continue
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !inWord:
			for i < len(text) && text[i] != '\n' {
				i++
			}
			endCmd()
			continue
		default:
			cur.WriteByte(c)
			inWord = true
		}
		line.WriteByte(c)
	}
	endCmd()
	return cmds, true
}

// shellWords splits one line into words (see shellCommands).
func shellWords(line string) ([]string, bool) {
	cmds, ok := shellCommands(line)
	if !ok || len(cmds) == 0 {
		return nil, ok
	}
	return cmds[0].Words, true
}

// readmeCommand returns the README command whose line starts with prefix.
func readmeCommand(t *testing.T, prefix string) shellCommand {
	t.Helper()
	for _, c := range readmeCommands(t) {
		if strings.HasPrefix(c.Line, prefix) {
			return c
		}
	}
	t.Fatalf("README.md has no command starting with %q", prefix)
	return shellCommand{}
}

// nurtureArgs returns the arguments after `go run ./cmd/nurture` or
// `nurture`, or nil when c does not run nurture.
func nurtureArgs(c shellCommand) []string {
	w := c.Words
	switch {
	case len(w) >= 3 && w[0] == "go" && w[1] == "run" && w[2] == "./cmd/nurture":
		return w[3:]
	case len(w) >= 1 && w[0] == "nurture":
		return w[1:]
	}
	return nil
}

// testExists reports whether this package's tests define func name.
func testExists(t *testing.T, name string) bool {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if bytes.Contains(b, []byte("func "+name+"(t *testing.T)")) {
			return true
		}
	}
	return false
}

// runNurture runs nurture with args through the cobra root, from the
// repository root's point of view (relative paths are joined to it), with
// an empty environment. Output redirection (> FILE) is returned separately.
func runNurture(t *testing.T, args []string) (stdout string, redirect string, err error) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	var clean []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == ">" && i+1 < len(args) {
			redirect = args[i+1]
			i++
			continue
		}
		if strings.HasPrefix(a, "examples") || strings.HasPrefix(a, "docs/") {
			a = filepath.Join(root, a)
		}
		clean = append(clean, a)
	}
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(clean)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err = cmd.ExecuteContext(withEnv(context.Background(), func(string) string { return "" }))
	if err != nil {
		t.Logf("stderr: %s", errb.String())
	}
	return out.String(), redirect, err
}

// TestReadmeCommands checks that every command in README.md's shell blocks
// is exercised: cheap ones run here, the others name the test (or CI step)
// that runs them. A new README command without coverage fails this test.
func TestReadmeCommands(t *testing.T) {
	t.Parallel()
	covered := map[string]bool{}
	for _, c := range readmeCommands(t) {
		t.Run(c.Line, func(t *testing.T) {
			args := nurtureArgs(c)
			switch {
			case c.Words[0] == "make" && len(c.Words) == 2 && c.Words[1] == "test":
				// CI: .ci/run runs exactly `make test`, which runs scripts/test.sh.
				require.Contains(t, string(repoFile(t, ".ci/run")), "exec make test")
				require.Regexp(t, `(?m)^test:\n\t\./scripts/test\.sh`, string(repoFile(t, "Makefile")))
			case c.Words[0] == "export":
				// Production configuration: each variable is a documented setting.
				name, _, _ := strings.Cut(c.Words[1], "=")
				found := false
				for _, s := range settings {
					found = found || s.env == name
				}
				require.True(t, found, "%s is not a setting", name)
			case c.Words[0] == "curl":
				// Posted to a running `nurture dev` by TestDevDemo.
				require.True(t, testExists(t, "TestDevDemo"))
			case args == nil:
				t.Fatalf("README command %q is not covered: run it here or name the test that does", c.Line)
			case args[0] == "dev":
				require.Equal(t, []string{"dev", "--demo"}, args, "TestDevDemo runs exactly this (with a temp data dir, a free port and a higher --speed)")
				require.True(t, testExists(t, "TestDevDemo"))
			case args[0] == "migrate" || args[0] == "serve":
				// Against PostgreSQL and NATS: the serve tests run them.
				require.True(t, testExists(t, "TestMigrateThenServe"))
				require.True(t, testExists(t, "TestServeProcess1000Leads"))
			case args[0] == "publish":
				// Published into a running `nurture dev` by TestDevDemo;
				// here, the flags it uses must exist.
				require.True(t, testExists(t, "TestDevDemo"))
				out, _, err := runNurture(t, []string{"publish", "--help"})
				require.NoError(t, err)
				for _, w := range args[1:] {
					if strings.HasPrefix(w, "--") {
						require.Contains(t, out, w+" ", "publish --help lists %s", w)
					}
				}
			case args[0] == "validate" || args[0] == "simulate" || args[0] == "schema":
				out, redirect, err := runNurture(t, args)
				require.NoError(t, err, "README command %q fails", c.Line)
				require.NotEmpty(t, out)
				if redirect != "" {
					want := repoFile(t, redirect)
					require.Equal(t, string(want), out, "%s is not up to date with `%s`", redirect, c.Line)
				}
			default:
				t.Fatalf("README command %q is not covered: run it here or name the test that does", c.Line)
			}
			covered[c.Line] = true
		})
	}
	require.NotEmpty(t, covered)
}

func TestShellWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line string
		want []string
	}{
		{`go run ./cmd/nurture dev --demo    # comment`, []string{"go", "run", "./cmd/nurture", "dev", "--demo"}},
		{`nurture publish --traits '{"first_name":"Ana"}'`, []string{"nurture", "publish", "--traits", `{"first_name":"Ana"}`}},
		{`curl -H "Authorization: Bearer $TOKEN" -d '{"a": "#b"}'`, []string{"curl", "-H", "Authorization: Bearer $TOKEN", "-d", `{"a": "#b"}`}},
		{`   # only a comment`, nil},
	}
	for _, tc := range tests {
		got, ok := shellWords(tc.line)
		require.True(t, ok)
		require.Equal(t, tc.want, got, tc.line)
	}
}
