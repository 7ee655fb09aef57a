// Package simulate runs the real engine over a scripted scenario on a
// virtual clock and produces a transcript of everything that happened.
//
// A scenario (see docs/simulate.md) declares the leads, the events that
// happen to them and a time span. Run feeds the events to engine.Apply in
// time order and, between them, wakes every lead whose timer (its
// NextRunAt) is due, exactly as the production timer sweep would, but
// without waiting: the clock jumps from one due instant to the next. The
// engine is the one production uses, so a transcript is what production
// would do with the same content and the same events.
//
// Ordering is total and deterministic: inputs are applied by time; at the
// same instant scripted events come first (in file order), then due timers
// (by lead id). Events before timers means an unsubscribe or a goal event
// scripted at 09:00 takes effect before a send due at 09:00, which is the
// conservative reading of "unsubscribes take effect before the next send".
//
// Nothing here reads the wall clock or depends on map iteration order: two
// runs of the same scenario on the same content produce byte-identical
// transcripts.
package simulate
