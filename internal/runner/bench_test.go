package runner_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/runner"
)

func benchBundle(b *testing.B, mut ...func(*runner.Config)) (*runner.Runner, *nats.Publisher, func(time.Time)) {
	dbURL := testDatabase(b)
	srv := natstest.Start(b)
	conn := natstest.Connect(b, srv.URL, nats.Options{})
	cons, err := conn.Consumer(context.Background())
	require.NoError(b, err)
	clk := newClock(t0)
	cfg := runner.Config{
		Store: openStore(b, dbURL), Content: testContent(),
		Consumer: runner.AdaptConsumer(cons), Registerer: prometheus.NewRegistry(), Now: clk.Now,
	}
	for _, m := range mut {
		m(&cfg)
	}
	r, err := runner.New(cfg)
	require.NoError(b, err)
	return r, conn.Publisher("bench"), clk.Set
}

func publishN(b *testing.B, pub *nats.Publisher, n, leads int, typ string) {
	outs := make([]nats.Out, 0, 1000)
	for i := range n {
		ev := event(fmt.Sprintf("%s-%d", typ, i), typ, fmt.Sprintf("lead-%d", i%leads))
		outs = append(outs, mustOut(b, ev))
		if len(outs) == cap(outs) || i == n-1 {
			require.NoError(b, pub.PublishBatch(context.Background(), outs))
			outs = outs[:0]
		}
	}
}

// BenchmarkIngest: events already in the stream → fetched in batches of
// 500 → applied in one transaction per batch → acked.
func BenchmarkIngest(b *testing.B) {
	for _, par := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			benchIngest(b, par)
		})
	}
}

func benchIngest(b *testing.B, par int) {
	r, pub, _ := benchBundle(b, func(c *runner.Config) { c.IngestParallel = par })
	publishN(b, pub, b.N, 10000, "page.viewed")
	ctx := context.Background()
	b.ResetTimer()
	got := 0
	for got < b.N {
		n, err := r.IngestOnce(ctx)
		require.NoError(b, err)
		got += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkSweep: b.N leads each with a due wait step; one SweepOnce fires
// them all (and queues their second email).
func BenchmarkSweep(b *testing.B) {
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) { benchSweep(b, par) })
	}
}

func benchSweep(b *testing.B, par int) {
	r, pub, _ := benchBundle(b, func(c *runner.Config) { c.SweepParallel = par })
	publishN(b, pub, b.N, b.N, "trial.started")
	ctx := context.Background()
	got := 0
	for got < b.N {
		n, err := r.IngestOnce(ctx)
		require.NoError(b, err)
		got += n
	}
	b.ResetTimer()
	n, err := r.SweepOnce(ctx, t0.Add(49*time.Hour))
	require.NoError(b, err)
	require.Equal(b, b.N, n)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
}

// BenchmarkRun: the ingest loop of Run (fetch overlapped with the
// transaction) draining a backlog of b.N events; timed until the last one
// is applied.
func BenchmarkRun(b *testing.B) {
	for _, par := range []int{1, 2} {
		b.Run(fmt.Sprintf("parallel=%d", par), func(b *testing.B) {
			var applied atomic.Int64
			done := make(chan struct{})
			n := int64(b.N)
			r, pub, _ := benchBundle(b, func(c *runner.Config) {
				c.IngestParallel = par
				c.Observer = runner.ObserverFunc(func(string, time.Time, []engine.Effect) {
					if applied.Add(1) == n {
						close(done)
					}
				})
			})
			publishN(b, pub, b.N, 10000, "page.viewed")
			ctx, cancel := context.WithCancel(context.Background())
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() { errc <- r.Run(ctx) }()
			<-done
			b.StopTimer()
			cancel()
			require.NoError(b, <-errc)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
