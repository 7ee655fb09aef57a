// Package bench is `nurture bench`: it runs Nurture on real parts
// (PostgreSQL, a JetStream server, an SMTP sink, a webhook receiver) and
// reports every figure beside a limit measured in the same run on the same
// machine, so a busy or slow machine shows up as a lower limit rather than
// as a regression.
//
// A run has these phases, in order:
//
//   - limits: the raw PostgreSQL apply rate (batched insert of event rows
//     plus update of lead documents, no engine), the raw FOR UPDATE SKIP
//     LOCKED claim rate on a timer table, JetStream async publish plus
//     consume-with-ack, and go-mail to an in-process SMTP sink on one
//     connection;
//   - ingest: events published to stream LEADS, applied by the runner's
//     ingest loop; events/s from the first publish to the last ack;
//   - timers: a backlog of due enrollments (due steps/s), then a steady
//     due rate (firing lag p50/p99);
//   - sends: email outbox items through the dispatcher and the go-mail
//     handler to the SMTP sink;
//   - escalation: events at a fixed rate, latency from publish to the
//     signed webhook's arrival at an in-process receiver;
//   - growth: ingest and timer rates, worker RSS and bytes per lead at
//     100k, 1M (and 10M) enrolled leads, bulk-loaded with SQL.
//
// Each run creates uniquely named databases on the server it is pointed at
// and drops them at the end. Like internal/app it is wiring: it knows the
// concrete adapters, and only internal/app imports it.
package bench
