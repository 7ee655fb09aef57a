package smtp_test

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
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

// BenchmarkCompose measures Composer.Compose alone (render, link tracking,
// text part, go-mail message) for the test template and for an example
// template through the real sequences renderer; BenchmarkComposeWrite adds
// writing the message out (what Send does on the wire).
func BenchmarkCompose(b *testing.B) {
	ctx := context.Background()
	bu := setup(b, opts{})
	ex := exampleComposer(b)
	for _, c := range []struct {
		name, template string
		comp           *smtp.Composer
	}{{"welcome", "welcome", bu.composer}, {"example", "trial-welcome", ex}} {
		b.Run(c.name, func(b *testing.B) {
			p := payload("snd-bench", c.template, map[string]any{"first_name": "Bench", "company": "ACME"})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.comp.Compose(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"+write", func(b *testing.B) {
			p := payload("snd-bench", c.template, map[string]any{"first_name": "Bench", "company": "ACME"})
			b.ReportAllocs()
			for b.Loop() {
				m, err := c.comp.Compose(ctx, p)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := m.Msg.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func exampleComposer(tb testing.TB) *smtp.Composer {
	bundle, err := sequences.Load("../../examples")
	require.NoError(tb, err)
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef")})
	require.NoError(tb, err)
	c, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: "https://mail.lumen.example", Signer: signer,
		Renderer:      smtp.BundleRenderer(func() *sequences.Bundle { return bundle }),
		PostalAddress: "Lumen Analytics, 100 Main St, Boston MA",
	})
	require.NoError(tb, err)
	return c
}
