package nats_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

type bundle struct {
	srv  *natstest.Server
	conn *nats.Conn
	cons *nats.Consumer
	pub  *nats.Publisher
}

func setup(t *testing.T, opts nats.Options) *bundle {
	t.Helper()
	srv := natstest.Start(t)
	conn := natstest.Connect(t, srv.URL, opts)
	cons, err := conn.Consumer(context.Background())
	require.NoError(t, err)
	return &bundle{srv: srv, conn: conn, cons: cons, pub: conn.Publisher("test")}
}

func fetchAll(t *testing.T, c *nats.Consumer, want int) []*nats.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*nats.Msg
	for len(out) < want {
		msgs, err := c.Fetch(ctx, want-len(out))
		require.NoError(t, err)
		out = append(out, msgs...)
	}
	return out
}

func TestPublishEventFetchAck(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()
	ev := &engine.Event{ID: "e1", Type: "trial.started", Lead: "lead-1", Time: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), Email: "a@example.com"}
	require.NoError(t, b.pub.PublishEvent(ctx, ev))

	msgs := fetchAll(t, b.cons, 1)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, "leads.trial.started", m.Subject())
	require.Equal(t, "e1", m.MsgID())
	require.EqualValues(t, 1, m.NumDelivered())
	got, err := cloudevent.Parse(m.Data())
	require.NoError(t, err)
	require.Equal(t, ev.Lead, got.Lead)
	require.Equal(t, ev.Email, got.Email)
	require.NoError(t, m.Ack())

	// Nothing left: an empty fetch returns after FetchWait with no error.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	more, err := b.cons.Fetch(wctx, 10)
	require.NoError(t, err)
	require.Empty(t, more)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestDuplicateMsgIDStoredOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()
	ev := &engine.Event{ID: "dup-1", Type: "page.viewed", Lead: "lead-1"}
	require.NoError(t, b.pub.PublishEvent(ctx, ev))
	require.NoError(t, b.pub.PublishEvent(ctx, ev))

	msgs := fetchAll(t, b.cons, 1)
	require.NoError(t, msgs[0].Ack())
	pending, _, err := b.cons.Pending(ctx)
	require.NoError(t, err)
	require.Zero(t, pending)
	info, err := b.conn.JetStream().Stream(ctx, nats.LeadsStream)
	require.NoError(t, err)
	si, err := info.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, si.State.Msgs)
}

func TestNakRedeliversWithCount(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()
	require.NoError(t, b.pub.Publish(ctx, "leads.x", []byte(`{}`), "n1"))
	m := fetchAll(t, b.cons, 1)[0]
	require.NoError(t, m.NakWithDelay(10*time.Millisecond))
	m2 := fetchAll(t, b.cons, 1)[0]
	require.Equal(t, "n1", m2.MsgID())
	require.EqualValues(t, 2, m2.NumDelivered())
	require.NoError(t, m2.Term())
}

func TestUnackedRedeliveredAfterAckWait(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{AckWait: 300 * time.Millisecond})
	ctx := context.Background()
	require.NoError(t, b.pub.Publish(ctx, "leads.x", []byte(`{}`), "u1"))
	_ = fetchAll(t, b.cons, 1) // "crash": never acked
	// A new consumer handle (a restarted worker) gets it again.
	cons2, err := b.conn.Consumer(ctx)
	require.NoError(t, err)
	m := fetchAll(t, cons2, 1)[0]
	require.EqualValues(t, 2, m.NumDelivered())
	require.NoError(t, m.Ack())
}

func TestPublishBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()
	const n = 2000
	outs := make([]nats.Out, n)
	for i := range outs {
		o, err := nats.EventOut(&engine.Event{ID: fmt.Sprintf("b-%d", i), Type: "page.viewed", Lead: fmt.Sprintf("l-%d", i%10)}, "")
		require.NoError(t, err)
		outs[i] = o
	}
	require.NoError(t, b.pub.PublishBatch(ctx, outs))
	require.NoError(t, b.pub.PublishBatch(ctx, outs[:100])) // duplicates: harmless
	msgs := fetchAll(t, b.cons, n)
	require.Len(t, msgs, n)
	for _, m := range msgs {
		require.NoError(t, m.Ack())
	}
}

