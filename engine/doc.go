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
//   - Standard library only. No I/O, no goroutines, no logging. (Time zone
//     names from lead traits are resolved with time.LoadLocation and
//     cached; the binary should embed time/tzdata so that every machine
//     agrees on the zone rules.)
//   - Never read the clock: time arrives as Input.Now.
//   - Never depend on map iteration order: iterate sorted keys or slices.
//   - Same content, same state, same input → same state and same effects.
//
// Conditions and cron specs are compiled elsewhere (package sequences) and
// reach the engine through the small [Condition] and [Schedule] interfaces, so
// this package does not import an expression language or a cron parser.
//
// # One Apply
//
// Apply validates the input first (ErrInvalidEvent, ErrInvalidInput) and
// touches nothing when it fails; after that nothing can fail, so the lead
// never needs to be copied. Then, in this order: the score decays to Now;
// an unsubscribe, hard bounce or complaint (not a duplicate) changes the
// lead's status and exits its enrollments, before anything else can send;
// enrollments on versions that are no longer current follow the new
// version's in-flight policy; the escalation hysteresis is checked (re-arm,
// resume paused enrollments); every enrollment timer due at Now fires,
// earliest first; an overdue acknowledgement re-routes the escalation. For
// an event: duplicates (by id, among the lead's last 8) are ignored; email
// and traits merge into the lead; machine traffic and
// opens too soon after the send are ignored; opens and clicks are recorded;
// scoring rules apply; the threshold is checked; exit goals end enrollments;
// wait_for steps waiting for the event advance; and finally the event may
// enroll the lead in sequences (in sequence id order). Lead.NextRunAt is
// recomputed last; for an escalated lead whose score decays it includes the
// first whole minute at which the score is below the re-arm mark, so that
// decay alone re-arms the lead and resumes what the escalation paused.
//
// # Time and order
//
// Events apply in arrival order at Input.Now; Event.Time is kept for the
// record only (it is used for one thing: deciding whether an open came too
// soon after its send). State never moves backwards: an input whose Now is
// older than the lead's UpdatedAt leaves UpdatedAt and the score's time
// alone and does not un-decay the score, and a timer fires only when Now has
// reached it. Because due timers fire before an event applies, a click that
// arrives after a wait_for timed out (but before the tick ran) finds the
// timeout already taken. Status events are the exception: they apply
// first, so an email due at the instant of an unsubscribe is not sent.
//
// # Daylight saving time
//
// Cron specs (wait_until, send windows) are matched against the lead's local
// wall clock: 09:00 stays 09:00 local across a change. A matching local
// time that does not exist (spring-forward gap, e.g. 02:30 in Europe/Berlin
// on the last Sunday of March) fires at the first instant after the gap
// (03:00 CEST). A matching local time that happens twice (fall-back) fires
// once, at its first occurrence; the second pass of the repeated hour
// matches nothing. Business-day waits keep the local time of day under the
// same two rules. Plain wait durations are absolute (48h is 48 hours).
// robfig/cron evaluated directly in a zone with DST gets these cases wrong
// (it skips the day of a gap, fires twice in a repeated hour, and can skip a
// day with half-hour shifts), so the engine evaluates schedules in
// fixed-offset zones one zone period at a time.
//
// The lead's zone is the IANA name in the trait the window names
// (Window.TimezoneTrait, or the trait "timezone" without a window); when the
// trait is missing, not a string, invalid or "Local", Window.DefaultZone
// applies, and UTC without one.
package engine
