package nats

import (
	"context"
	"fmt"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

// Source is the CloudEvents source attribute of events Nurture publishes
// when the caller does not say otherwise.
const Source = "nurture"

// Publisher publishes to JetStream and waits for the stream's ack.
type Publisher struct {
	js     jetstream.JetStream
	source string
}

// Publisher returns a publisher on c. source is the CloudEvents source of
// events published with PublishEvent ("" = Source).
func (c *Conn) Publisher(source string) *Publisher {
	if source == "" {
		source = Source
	}
	return &Publisher{js: c.js, source: source}
}

// PublishEvent encodes ev as a CloudEvent and publishes it to
// leads.<type> with Nats-Msg-Id = ev.ID, returning once the stream stored
// it (or recognised it as a duplicate).
func (p *Publisher) PublishEvent(ctx context.Context, ev *engine.Event) error {
	data, err := cloudevent.Encode(ev, p.source)
	if err != nil {
		return err
	}
	return p.Publish(ctx, cloudevent.Subject(LeadsPrefix, ev.Type), data, ev.ID)
}

// Publish publishes data to subject with Nats-Msg-Id = msgID (none when
// empty) and waits for the PubAck.
func (p *Publisher) Publish(ctx context.Context, subject string, data []byte, msgID string) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := p.js.Publish(ctx, subject, data, opts...); err != nil {
		return translate(fmt.Sprintf("publish %s id %s", subject, msgID), err)
	}
	return nil
}

// Out is one message for PublishBatch.
type Out struct {
	Subject string
	Data    []byte
	MsgID   string
}

// EventOut encodes ev as a lead event for PublishBatch.
func EventOut(ev *engine.Event, source string) (Out, error) {
	if source == "" {
		source = Source
	}
	data, err := cloudevent.Encode(ev, source)
	if err != nil {
		return Out{}, err
	}
	return Out{Subject: cloudevent.Subject(LeadsPrefix, ev.Type), Data: data, MsgID: ev.ID}, nil
}

// PublishBatch publishes msgs asynchronously (pipelined) and waits until
// the stream acknowledged every one. It returns the first error; messages
// that failed may be republished safely (their ids dedupe).
func (p *Publisher) PublishBatch(ctx context.Context, msgs []Out) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, o := range msgs {
		m := natsgo.NewMsg(o.Subject)
		m.Data = o.Data
		var opts []jetstream.PublishOpt
		if o.MsgID != "" {
			opts = append(opts, jetstream.WithMsgID(o.MsgID))
		}
		f, err := p.js.PublishMsgAsync(m, opts...)
		if err != nil {
			return translate("publish async "+o.Subject, err)
		}
		futures = append(futures, f)
	}
	var first error
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = translate(fmt.Sprintf("publish %s id %s", msgs[i].Subject, msgs[i].MsgID), err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}