func TestNurtureStreamPublish(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()
	require.NoError(t, b.pub.Publish(ctx, "nurture.lead.escalated", []byte(`{"id":"x"}`), "esc-1"))
	s, err := b.conn.JetStream().Stream(ctx, nats.NurtureStream)
	require.NoError(t, err)
	si, err := s.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, si.State.Msgs)
}

func TestErrorsTranslated(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()

	// A subject no stream captures: nobody answers the publish.
	err := b.pub.Publish(ctx, "elsewhere.x", []byte("x"), "")
	require.Error(t, err)
	require.True(t, errors.Is(err, nats.ErrUnavailable), "got %v", err)

	// Broker gone.
	b.srv.Shutdown()
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err = b.pub.Publish(tctx, "leads.x", []byte("x"), "gone")
	require.Error(t, err)
	require.True(t, errors.Is(err, nats.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded), "got %v", err)
}

func TestStartProcessRestartKeepsMessages(t *testing.T) {
	t.Parallel()
	p := natstest.StartProcess(t)
	conn := natstest.Connect(t, p.URL, nats.Options{})
	ctx := context.Background()
	pub := conn.Publisher("")
	require.NoError(t, pub.Publish(ctx, "leads.a", []byte("1"), "p1"))
	p.Restart()
	// The client reconnects on its own.
	require.Eventually(t, conn.Connected, 10*time.Second, 20*time.Millisecond)
	cons, err := conn.Consumer(ctx)
	require.NoError(t, err)
	require.NoError(t, pub.Publish(ctx, "leads.a", []byte("2"), "p2"))
	msgs := fetchAll(t, cons, 2)
	require.Equal(t, "1", string(msgs[0].Data()))
	require.Equal(t, "2", string(msgs[1].Data()))
}

// BenchmarkPublishFetchAck measures publish (async, pipelined) then fetch
// in batches of 500 and ack, on an embedded server.
func BenchmarkPublishFetchAck(b *testing.B) {
	srv := natstest.Start(b)
	conn := natstest.Connect(b, srv.URL, nats.Options{})
	ctx := context.Background()
	cons, err := conn.Consumer(ctx)
	require.NoError(b, err)
	pub := conn.Publisher("")
	data := []byte(`{"specversion":"1.0","id":"x","source":"b","type":"page.viewed","subject":"l","data":{"properties":{"path":"/pricing"}}}`)
	outs := make([]nats.Out, 0, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outs = append(outs, nats.Out{Subject: "leads.page.viewed", Data: data, MsgID: fmt.Sprintf("m-%d", i)})
		if len(outs) == cap(outs) || i == b.N-1 {
			require.NoError(b, pub.PublishBatch(ctx, outs))
			outs = outs[:0]
		}
	}
	got := 0
	for got < b.N {
		msgs, err := cons.Fetch(ctx, 500)
		require.NoError(b, err)
		for _, m := range msgs {
			_ = m.Ack()
		}
		got += len(msgs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func TestFetchRecreatesLostConsumer(t *testing.T) {
	t.Parallel()
	b := setup(t, nats.Options{})
	ctx := context.Background()
	require.NoError(t, b.conn.JetStream().DeleteConsumer(ctx, nats.LeadsStream, nats.DefaultDurable))
	require.NoError(t, b.pub.Publish(ctx, "leads.x", []byte(`{}`), "r1"))
	var got []*nats.Msg
	require.Eventually(t, func() bool {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		ms, _ := b.cons.Fetch(wctx, 10)
		got = append(got, ms...)
		return len(got) == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "r1", got[0].MsgID())
}
