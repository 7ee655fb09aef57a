package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	natsad "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
)

// checked is a CheckedHandler like the SMTP mailer: before runs where the
// mailer waits for its throttle, then check, then the recorder "sends".
type checked struct {
	rec    *recorder
	before func(ctx context.Context, item store.OutboxItem)
}

func (c *checked) Deliver(ctx context.Context, item store.OutboxItem) error {
	return c.DeliverChecked(ctx, item, nil)
}

func (c *checked) DeliverChecked(ctx context.Context, item store.OutboxItem, check func(context.Context) error) error {
	if c.before != nil {
		c.before(ctx, item)
	}
	if check != nil {
		if err := check(ctx); err != nil {
			return err
		}
	}
	return c.rec.Deliver(ctx, item)
}

func enqueueItems(t *testing.T, b *bundle, items ...store.OutboxItem) {
	t.Helper()
	require.NoError(t, b.st.InTx(context.Background(), func(ctx context.Context, tx store.Tx) error {
		return tx.Enqueue(ctx, items)
	}))
}

// deliveries returns the email delivery entries of a lead's timeline.
func deliveries(t *testing.T, b *bundle, lead string) []map[string]any {
	t.Helper()
	hs, err := b.st.History(context.Background(), lead, 1000)
	require.NoError(t, err)
	var out []map[string]any
	for _, h := range hs {
		if h.Kind != "delivery" {
			continue
		}
		if d := decode[map[string]any](t, h.Data); d["kind"] == store.KindEmail {
			out = append(out, d)
		}
	}
	return out
}

// Fix 1: one claim takes at most half of the items allowed in flight;
// the rest wait for later claims (their leases do not run down while
// they wait behind busy workers).
func TestClaimAtMostHalfInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t, func(c *runner.Config) { c.DispatchWorkers, c.DispatchBatch = 2, 4 })
	enqueueEmails(t, b, r, "c-1", "c-2", "c-3", "c-4", "c-5")
	n, err := r.DispatchOnce(context.Background(), t0)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	dispatchAll(t, r, t0)
	require.Equal(t, 5, b.mail.total())
}

// Fix 1: an attempt whose lease lapsed and whose item another worker
// claimed does not send it (the hand-off is fenced) and does not record
// over the newer claim.
func TestLeaseLostBeforeHandOffDoesNotSend(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var r *runner.Runner
	var reclaimed atomic.Int64
	h := &checked{rec: b.mail, before: func(ctx context.Context, item store.OutboxItem) {
		// Stalled past the lease: recovery retries the item (never handed
		// off) and another worker claims it.
		later := t0.Add(5 * time.Minute)
		b.clock.Set(later)
		_, err := r.RecoverLeasesOnce(ctx, later)
		require.NoError(t, err)
		got, err := b.st.ClaimOutbox(ctx, store.ClaimParams{Now: later, Limit: 1, Lease: time.Hour, Kinds: []string{store.KindEmail}})
		require.NoError(t, err)
		require.Len(t, got, 1)
		reclaimed.Store(int64(got[0].Attempts))
	}}
	r = b.runner(t, func(c *runner.Config) { c.Handlers[store.KindEmail] = h; c.Lease = time.Minute })
	enqueueEmails(t, b, r, "lost-1")
	n, err := r.DispatchOnce(context.Background(), t0)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Zero(t, b.mail.total(), "the stale attempt must not send")
	mails := b.outbox(t, store.KindEmail, "lost-1")
	require.Equal(t, store.StatusSending, mails[0].Status, "the newer claim still owns it")
	require.EqualValues(t, reclaimed.Load(), mails[0].Attempts)
}

