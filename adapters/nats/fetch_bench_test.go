package nats_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
)

func prefill(b *testing.B, n int) (*nats.Conn, *nats.Consumer) {
	srv := natstest.Start(b)
	conn := natstest.Connect(b, srv.URL, nats.Options{})
	ctx := context.Background()
	cons, err := conn.Consumer(ctx)
	require.NoError(b, err)
	pub := conn.Publisher("")
	data := []byte(`{"specversion":"1.0","id":"x","source":"b","type":"page.viewed","subject":"l","data":{"properties":{"path":"/pricing"}}}`)
	outs := make([]nats.Out, 0, 1000)
	for i := 0; i < n; i++ {
		outs = append(outs, nats.Out{Subject: "leads.page.viewed", Data: data, MsgID: fmt.Sprintf("m-%d", i)})
		if len(outs) == cap(outs) || i == n-1 {
			require.NoError(b, pub.PublishBatch(ctx, outs))
			outs = outs[:0]
		}
	}
	return conn, cons
}

// BenchmarkConsume compares ways to consume a backlog with explicit acks:
// Consumer.Fetch (FetchNoWait batches, what the worker uses) and the
// Messages() iterator with a prefetch buffer.
func BenchmarkConsume(b *testing.B) {
	b.Run("Fetch500", func(b *testing.B) {
		_, cons := prefill(b, b.N)
		ctx := context.Background()
		b.ResetTimer()
		for got := 0; got < b.N; {
			msgs, err := cons.Fetch(ctx, 500)
			require.NoError(b, err)
			for _, m := range msgs {
				_ = m.Ack()
			}
			got += len(msgs)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("Messages500", func(b *testing.B) {
		conn, _ := prefill(b, b.N)
		ctx := context.Background()
		c, err := conn.JetStream().Consumer(ctx, nats.LeadsStream, nats.DefaultDurable)
		require.NoError(b, err)
		b.ResetTimer()
		it, err := c.Messages(jetstream.PullMaxMessages(500))
		require.NoError(b, err)
		defer it.Stop()
		for got := 0; got < b.N; got++ {
			m, err := it.Next()
			require.NoError(b, err)
			_ = m.Ack()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
