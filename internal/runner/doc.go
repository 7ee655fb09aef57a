// Package runner is Nurture's application service: it runs the engine
// against real inputs and keeps the delivery promises of DESIGN.md §4.
//
// A Runner runs three loops (Run):
//
//   - ingest: fetch a batch of lead events from the consumer, apply the
//     whole batch in one store transaction (lock the batch's leads in key
//     order, skip event ids already processed, run the engine, write state,
//     history and outbox items), commit, and only then ack the messages;
//   - timers: a robfig/cron scheduler drives sweeps that claim due leads
//     (FOR UPDATE SKIP LOCKED in the store) and tick the engine in the same
//     transaction shape, plus periodic jobs (pruning processed event ids,
//     recovering expired outbox leases, consumer lag);
//   - dispatch: claim due outbox items under a lease, check emails against
//     suppression, hand each item to the Handler for its kind (or publish it
//     for KindEvent), and record the outcome with the retry policy.
//
// Each loop's single step (IngestOnce, SweepOnce, DispatchOnce,
// RecoverLeasesOnce) is exported so tests drive the runner with a fake now
// and never sleep waiting for a timer.
//
// The runner declares the small interfaces it needs (Consumer, Msg,
// Publisher, Observer) and owns the retry policy; internal/app wires the
// concrete adapters.
package runner
