// Package parity holds tests that hold the simulator to its promise: a
// `nurture simulate` transcript is what the runtime does with the same
// content and the same events. Each test runs an example scenario through
// internal/simulate, then drives the real runtime (internal/runner on
// PostgreSQL and an embedded NATS JetStream) with the same events on a fake
// clock, firing timers with the runner's own sweep at each instant the
// store says a lead is due, and compares what both recorded. It has no
// non-test code.
package parity
