package sequences_test

import (
	"errors"
	"fmt"
	"testing/fstest"

	"github.com/nurture-oss/nurture/sequences"
)

func ExampleLoad() {
	b, err := sequences.Load("../examples")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range b.Content.Sequences {
		fmt.Printf("%s: %d steps, first %s %q\n", s.ID, len(s.Steps), s.Steps[0].Kind, s.Steps[0].ID)
	}
	fmt.Println("threshold:", b.Content.Scoring.Threshold, "rearm:", b.Content.Scoring.Rearm)
	// Output:
	// demo-no-show: 4 steps, first wait "cool-off"
	// re-engagement: 6 steps, first wait_until "next-monday"
	// trial-onboarding: 12 steps, first email "welcome"
	// webinar-follow-up: 7 steps, first email "recording"
	// threshold: 100 rearm: 60
}

func ExampleLoadFS() {
	fsys := fstest.MapFS{
		"nurture.yaml":         {Data: []byte("fields:\n  first_name: string\n")},
		"templates/hello.html": {Data: []byte("---\nsubject: Hi {{ .lead.firstname }}\nfrom: a@b.example\n---\n<p>Hi</p>\n")},
		"sequences/hello.yaml": {Data: []byte(`id: hello
enroll: {on: signed.up}
steps:
  - {id: hi, email: hello}
  - {id: later, wait: 2 days}
  - {id: again, goto: hi2}
`)},
	}
	_, err := sequences.LoadFS(fsys)
	var pe *sequences.ProblemsError
	if errors.As(err, &pe) {
		for _, p := range pe.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// sequences/hello.yaml:5:23: wait: bad duration "2 days": unknown unit " days" (use s, m, h, d, w)
	// sequences/hello.yaml:6:23: goto target "hi2" is not a step in this sequence (use a step id or end) (did you mean "hi"?)
	// templates/hello.html:2:10: template variable .lead.firstname is not a declared lead field (declare it in nurture.yaml under fields:) (did you mean "first_name"?)
}
