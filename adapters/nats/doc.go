// Package nats is Nurture's JetStream transport: it creates the LEADS and
// NURTURE streams, runs the durable pull consumer the worker fetches lead
// events from, publishes events with their id as the Nats-Msg-Id (so
// republishing is harmless), and can run an embedded nats-server for
// `nurture dev` and tests.
//
// Errors from the NATS client are translated into this package's sentinels
// ([ErrUnavailable], [ErrTooLarge], [ErrNATS]); callers branch with
// errors.Is and never see nats.go types.
package nats