// Fix 3: a throttle deferral waits without counting an attempt or ageing
// the item; Retry-After is honoured.
func TestDeferAndRetryAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.runner(t, func(c *runner.Config) { c.GiveUp = 24 * time.Hour })
	until := t0.Add(25 * time.Hour)
	b.mail.fault = func(item store.OutboxItem, n int) error {
		switch n {
		case 1:
			return fmt.Errorf("smtp: %w", &outbox.DeferError{Until: until, Reason: "domain_rate"})
		case 2:
			return fmt.Errorf("421 busy: %w", &outbox.RetryAfterError{After: 3 * time.Hour, Err: fmt.Errorf("429")})
		}
		return nil
	}
	enqueueEmails(t, b, r, "d-1")
	dispatchAll(t, r, t0)
	m := b.outbox(t, store.KindEmail, "d-1")[0]
	require.Equal(t, store.StatusRetry, m.Status)
	require.Zero(t, m.Attempts, "a deferral is not an attempt")
	require.True(t, until.Equal(m.NextAttemptAt), "retried at the throttle's time, no backoff: %s", m.NextAttemptAt)
	require.Equal(t, 25*time.Hour, m.Deferred)

	// 25h after creation, but 24h of it throttled: not given up.
	dispatchAll(t, r, until)
	m = b.outbox(t, store.KindEmail, "d-1")[0]
	require.Equal(t, store.StatusRetry, m.Status, "deferred time does not count towards giving up")
	require.Equal(t, 1, m.Attempts)
	require.True(t, until.Add(3*time.Hour).Equal(m.NextAttemptAt), "Retry-After beats the 10s backoff: %s", m.NextAttemptAt)
	require.Zero(t, dispatchAll(t, r, until.Add(3*time.Hour-time.Second)))
	dispatchAll(t, r, until.Add(3*time.Hour))
	require.Equal(t, store.StatusSent, b.outbox(t, store.KindEmail, "d-1")[0].Status)
}

// Fix 4: an unsubscribe that lands while the email waits (throttle) wins:
// the check runs right before the hand-off.
func TestSuppressionCheckedRightBeforeHandOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := &checked{rec: b.mail, before: func(ctx context.Context, item store.OutboxItem) {
		var p outbox.EmailPayload
		require.NoError(t, json.Unmarshal(item.Payload, &p))
		require.NoError(t, b.st.Suppress(ctx, p.To, "unsubscribed", t0))
	}}
	r := b.runner(t, func(c *runner.Config) { c.Handlers[store.KindEmail] = h })
	enqueueEmails(t, b, r, "u-1")
	require.Equal(t, 1, dispatchAll(t, r, t0))
	require.Zero(t, b.mail.total())
	m := b.outbox(t, store.KindEmail, "u-1")[0]
	require.Equal(t, store.StatusSuppressed, m.Status)
	require.True(t, m.HandedAt.IsZero(), "never handed off")
}

// Fix 5: a bounced rep notification does not suppress the rep's address.
func TestNotifyEmailBounceDoesNotSuppress(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rep := &recorder{got: map[string]int{}, fault: func(store.OutboxItem, int) error {
		return &outbox.SuppressError{Email: "ana@example.com", Reason: "hard_bounce", Err: fmt.Errorf("550 5.1.1")}
	}}
	bounce := &recorder{got: map[string]int{}, fault: func(store.OutboxItem, int) error {
		return &outbox.SuppressError{Email: "lead@example.com", Reason: "hard_bounce", Err: fmt.Errorf("550 5.1.1")}
	}}
	r := b.runner(t, func(c *runner.Config) {
		c.Handlers[store.KindNotifyEmail] = rep
		c.Handlers[store.KindEmail] = bounce
	})
	enqueueItems(t, b,
		store.OutboxItem{Kind: store.KindNotifyEmail, DedupeKey: "esc-1/ana", LeadKey: "n-1", Payload: json.RawMessage(`{}`), NextAttemptAt: t0, CreatedAt: t0},
		store.OutboxItem{Kind: store.KindEmail, DedupeKey: "send-n-2", LeadKey: "n-2", Payload: json.RawMessage(`{"to":"lead@example.com","lead":"n-2","send":{"transactional":true}}`), NextAttemptAt: t0, CreatedAt: t0},
	)
	require.Equal(t, 2, dispatchAll(t, r, t0))
	require.Equal(t, store.StatusFailed, b.outbox(t, store.KindNotifyEmail, "n-1")[0].Status)
	var got map[string]string
	require.NoError(t, b.st.InTx(context.Background(), func(ctx context.Context, tx store.Tx) (err error) {
		got, err = tx.Suppressed(ctx, []string{"ana@example.com", "lead@example.com"})
		return err
	}))
	require.Equal(t, map[string]string{"lead@example.com": "hard_bounce"}, got, "only the marketing email's bounce suppresses")
}

// lostReply applies CompleteOutbox and then reports a transient error (the
// reply was lost), like a connection reset after commit.
type lostReply struct {
	*flaky
	fail atomic.Int32
}

func (s *lostReply) CompleteOutbox(ctx context.Context, rs []store.OutboxResult) error {
	err := s.flaky.CompleteOutbox(ctx, rs)
	if s.fail.Add(-1) >= 0 {
		return fmt.Errorf("injected: connection reset: %w", store.ErrTransient)
	}
	return err
}

