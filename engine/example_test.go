package engine_test

import (
	"fmt"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

func ExampleEngine_Apply() {
	c := &engine.Content{
		Sequences: []*engine.Sequence{{
			ID:      "trial-nurture",
			Version: "3f2a",
			Enroll:  engine.Enroll{On: []string{"trial.started"}, Reenroll: engine.Reenroll{Mode: engine.ReenrollNever}},
			Exit:    engine.Exit{On: []string{"demo.booked"}},
			Steps: []*engine.Step{
				{ID: "welcome", Kind: engine.StepEmail, Template: "welcome"},
				{ID: "pause", Kind: engine.StepWait, Wait: 48 * time.Hour},
				{ID: "tips", Kind: engine.StepEmail, Template: "tips"},
			},
		}},
		Current: map[string]string{"trial-nurture": "3f2a"},
		Scoring: &engine.Scoring{Rules: []*engine.Rule{{ID: "booked", Event: "demo.booked", Points: 50}}},
	}
	e, err := engine.New(c)
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	lead := engine.NewLead("L1", now)

	show := func(effs []engine.Effect) {
		for _, f := range effs {
			fmt.Printf("%-14s %+v\n", f.Action(), f)
		}
	}
	effs, _ := e.Apply(lead, engine.Input{Now: now, Event: &engine.Event{
		ID: "e1", Type: "trial.started", Lead: "L1", Email: "ana@example.com",
	}})
	show(effs)

	// The runtime ticks the lead when lead.NextRunAt is due.
	effs, _ = e.Apply(lead, engine.Input{Now: lead.NextRunAt})
	show(effs)

	effs, _ = e.Apply(lead, engine.Input{Now: now.Add(72 * time.Hour), Event: &engine.Event{ID: "e2", Type: "demo.booked", Lead: "L1"}})
	show(effs)
	// Output:
	// enrolled       {Enrollment:L1.trial-nurture.1 Sequence:trial-nurture Version:3f2a Trigger:e1}
	// email.sent     {SendID:L1.trial-nurture.1.welcome Enrollment:L1.trial-nurture.1 Sequence:trial-nurture Version:3f2a Step:welcome Template:welcome To:ana@example.com From: ReplyTo: Transactional:false}
	// waiting        {Enrollment:L1.trial-nurture.1 Sequence:trial-nurture Step:pause Until:2026-03-04 08:00:00 +0000 UTC Reason:wait Event:}
	// email.sent     {SendID:L1.trial-nurture.1.tips Enrollment:L1.trial-nurture.1 Sequence:trial-nurture Version:3f2a Step:tips Template:tips To:ana@example.com From: ReplyTo: Transactional:false}
	// completed      {Enrollment:L1.trial-nurture.1 Sequence:trial-nurture}
	// score.changed  {Rule:booked Event:e2 Delta:50 Score:50 Capped:false}
}
