// Package outbox defines what travels through the outbox: the payload of
// each item kind, the Handler a delivery channel implements, and the error
// classes that tell the dispatcher what to do with a failed delivery.
//
// The runtime writes outbox items in the same transaction as the state
// change that caused them; the dispatcher later claims them and hands each
// to the Handler registered for its kind.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// Handler delivers one outbox item. A nil error means delivered. Otherwise
// the error's class decides the outcome (see Classify): plain errors are
// transient and retried with backoff.
type Handler interface {
	Deliver(ctx context.Context, item store.OutboxItem) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, item store.OutboxItem) error

func (f HandlerFunc) Deliver(ctx context.Context, item store.OutboxItem) error { return f(ctx, item) }

// Error classes. Wrap them (fmt.Errorf("…: %w", outbox.ErrPermanent)) so the
// reason survives.
var (
	// ErrPermanent: retrying cannot help (5xx SMTP reply, 4xx HTTP other
	// than 408/429, endpoint gone). Recorded as failed with the reason.
	ErrPermanent = errors.New("permanent delivery failure")
	// ErrUnknown: the hand-off may or may not have happened (connection lost
	// after the message data was sent). Recorded as unknown; not resent
	// unless the operator configured resending.
	ErrUnknown = errors.New("delivery outcome unknown")
)

// SuppressError is a permanent failure that also puts the address on the
// suppression list (hard bounce: 5.1.x).
type SuppressError struct {
	Email  string
	Reason string
	Err    error
}

func (e *SuppressError) Error() string {
	return fmt.Sprintf("suppress %s: %v", e.Reason, e.Err)
}
func (e *SuppressError) Unwrap() []error { return []error{ErrPermanent, e.Err} }

// RetryAfterError is a transient failure whose receiver said when to try
// again (an HTTP 429 or 503 with Retry-After). The dispatcher should not
// retry before After (it may wait longer, per its own backoff).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
}
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the delay a transient failure asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ra *RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		return ra.After, true
	}
	return 0, false
}

// Class is the dispatcher's reading of a delivery error.
type Class int

const (
	Delivered Class = iota
	Transient
	Permanent
	Unknown
)

// Classify maps a Deliver error to its class.
func Classify(err error) Class {
	switch {
	case err == nil:
		return Delivered
	case errors.Is(err, ErrUnknown):
		return Unknown
	case errors.Is(err, ErrPermanent):
		return Permanent
	default:
		return Transient
	}
}

// EmailPayload is the payload of a store.KindEmail item: the engine's
// decision plus a snapshot of the lead taken when it was made, so the email
// renders the same however late it is delivered.
type EmailPayload struct {
	Send   engine.SendEmail `json:"send"`
	Lead   string           `json:"lead"`
	To     string           `json:"to"`
	Traits map[string]any   `json:"traits,omitempty"`
}

// NotifyPayload is the payload of the escalation notification kinds
// (store.KindNotifySlack, KindNotifyWebhook, KindNotifyEmail). Channel names
// the configured channel (a Slack channel or webhook endpoint name) so one
// escalation can fan out to several. Handlers load the lead's current
// context (traits, score, timeline) from the store at delivery time.
type NotifyPayload struct {
	Escalation engine.Escalated `json:"escalation"`
	Lead       string           `json:"lead"`
	Channel    string           `json:"channel"`
}

// EventPayload is the payload of a store.KindEvent item: a CloudEvent (JSON)
// to publish on NATS under Subject with Nats-Msg-Id = ID.
type EventPayload struct {
	Subject string `json:"subject"`
	ID      string `json:"id"`
	Data    []byte `json:"data"`
}

// DeferError says the item was not attempted because a throttle (per-domain
// or global send rate) is full: the dispatcher should retry it at Until
// without counting an attempt and without backoff. It is not a failure.
// Classify reads it as Transient (for dispatchers that do not know it); use
// DeferUntil to recognise it.
type DeferError struct {
	Until  time.Time
	Reason string // e.g. "domain_rate", "global_rate"
}

func (e *DeferError) Error() string {
	return fmt.Sprintf("deferred until %s (%s)", e.Until.UTC().Format(time.RFC3339Nano), e.Reason)
}

// DeferUntil reports whether err is (or wraps) a *DeferError and when to retry.
func DeferUntil(err error) (time.Time, bool) {
	var d *DeferError
	if errors.As(err, &d) {
		return d.Until, true
	}
	return time.Time{}, false
}

// CheckedHandler is a Handler that may wait before its hand-off (a send
// throttle). The dispatcher calls DeliverChecked instead of Deliver; the
// handler calls check after any wait, right before the item leaves
// (before SMTP), and when check returns an error it returns that error
// (wrapped or not) without sending. check re-reads the suppression list
// and the lead's status and marks the hand-off, so an unsubscribe that
// lands while the item waited still wins. A nil check means none.
// Handlers that do not wait need not implement it: the dispatcher then
// runs check itself right before Deliver.
type CheckedHandler interface {
	Handler
	DeliverChecked(ctx context.Context, item store.OutboxItem, check func(ctx context.Context) error) error
}
