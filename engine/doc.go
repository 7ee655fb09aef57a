// Package engine is Nurture's pure domain: leads, enrollments, steps, scoring
// and escalation.
//
// Given compiled content, a lead's state, one input (an event, or a tick that
// wakes the lead's due timers) and the current time, [Engine.Apply] mutates the
// lead in place and returns the effects the outside world must carry out:
// emails to send, timers to arm, score changes to record, escalations to
// deliver. The simulator and the production runtime call the same code.
//
// Rules for code in this package (they are what make it replayable):
//
//   - Standard library only. No I/O, no goroutines, no logging.
//   - Never read the clock: time arrives as Input.Now.
//   - Never depend on map iteration order: iterate sorted keys or slices.
//   - Same content, same state, same input → same state and same effects.
//
// Conditions and cron specs are compiled elsewhere (package sequences) and
// reach the engine through the small [Condition] and [Schedule] interfaces, so
// this package does not import an expression language or a cron parser.
package engine
