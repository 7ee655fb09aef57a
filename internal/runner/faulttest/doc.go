// Package faulttest holds the process-level fault tests of the runtime: a
// worker process (./worker, wiring runner + PostgreSQL + NATS exactly as a
// server does) is killed with SIGKILL mid-batch, loses PostgreSQL behind a
// TCP proxy the test cuts, and loses its nats-server process; after each,
// every event must be applied exactly once and no step email sent twice.
//
// The package's non-test code is the fixture both sides share: the test
// content and the delivery sink protocol.
package faulttest

import (
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// Content is the worker's content: enroll on trial.started (welcome email,
// wait 1 hour, tips email) and 10 points per page.viewed.
func Content() *engine.Content {
	seq := &engine.Sequence{
		ID: "trial", Version: "v1", Name: "Trial",
		Enroll: engine.Enroll{On: []string{"trial.started"}, Reenroll: engine.Reenroll{Mode: engine.ReenrollNever}},
		Steps: []*engine.Step{
			{ID: "welcome", Kind: engine.StepEmail, Template: "welcome"},
			{ID: "pause", Kind: engine.StepWait, Wait: time.Hour},
			{ID: "tips", Kind: engine.StepEmail, Template: "tips"},
		},
		From: "team@example.com",
	}
	return &engine.Content{
		Sequences: []*engine.Sequence{seq},
		Current:   map[string]string{"trial": "v1"},
		Scoring:   &engine.Scoring{Rules: []*engine.Rule{{ID: "viewed", Event: "page.viewed", Points: 10}}, Threshold: 1e9, Rearm: 0},
		Templates: []string{"welcome", "tips"},
	}
}
