package nats

import (
	"context"
	"errors"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer is the worker's durable pull consumer on LEADS.
type Consumer struct {
	js   jetstream.JetStream
	cfg  jetstream.ConsumerConfig
	mu   sync.Mutex
	cons jetstream.Consumer
	wait time.Duration

	lastRecreate time.Time
}

// Consumer creates or updates the durable pull consumer on LEADS (explicit
// ack, AckWait, MaxDeliver, MaxAckPending from the connection's Options)
// and returns it. Several processes calling this share one consumer.
func (c *Conn) Consumer(ctx context.Context) (*Consumer, error) {
	o := c.opts
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Durable,
		Description:   "Nurture workers: apply lead events",
		FilterSubject: LeadsSubjects,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: o.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, LeadsStream, cfg)
	if err != nil {
		return nil, translate("ensure consumer "+o.Durable, err)
	}
	return &Consumer{js: c.js, cfg: cfg, cons: cons, wait: o.FetchWait}, nil
}

func (c *Consumer) current() jetstream.Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cons
}

// recreate puts the durable consumer back after the server lost it (a
// broker restarted without its store, an operator deleted it).
func (c *Consumer) recreate(ctx context.Context) {
	cons, err := c.js.CreateOrUpdateConsumer(ctx, LeadsStream, c.cfg)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
}

// fetchErr translates a fetch error. A pull request to a consumer that
// does not exist gets "no responders" (the same as a broker without
// JetStream), so on that, at most once a second, the consumer is
// re-created.
func (c *Consumer) fetchErr(ctx context.Context, err error) error {
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDoesNotExist) ||
		errors.Is(err, natsgo.ErrNoResponders) {
		c.mu.Lock()
		due := time.Since(c.lastRecreate) >= time.Second
		if due {
			c.lastRecreate = time.Now()
		}
		c.mu.Unlock()
		if due {
			c.recreate(ctx)
		}
	}
	return translate("fetch", err)
}

// Fetch returns up to max messages. When messages are pending it returns
// at once with what is there (one round trip); when none are, it blocks up
// to the configured FetchWait (or ctx's end) for the first one and then
// takes whatever else arrived with it. An empty slice with a nil error
// means nothing arrived in time.
func (c *Consumer) Fetch(ctx context.Context, max int) ([]*Msg, error) {
	if max <= 0 {
		max = 1
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msgs, err := c.fetchNoWait(ctx, max, nil)
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	wctx, cancel := context.WithTimeout(ctx, c.wait)
	defer cancel()
	b, err := c.current().Fetch(1, jetstream.FetchContext(wctx))
	if err != nil {
		return nil, c.fetchErr(ctx, err)
	}
	msgs, err = c.collect(ctx, b, msgs)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return msgs, nil // nothing arrived within FetchWait
		}
		if len(msgs) > 0 && ctx.Err() != nil {
			// Shutdown while a message arrived: hand it over, the
			// caller finishes the batch.
			return msgs, nil
		}
		return msgs, err
	}
	if len(msgs) == 0 || max == 1 {
		return msgs, nil
	}
	return c.fetchNoWait(ctx, max-len(msgs), msgs)
}

func (c *Consumer) fetchNoWait(ctx context.Context, max int, into []*Msg) ([]*Msg, error) {
	b, err := c.current().FetchNoWait(max)
	if err != nil {
		if len(into) > 0 {
			return into, nil
		}
		return nil, c.fetchErr(ctx, err)
	}
	out, err := c.collect(ctx, b, into)
	if err != nil && len(out) > 0 {
		return out, nil
	}
	return out, err
}

func (c *Consumer) collect(ctx context.Context, b jetstream.MessageBatch, into []*Msg) ([]*Msg, error) {
	for m := range b.Messages() {
		into = append(into, &Msg{m: m})
	}
	if err := b.Error(); !errNoMsgs(err) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return into, err
		}
		return into, c.fetchErr(ctx, err)
	}
	return into, nil
}

// Pending returns the number of messages not yet delivered to any worker
// plus those delivered but not acked (the consumer lag).
func (c *Consumer) Pending(ctx context.Context) (pending uint64, ackPending int, err error) {
	info, err := c.current().Info(ctx)
	if err != nil {
		return 0, 0, translate("consumer info", err)
	}
	return info.NumPending, info.NumAckPending, nil
}

// Msg is one fetched lead event.
type Msg struct {
	m jetstream.Msg
}

// Data is the message body (the CloudEvent).
func (m *Msg) Data() []byte { return m.m.Data() }

// Subject the message was published to.
func (m *Msg) Subject() string { return m.m.Subject() }

// MsgID is the Nats-Msg-Id header, if any.
func (m *Msg) MsgID() string { return m.m.Headers().Get("Nats-Msg-Id") }

// NumDelivered is how many times the message was delivered (1 on the first
// delivery); 0 if the metadata cannot be read.
func (m *Msg) NumDelivered() uint64 {
	md, err := m.m.Metadata()
	if err != nil {
		return 0
	}
	return md.NumDelivered
}

// Timestamp is when the stream stored the message (zero if unknown).
func (m *Msg) Timestamp() time.Time {
	md, err := m.m.Metadata()
	if err != nil {
		return time.Time{}
	}
	return md.Timestamp
}

// Ack acknowledges the message: it will not be redelivered.
func (m *Msg) Ack() error { return ackErr("ack", m.m.Ack()) }

// Nak asks for redelivery now.
func (m *Msg) Nak() error { return ackErr("nak", m.m.Nak()) }

// NakWithDelay asks for redelivery after d.
func (m *Msg) NakWithDelay(d time.Duration) error { return ackErr("nak", m.m.NakWithDelay(d)) }

// Term stops redelivery for good (after the message was dead-lettered).
func (m *Msg) Term() error { return ackErr("term", m.m.Term()) }

// InProgress resets the ack timer.
func (m *Msg) InProgress() error { return ackErr("in progress", m.m.InProgress()) }

func ackErr(op string, err error) error {
	if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
		return nil
	}
	return translate(op, err)
}
