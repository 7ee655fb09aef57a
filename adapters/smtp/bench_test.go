package smtp_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDeliver measures emails/s from outbox item to a local go-smtp
// sink: decode, render, track, compose, send, on 1 and on N connections.
func BenchmarkDeliver(b *testing.B) {
	for _, pool := range []int{1, 4, 8} {
		b.Run(fmt.Sprintf("conns=%d", pool), func(b *testing.B) {
			bu := setup(b, opts{pool: pool, dkim: false})
			ctx := context.Background()
			var n atomic.Int64
			// Warm the pool.
			_ = bu.mailer.Deliver(ctx, item(b, payload("warm", "welcome", map[string]any{"first_name": "W"})))
			b.ResetTimer()
			start := time.Now()
			b.SetParallelism(pool)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					it := item(b, payload(fmt.Sprintf("snd-%d", i), "welcome", map[string]any{"first_name": "Bench", "company": "ACME"}))
					if err := bu.mailer.Deliver(ctx, it); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "emails/s")
		})
	}
}

// BenchmarkDeliverDKIM is BenchmarkDeliver with RSA-2048 DKIM signing on 4
// connections.
func BenchmarkDeliverDKIM(b *testing.B) {
	bu := setup(b, opts{pool: 4, dkim: true})
	ctx := context.Background()
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := bu.mailer.Deliver(ctx, item(b, payload(fmt.Sprintf("snd-%d", i), "welcome", map[string]any{"first_name": "B"}))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "emails/s")
}
