package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subject names (DESIGN.md §3.1).
const (
	LeadsStream    = "LEADS"
	LeadsSubjects  = "leads.>"
	LeadsPrefix    = "leads"
	NurtureStream  = "NURTURE"
	NurtureSubject = "nurture.>"
	NurturePrefix  = "nurture"
	// DefaultDurable is the durable name of the worker's pull consumer.
	// Every worker process shares it, so JetStream spreads messages among
	// them.
	DefaultDurable = "nurture-worker"
)

// Options configures streams, the consumer and the connection. The zero
// value is usable: every field has a default (see withDefaults).
type Options struct {
	// URL of the server, e.g. nats://127.0.0.1:4222.
	URL string
	// Name is the client connection name shown in server monitoring.
	Name string

	// Duplicates is the stream's duplicate window: a message whose
	// Nats-Msg-Id was seen within it is dropped (default 2m).
	Duplicates time.Duration
	// LeadsMaxAge is how long LEADS keeps messages (default 7 days).
	LeadsMaxAge time.Duration
	// NurtureMaxAge is how long NURTURE keeps messages (default 7 days).
	NurtureMaxAge time.Duration
	// Replicas of both streams (default 1; 3 on a cluster).
	Replicas int

	// Durable is the pull consumer's durable name (default DefaultDurable).
	Durable string
	// AckWait: a fetched message not acked within it is redelivered
	// (default 30s).
	AckWait time.Duration
	// MaxDeliver caps deliveries of one message; -1 (the default) means
	// unlimited, because the worker terms poison messages itself after
	// dead-lettering them and must never drop an event it could not store.
	MaxDeliver int
	// MaxAckPending caps messages delivered but not yet acked across all
	// workers (default 20000: several workers with batches in flight).
	MaxAckPending int
	// FetchWait is how long Fetch blocks when nothing is pending
	// (default 500ms).
	FetchWait time.Duration

	// Embedded server only (StartEmbedded): StoreDir holds JetStream data
	// (required; state survives restarts on the same directory), Host
	// defaults to 127.0.0.1, Port -1 picks a free port and 0 means 4222.
	StoreDir string
	Host     string
	Port     int
}

func (o Options) withDefaults() Options {
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	if o.LeadsMaxAge <= 0 {
		o.LeadsMaxAge = 7 * 24 * time.Hour
	}
	if o.NurtureMaxAge <= 0 {
		o.NurtureMaxAge = 7 * 24 * time.Hour
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Durable == "" {
		o.Durable = DefaultDurable
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = -1
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 20000
	}
	if o.FetchWait <= 0 {
		o.FetchWait = 500 * time.Millisecond
	}
	if o.Name == "" {
		o.Name = "nurture"
	}
	return o
}

// Conn is a connection to a NATS server with JetStream.
type Conn struct {
	nc   *natsgo.Conn
	js   jetstream.JetStream
	opts Options
}

// Connect dials opts.URL. The client reconnects forever on its own; calls
// made while disconnected fail with ErrUnavailable.
func Connect(ctx context.Context, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	if opts.URL == "" {
		return nil, fmt.Errorf("nats connect: %w: no URL", ErrNATS)
	}
	nc, err := natsgo.Connect(opts.URL,
		natsgo.Name(opts.Name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250*time.Millisecond),
		natsgo.RetryOnFailedConnect(false),
	)
	if err != nil {
		return nil, translate("nats connect "+opts.URL, err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		nc.Close()
		return nil, translate("nats jetstream", err)
	}
	if err := ctx.Err(); err != nil {
		nc.Close()
		return nil, err
	}
	return &Conn{nc: nc, js: js, opts: opts}, nil
}

// JetStream returns the underlying JetStream context (for wiring code that
// needs it, such as EnsureStreams callers).
func (c *Conn) JetStream() jetstream.JetStream { return c.js }

// Connected reports whether the connection is currently up (for /readyz).
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Close drains the connection (pending publishes and acks are flushed)
// and waits for it to close.
func (c *Conn) Close() error {
	if c.nc.IsClosed() {
		return nil
	}
	if err := c.nc.Drain(); err != nil {
		c.nc.Close()
		return nil
	}
	deadline := time.After(5 * time.Second)
	for !c.nc.IsClosed() {
		select {
		case <-deadline:
			c.nc.Close()
			return nil
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// EnsureStreams creates or updates the LEADS and NURTURE streams.
func (c *Conn) EnsureStreams(ctx context.Context) error {
	return EnsureStreams(ctx, c.js, c.opts)
}

// EnsureStreams creates or updates stream LEADS on leads.> and stream
// NURTURE on nurture.> with file storage, the duplicate window and max ages
// of opts.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts Options) error {
	opts = opts.withDefaults()
	for _, cfg := range []jetstream.StreamConfig{
		{
			Name:        LeadsStream,
			Description: "Nurture lead events (CloudEvents JSON)",
			Subjects:    []string{LeadsSubjects},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      opts.LeadsMaxAge,
			Duplicates:  opts.Duplicates,
			Replicas:    opts.Replicas,
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:        NurtureStream,
			Description: "Events Nurture emits (email.*, lead.escalated)",
			Subjects:    []string{NurtureSubject},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      opts.NurtureMaxAge,
			Duplicates:  opts.Duplicates,
			Replicas:    opts.Replicas,
			Discard:     jetstream.DiscardOld,
		},
	} {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return translate("ensure stream "+cfg.Name, err)
		}
	}
	return nil
}

// errNoMsgs reports the benign end-of-fetch conditions.
func errNoMsgs(err error) bool {
	return err == nil || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, natsgo.ErrTimeout)
}