// Fix 6: history entries and outcomes commit together: retries after a
// partial failure write each delivery entry once.
func TestDeliveryHistoryOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	st := &lostReply{flaky: &flaky{Store: b.st}}
	r := b.runner(t, func(c *runner.Config) { c.Store = st })
	enqueueEmails(t, b, r, "h-1")
	st.flaky.fail.Store(1)
	st.fail.Store(1)
	dispatchAll(t, r, t0)
	require.Equal(t, store.StatusSent, b.outbox(t, store.KindEmail, "h-1")[0].Status)
	ds := deliveries(t, b, "h-1")
	require.Len(t, ds, 1, "one delivery entry: %v", ds)
	require.Equal(t, "sent", ds[0]["outcome"])
}

type tooLarge struct{ n atomic.Int32 }

func (p *tooLarge) Publish(context.Context, string, []byte, string) error {
	p.n.Add(1)
	return fmt.Errorf("publish: %w", natsad.ErrTooLarge)
}

// Fix 7: an event over the size limit fails at once instead of retrying
// for a day.
func TestEventTooLargeIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pub := &tooLarge{}
	r := b.runner(t, func(c *runner.Config) { c.Publisher = pub })
	payload, err := json.Marshal(outbox.EventPayload{Subject: "nurture.big", ID: "big-1", Data: []byte(`{}`)})
	require.NoError(t, err)
	enqueueItems(t, b, store.OutboxItem{Kind: store.KindEvent, DedupeKey: "big-1", LeadKey: "e-1", Payload: payload, NextAttemptAt: t0, CreatedAt: t0})
	require.Equal(t, 1, dispatchAll(t, r, t0))
	ev := b.outbox(t, store.KindEvent, "e-1")[0]
	require.Equal(t, store.StatusFailed, ev.Status)
	require.Zero(t, dispatchAll(t, r, t0.Add(48*time.Hour)))
	require.EqualValues(t, 1, pub.n.Load())
}

// Fix 2: items not yet handed off when the runner stops are released for
// an immediate retry, not left to expire into unknown.
func TestStopReleasesNotHandedOff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	entered := make(chan struct{}, 1)
	h := &checked{rec: b.mail, before: func(context.Context, store.OutboxItem) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done() // waiting for a throttle slot while the runner stops
		time.Sleep(50 * time.Millisecond)
	}}
	r := b.runner(t, func(c *runner.Config) { c.Handlers[store.KindEmail] = h })
	enqueueEmails(t, b, r, "s-1")
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("dispatcher never delivered")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("runner did not stop")
	}
	require.Zero(t, b.mail.total())
	m := b.outbox(t, store.KindEmail, "s-1")[0]
	require.Equal(t, store.StatusRetry, m.Status)
	require.Zero(t, m.Attempts, "release is not an attempt")
	require.True(t, m.HandedAt.IsZero())
	require.False(t, m.NextAttemptAt.After(b.clock.Now()), "due at once")
}

// gauge is a CheckedHandler that tracks how many items are inside the
// handler (waiting like a throttled mailer, then sending) and how many are
// past their hand-off at once.
type gauge struct {
	rec                  *recorder
	inside, insidePeak   atomic.Int64
	sending, sendingPeak atomic.Int64
}

func raise(peak *atomic.Int64, n int64) {
	for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
	}
}

func (g *gauge) Deliver(ctx context.Context, item store.OutboxItem) error {
	return g.DeliverChecked(ctx, item, nil)
}

func (g *gauge) DeliverChecked(ctx context.Context, item store.OutboxItem, check func(context.Context) error) error {
	raise(&g.insidePeak, g.inside.Add(1))
	defer g.inside.Add(-1)
	time.Sleep(5 * time.Millisecond) // a throttle wait: keeps items in flight
	if check != nil {
		if err := check(ctx); err != nil {
			return err
		}
	}
	raise(&g.sendingPeak, g.sending.Add(1))
	defer g.sending.Add(-1)
	time.Sleep(2 * time.Millisecond) // a slow receiver
	return g.rec.Deliver(ctx, item)
}

