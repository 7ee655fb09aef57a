package runner_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
)

// TestTwoRunnersNeverDoubleApply runs two runners (Run, all loops) on one
// database and one durable consumer, with the clock jumping past the wait
// step while events keep arriving.
func TestTwoRunnersNeverDoubleApply(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fast := func(c *runner.Config) {
		c.SweepInterval = 20 * time.Millisecond
		c.DispatchPoll = 20 * time.Millisecond
		c.BatchSize = 50
	}
	r1, r2 := b.runner(t, fast), b.runner(t, fast)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, r := range []*runner.Runner{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, r.Run(ctx))
		}()
	}

	const leads = 60
	var evs []*engine.Event
	for i := range leads {
		key := fmt.Sprintf("lead-%d", i)
		evs = append(evs, event(fmt.Sprintf("start-%d", i), "trial.started", key))
		for j := range 3 {
			evs = append(evs, event(fmt.Sprintf("view-%d-%d", i, j), "page.viewed", key))
		}
	}
	// Publish in two halves, each twice with fresh message ids on the
	// second copy (as an upstream retry after the duplicate window).
	half := len(evs) / 2
	b.publish(t, evs[:half]...)
	for _, ev := range evs[:half] {
		o := mustOut(t, ev)
		b.publishRaw(t, o.Subject, o.Data, "retry-"+ev.ID)
	}
	b.publish(t, evs[half:]...)
	require.Eventually(t, func() bool {
		for i := range leads {
			if b.countEvents(t, fmt.Sprintf("lead-%d", i)) < 4 {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond)
	b.clock.Set(t0.Add(49 * time.Hour)) // the wait step is due: both runners sweep

	require.Eventually(t, func() bool {
		for i := range leads {
			if len(b.outbox(t, store.KindEmail, fmt.Sprintf("lead-%d", i))) < 2 {
				return false
			}
		}
		return b.mail.total() >= 2*leads
	}, 30*time.Second, 50*time.Millisecond)
	time.Sleep(300 * time.Millisecond) // let any (wrong) extra work show
	cancel()
	wg.Wait()

	for i := range leads {
		key := fmt.Sprintf("lead-%d", i)
		l := b.lead(t, key)
		require.InDelta(t, 30, l.Score.Value, 0.001, key)
		require.Len(t, b.history(t, key, "event"), 4, key)
		mails := b.outbox(t, store.KindEmail, key)
		require.Len(t, mails, 2, key)
		for _, m := range mails {
			require.Equal(t, store.StatusSent, m.Status)
			require.Equal(t, 1, b.mail.count(m.DedupeKey), "sent once: %s", m.DedupeKey)
		}
	}
	require.Equal(t, 2*leads, b.mail.total())
}

// TestConcurrentEscalationsRouteStrictly: two runners escalate two leads at
// the same moment; round-robin gives one to each rep (the desk is locked
// and the batch re-run).
func TestConcurrentEscalationsRouteStrictly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r1, r2 := b.runner(t), b.runner(t)
	// Build up both leads to 40 points (below the threshold of 50).
	var evs []*engine.Event
	for _, k := range []string{"a", "b"} {
		for range 4 {
			evs = append(evs, event("", "page.viewed", k))
		}
	}
	b.publish(t, evs...)
	drain(t, r1, len(evs))
	// One crossing event each, applied by two runners at once.
	b.publish(t, event("", "page.viewed", "a"), event("", "page.viewed", "b"))
	ctx := context.Background()
	var wg sync.WaitGroup
	msgsA, err := b.fetchSplit(t, 2)
	require.NoError(t, err)
	for i, r := range []*runner.Runner{r1, r2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, r.ProcessBatch(ctx, msgsA[i:i+1]))
		}()
	}
	wg.Wait()
	la, lb := b.lead(t, "a"), b.lead(t, "b")
	require.NotNil(t, la.Escalation)
	require.NotNil(t, lb.Escalation)
	require.ElementsMatch(t, []string{"ana", "bo"}, []string{la.Owner, lb.Owner})
}

func (b *bundle) fetchSplit(t *testing.T, n int) ([]runner.Msg, error) {
	t.Helper()
	cons, err := b.conn.Consumer(context.Background())
	require.NoError(t, err)
	c := runner.AdaptConsumer(cons)
	var out []runner.Msg
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(out) < n {
		ms, err := c.Fetch(ctx, n-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	return out, nil
}

func TestRunStopsGracefully(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var observed sync.Map
	r := b.runner(t, func(c *runner.Config) {
		c.Observer = runner.ObserverFunc(func(lead string, _ time.Time, effects []engine.Effect) {
			observed.Store(lead, len(effects))
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	b.publish(t, event("g-1", "trial.started", "lead-1"))
	require.Eventually(t, func() bool { return b.mail.total() == 1 }, 10*time.Second, 20*time.Millisecond)
	_, ok := observed.Load("lead-1")
	require.True(t, ok, "observer saw the lead")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
