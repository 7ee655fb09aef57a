package engine_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStandardLibraryOnly pins the engine's promise: outside its tests it
// imports the standard library and nothing else, so production and the
// simulator can share it and nothing in it can do I/O behind our back.
func TestStandardLibraryOnly(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the go command")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/nurture-oss/nurture/engine" {
			t.Errorf("engine depends on %s; it may import only the standard library", p)
		}
	}
}
