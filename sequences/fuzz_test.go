package sequences_test

import (
	"errors"
	"os"
	"testing"
	"testing/fstest"

	"github.com/nurture-oss/nurture/sequences"
)

// FuzzLoad feeds arbitrary bytes as a sequence file, the scoring file and
// a template. Loading must never panic, and must either report problems or
// return a complete bundle.
func FuzzLoad(f *testing.F) {
	b := base()
	f.Add(b["sequences/trial.yaml"].Data, b["scoring.yaml"].Data, b["templates/tips.html"].Data)
	for _, p := range []string{"../examples/sequences/trial-onboarding.yaml", "../examples/sequences/webinar-follow-up.yaml", "../examples/sequences/re-engagement.yaml"} {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		sc, _ := os.ReadFile("../examples/scoring.yaml")
		tpl, _ := os.ReadFile("../examples/templates/trial-demo-offer.html")
		f.Add(raw, sc, tpl)
	}
	f.Add([]byte("a: &a [*a]\n"), []byte("{"), []byte("---\n---\n{{"))
	f.Add([]byte("steps: [{id: a, goto: a}]\nid: x\nenroll: {on: x}\n"), []byte("rules: []\n"), []byte("---\nsubject: x\n---\n{{ .lead.x }}"))
	f.Fuzz(func(t *testing.T, seq, scoring, tpl []byte) {
		fsys := base()
		fsys["sequences/fuzz.yaml"] = &fstest.MapFile{Data: seq}
		fsys["scoring.yaml"] = &fstest.MapFile{Data: scoring}
		fsys["templates/tips.html"] = &fstest.MapFile{Data: tpl}
		bundle, err := sequences.LoadFS(fsys)
		if err != nil {
			var pe *sequences.ProblemsError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("want *ProblemsError with problems, got %v", err)
			}
			return
		}
		if bundle == nil || bundle.Content == nil || len(bundle.Content.Sequences) < 2 {
			t.Fatalf("clean load must return the whole bundle")
		}
		for _, s := range bundle.Content.Sequences {
			if len(s.Steps) == 0 || s.Version == "" || bundle.Content.Current[s.ID] != s.Version {
				t.Fatalf("incomplete sequence %+v", s)
			}
		}
		if _, err := bundle.Templates["tips"].Render(sequences.RenderData{Lead: map[string]any{"first_name": "<b>{{x}}</b>"}}); err != nil {
			t.Fatalf("a template that loaded must render: %v", err)
		}
	})
}
