package sequences_test

import (
	"github.com/nurture-oss/nurture/engine"
	"testing"

	"github.com/nurture-oss/nurture/sequences"
)

func BenchmarkLoadExamples(b *testing.B) {
	for b.Loop() {
		if _, err := sequences.Load("../examples"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConditionEval(b *testing.B) {
	fields := map[string]sequences.Field{
		"plan":      {Name: "plan", Type: sequences.FieldString},
		"employees": {Name: "employees", Type: sequences.FieldNumber},
		"region":    {Name: "region", Type: sequences.FieldString},
		"tags":      {Name: "tags", Type: sequences.FieldList},
	}
	c, err := sequences.CompileCondition(`clicked("tips") || (traits.plan == "trial" && traits.employees >= 200) || score >= 40`, fields, true)
	if err != nil {
		b.Fatal(err)
	}
	env := &engine.Env{
		Lead:       &engine.Lead{Traits: map[string]any{"plan": "trial", "employees": 20.0, "region": "emea"}},
		Enrollment: &engine.Enrollment{Clicked: []string{"welcome"}},
		Score:      12,
	}
	for b.Loop() {
		if _, err := c.Eval(env); err != nil {
			b.Fatal(err)
		}
	}
}
