package runner_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
)

// syncBuf is a goroutine-safe log sink.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestLogsCarryNoEmailAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var logs syncBuf
	b.mail.fault = func(item store.OutboxItem, _ int) error {
		return errors.New("450 4.2.0 <jo@example.com>: mailbox busy")
	}
	r := b.runner(t, func(c *runner.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	// The lead key itself is an address, as some upstream systems do.
	ev := event("", "trial.started", "jo@example.com")
	ev.Email = "jo@example.com"
	b.publish(t, ev)
	b.publishRaw(t, "leads.x", []byte(`{"id": "x", "email": "jo@example.com"`), "bad")
	drain(t, r, 2)
	dispatchAll(t, r, t0)
	out := logs.String()
	require.Contains(t, out, "outbox delivery", "the delivery was logged")
	require.Contains(t, out, "event dead-lettered")
	require.NotContains(t, out, "jo@example.com")
	require.Contains(t, out, "<email>")
}

func TestPruneProcessedEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t, func(c *runner.Config) { c.EventRetention = time.Hour })
	b.publish(t, event("p-1", "page.viewed", "lead-1"))
	drain(t, r, 1)
	ctx := context.Background()
	n, err := r.PruneOnce(ctx, t0.Add(59*time.Minute))
	require.NoError(t, err)
	require.Zero(t, n, "kept within the retention")
	n, err = r.PruneOnce(ctx, t0.Add(61*time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	st := &flaky{} // never used: New fails first
	cases := []struct {
		name string
		cfg  runner.Config
		want string
	}{
		{"no store", runner.Config{Content: testContent()}, "no store"},
		{"no content", runner.Config{Store: st}, "no engine or content"},
		{"bad channel", runner.Config{Store: st, Content: testContent(), Channels: []runner.Channel{{Kind: "pager"}}}, "unknown kind"},
		{"duplicate channel", runner.Config{Store: st, Content: testContent(), Channels: []runner.Channel{
			{Kind: store.KindNotifySlack, Name: "sales"}, {Kind: store.KindNotifyWebhook, Name: "sales"}}}, "duplicate name"},
		{"lease too short", runner.Config{Store: st, Content: testContent(), Lease: time.Second, DeliverTimeout: time.Second}, "lease"},
		{"bad content", runner.Config{Store: st, Content: &engine.Content{Sequences: []*engine.Sequence{{}}}}, "engine"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := runner.New(c.cfg)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestMetricsExposed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t, func(c *runner.Config) { c.Registerer = b.reg })
	b.publish(t, event("", "trial.started", "lead-1"), event("", "page.viewed", "lead-1"))
	drain(t, r, 2)
	dispatchAll(t, r, t0)
	mfs, err := b.reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	require.Equal(t, 2.0, got["nurture_events_applied_total"])
	require.Equal(t, 1.0, got["nurture_outbox_deliveries_total,kind=email,outcome=sent"])
	require.Equal(t, 1.0, got["nurture_outbox_deliveries_total,kind=event,outcome=sent"], "email.sent published")
	require.GreaterOrEqual(t, got["nurture_ingest_batch_size"], 1.0)
}

func TestRedactsEscapedAddressesInIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var logs syncBuf
	b.mail.fault = func(store.OutboxItem, int) error { return errors.New("421 busy") }
	r := b.runner(t, func(c *runner.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	b.publish(t, event("", "trial.started", "ana@example.io"))
	drain(t, r, 1)
	dispatchAll(t, r, t0)
	out := logs.String()
	require.Contains(t, out, "outbox delivery")
	require.Contains(t, out, `"step":"welcome"`)
	require.NotContains(t, out, "ana@example.io")
	require.NotContains(t, out, "ana%40example%2Eio")
}
