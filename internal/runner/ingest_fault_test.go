package runner_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
)

// failingSaves wraps a store so that SaveLeads fails with err while fail > 0
// (the real transaction then rolls back). Dead-letter transactions save no
// lead, so they still commit.
type failingSaves struct {
	store.Store
	err  error
	fail atomic.Int32
}

func (f *failingSaves) InTx(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	return f.Store.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		return fn(ctx, failingSavesTx{Tx: tx, f: f})
	})
}

type failingSavesTx struct {
	store.Tx
	f *failingSaves
}

func (t failingSavesTx) SaveLeads(ctx context.Context, leads []*engine.Lead) error {
	if len(leads) > 0 && t.f.fail.Add(-1) >= 0 {
		return t.f.err
	}
	return t.Tx.SaveLeads(ctx, leads)
}

// TestSystemicErrorsNeverDropValidEvents: a database error that is neither
// transient nor the input's fault (a bug, a schema problem) naks the event
// with backoff instead of dead-lettering it, so it applies once the
// database behaves; only after DeadLetterAfter deliveries is it
// dead-lettered, with the reason. An error caused by the event's data is
// dead-lettered at once.
func TestSystemicErrorsNeverDropValidEvents(t *testing.T) {
	t.Parallel()
	systemic := errors.New(`injected: relation "leads" does not exist`)
	cases := []struct {
		name      string
		err       error
		failures  int32
		wantScore float64 // of lead-1 at the end
		wantDead  string  // dead letter reason substring; "" = none
	}{
		{"systemic, recovers", systemic, 2, 10, ""},
		{"systemic, gives up", systemic, 1 << 20, 0, "gave up after 3 deliveries"},
		{"data the database refuses", fmt.Errorf("save leads: %w: invalid input", store.ErrInvalidData), 1, 0, "database refuses"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			fs := &failingSaves{Store: b.st, err: tc.err}
			fs.fail.Store(tc.failures)
			r := b.runner(t, func(c *runner.Config) {
				c.Store = fs
				c.NakDelay = 20 * time.Millisecond
				c.DeadLetterAfter = 3
			})
			b.publish(t, event("s-1", "page.viewed", "lead-1"))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for {
				_, err := r.IngestOnce(ctx)
				require.NoError(t, ctx.Err(), "never settled")
				if err != nil {
					require.NotErrorIs(t, err, store.ErrTransient)
				}
				if len(b.deadLetters(t)) > 0 || b.countEvents(t, "lead-1") > 0 {
					break
				}
			}
			dls := b.deadLetters(t)
			if tc.wantDead == "" {
				require.Empty(t, dls)
				require.InDelta(t, tc.wantScore, b.lead(t, "lead-1").Score.Value, 0.001)
			} else {
				require.Len(t, dls, 1)
				require.Contains(t, dls[0].Reason, tc.wantDead)
				require.Equal(t, "s-1", dls[0].EventID)
				_, err := b.st.Lead(ctx, "lead-1")
				require.ErrorIs(t, err, store.ErrNotFound, "nothing of the event was written")
			}
			// Settled either way: nothing left to redeliver.
			n, err := r.IngestOnce(ctx)
			require.NoError(t, err)
			require.Zero(t, n)
		})
	}
}

// TestMaxDeliverCapsDeadLetterAfter: with a consumer that delivers at most
// MaxDeliver times, the runner dead-letters no later than the last
// delivery, so JetStream never silently drops an event.
func TestMaxDeliverCapsDeadLetterAfter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	fs := &failingSaves{Store: b.st, err: errors.New("injected: broken")}
	fs.fail.Store(1 << 20)
	r := b.runner(t, func(c *runner.Config) {
		c.Store = fs
		c.NakDelay = 20 * time.Millisecond
		c.MaxDeliver = 2 // DeadLetterAfter keeps its default (20)
	})
	b.publish(t, event("m-1", "page.viewed", "lead-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for len(b.deadLetters(t)) == 0 {
		_, _ = r.IngestOnce(ctx)
		require.NoError(t, ctx.Err())
	}
	require.Contains(t, b.deadLetters(t)[0].Reason, "gave up after 2 deliveries")
}

// TestRetentionOutlivesStream: processed ids are kept at least as long as
// the stream can replay the events (plus a margin), and a retention
// shorter than that is refused.
func TestRetentionOutlivesStream(t *testing.T) {
	t.Parallel()
	_, err := runner.New(runner.Config{Store: &flaky{}, Content: testContent(),
		StreamMaxAge: 30 * 24 * time.Hour, EventRetention: 7 * 24 * time.Hour})
	require.ErrorContains(t, err, "stream max age")

	b := setup(t)
	r := b.runner(t, func(c *runner.Config) { c.StreamMaxAge = 30 * 24 * time.Hour })
	b.publish(t, event("r-1", "page.viewed", "lead-1"))
	drain(t, r, 1)
	ctx := context.Background()
	n, err := r.PruneOnce(ctx, t0.Add(30*24*time.Hour+time.Minute))
	require.NoError(t, err)
	require.Zero(t, n, "the stream may still replay the event")
	n, err = r.PruneOnce(ctx, t0.Add(30*24*time.Hour+runner.RetentionMargin+time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}
