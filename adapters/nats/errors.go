package nats

import (
	"context"
	"errors"
	"fmt"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Sentinel errors. Every error this package returns wraps one of these or a
// context error.
var (
	// ErrUnavailable: the server could not be reached or did not answer in
	// time (disconnected, reconnecting, timeout, no responders). Retry.
	ErrUnavailable = errors.New("nats unavailable")
	// ErrTooLarge: the message is over the server's or stream's size limit.
	ErrTooLarge = errors.New("nats message too large")
	// ErrClosed: the connection was closed by this process.
	ErrClosed = errors.New("nats connection closed")
	// ErrNATS: any other failure reported by the server or client
	// (configuration conflicts, permissions, …). Retrying will not help.
	ErrNATS = errors.New("nats error")
)

// translate wraps a nats.go error into one of the sentinels, keeping its
// text but not its type.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, natsgo.ErrConnectionClosed), errors.Is(err, natsgo.ErrConnectionDraining):
		sentinel = ErrClosed
	case errors.Is(err, natsgo.ErrTimeout),
		errors.Is(err, natsgo.ErrNoResponders),
		errors.Is(err, natsgo.ErrConnectionReconnecting),
		errors.Is(err, natsgo.ErrDisconnected),
		errors.Is(err, natsgo.ErrNoServers),
		errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, jetstream.ErrNoHeartbeat),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		sentinel = ErrUnavailable
	case errors.Is(err, natsgo.ErrMaxPayload), errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum):
		sentinel = ErrTooLarge
	default:
		sentinel = ErrNATS
	}
	return fmt.Errorf("%s: %w: %s", op, sentinel, err.Error())
}