// The dispatch loop keeps up to DispatchBatch items in flight, claiming
// while others are delivered, and never has more than DispatchWorkers
// past their hand-off; every email is sent once and recorded sent, and an
// address suppressed before its hand-off is skipped.
func TestDispatchLoopPipelines(t *testing.T) {
	t.Parallel()
	b := setup(t)
	g := &gauge{rec: b.mail}
	r := b.runner(t, func(c *runner.Config) {
		c.DispatchWorkers, c.DispatchBatch = 3, 12
		c.Handlers[store.KindEmail] = g
	})
	var leads []string
	for i := range 60 {
		leads = append(leads, fmt.Sprintf("p-%02d", i))
	}
	enqueueEmails(t, b, r, leads...)
	require.NoError(t, b.st.Suppress(context.Background(), "p-07@example.com", "unsubscribed", t0))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	require.Eventually(t, func() bool {
		final := 0
		for _, l := range leads {
			if it := b.outbox(t, store.KindEmail, l); len(it) == 1 && it[0].Status != store.StatusSending && it[0].Status != store.StatusPending {
				final++
			}
		}
		return final == len(leads)
	}, 20*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	require.LessOrEqual(t, g.insidePeak.Load(), int64(12), "never more than DispatchBatch in flight")
	require.Greater(t, g.insidePeak.Load(), int64(6), "claims overlap deliveries (one claim takes at most half)")
	require.LessOrEqual(t, g.sendingPeak.Load(), int64(3), "never more than DispatchWorkers past their hand-off")
	require.Equal(t, len(leads)-1, b.mail.total())
	for _, l := range leads {
		it := b.outbox(t, store.KindEmail, l)[0]
		want, sends := store.StatusSent, 1
		if l == "p-07" {
			want, sends = store.StatusSuppressed, 0
		}
		require.Equal(t, want, it.Status, l)
		require.Len(t, deliveries(t, b, l), 1, l)
		require.Equal(t, sends, b.mail.count(it.DedupeKey), l)
	}
}

// countingPub is a runner.Publisher that fails its first fail publishes
// and records the message ids it published.
type countingPub struct {
	runner.Publisher
	fail     atomic.Int32
	mu       sync.Mutex
	ids      []string
	subjects []string // subjects[i] is the subject of ids[i]
}

func (p *countingPub) Publish(ctx context.Context, subject string, data []byte, id string) error {
	if p.fail.Add(-1) >= 0 {
		return errors.New("injected: NATS unavailable")
	}
	if err := p.Publisher.Publish(ctx, subject, data, id); err != nil {
		return err
	}
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.subjects = append(p.subjects, subject)
	p.mu.Unlock()
	return nil
}

// count is how many times message id was published on subject.
func (p *countingPub) count(subject, id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i, got := range p.ids {
		if got == id && p.subjects[i] == subject {
			n++
		}
	}
	return n
}

// The email.sent event of a delivered email is published while its
// outcome is recorded, with no outbox row, claim or delivery entry of its
// own; when NATS refuses it then, it is enqueued pending and the
// dispatcher publishes it.
func TestEmailSentPublishedWithTheRecord(t *testing.T) {
	t.Parallel()
	for _, failFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("publish fails first: %v", failFirst), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			pub := &countingPub{Publisher: b.pub}
			r := b.runner(t, func(c *runner.Config) { c.Publisher = pub })
			enqueueEmails(t, b, r, "s-1")
			if failFirst {
				pub.fail.Store(1)
			}
			n, err := r.DispatchOnce(context.Background(), t0)
			require.NoError(t, err)
			require.Equal(t, 1, n, "one claim: the email")
			mail := b.outbox(t, store.KindEmail, "s-1")[0]
			require.Equal(t, store.StatusSent, mail.Status)
			ev := b.outbox(t, store.KindEvent, "s-1")
			if !failFirst {
				require.Empty(t, ev, "published with the record: nothing enqueued")
				require.Equal(t, []string{mail.DedupeKey}, pub.ids)
				require.Zero(t, dispatchAll(t, r, t0), "nothing left to dispatch")
			} else {
				require.Len(t, ev, 1)
				require.Equal(t, store.StatusPending, ev[0].Status, "left to the dispatcher")
				require.Empty(t, pub.ids)
				require.Equal(t, 1, dispatchAll(t, r, t0))
				require.Equal(t, store.StatusSent, b.outbox(t, store.KindEvent, "s-1")[0].Status)
				require.Equal(t, []string{mail.DedupeKey}, pub.ids)
			}
			var eventDeliveries int
			for _, h := range b.history(t, "s-1", "delivery") {
				if decode[map[string]any](t, h.Data)["kind"] == store.KindEvent {
					eventDeliveries++
				}
			}
			require.Equal(t, map[bool]int{false: 0, true: 1}[failFirst], eventDeliveries)
		})
	}
}
