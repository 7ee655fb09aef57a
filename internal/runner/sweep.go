package runner

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// SweepOnce fires the timers due at now: it claims due leads in batches
// (SKIP LOCKED, so several workers share the work), ticks the engine for
// each and writes state, history and outbox in the same transaction. It
// loops while batches come back full, so the work is proportional to the
// due rows, and returns how many leads it ticked. SweepParallel sweepers
// run side by side; SKIP LOCKED hands each its own leads.
func (r *Runner) SweepOnce(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC()
	n := r.cfg.SweepParallel
	if n <= 1 {
		return r.sweepLoop(ctx, now)
	}
	var total atomic.Int64
	var g errgroup.Group
	for range n {
		g.Go(func() error {
			k, err := r.sweepLoop(ctx, now)
			total.Add(int64(k))
			return err
		})
	}
	err := g.Wait()
	return int(total.Load()), err
}

func (r *Runner) sweepLoop(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		start := time.Now()
		var w *writes
		var ticked []tickResult
		err := r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
			var err error
			w, ticked, err = r.sweepBatch(ctx, tx, now)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("sweep at %s: %w", now.Format(time.RFC3339), err)
		}
		r.m.sweepDuration.Observe(time.Since(start).Seconds())
		total += len(ticked)
		r.m.timersFired.Add(float64(len(ticked)))
		r.m.escalations.Add(float64(w.escalations))
		r.suppressAfterCommit(ctx, w, now)
		if len(w.items) > 0 {
			r.signalDispatch()
		}
		for _, t := range ticked {
			if t.err != nil {
				r.log.Error("tick failed; retrying later", "lead_id", redact(t.lead), "err", redactErr(t.err))
				continue
			}
			if len(t.effects) > 0 {
				r.observe(t.lead, now, t.effects)
			}
		}
		if len(ticked) < r.cfg.SweepBatch || ctx.Err() != nil || r.stopping.Load() {
			return total, nil
		}
	}
}

type tickResult struct {
	lead    string
	effects []engine.Effect
	err     error
}

func (r *Runner) sweepBatch(ctx context.Context, tx store.Tx, now time.Time) (*writes, []tickResult, error) {
	w := &writes{}
	leads, err := tx.ClaimDueLeads(ctx, now, r.cfg.SweepBatch)
	if err != nil || len(leads) == 0 {
		return w, nil, err
	}
	desk, err := tx.Desk(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	before := deskKey(desk)
	res, escalated := r.passTicks(leads, desk, now)
	if escalated || deskKey(desk) != before {
		// Same rule as ingest: routing decisions are made with the desk
		// locked, from the stored states (still locked by this tx).
		if desk, err = tx.Desk(ctx, true); err != nil {
			return nil, nil, err
		}
		keys := make([]string, len(leads))
		for i, l := range leads {
			keys[i] = l.Key
		}
		relocked, err := tx.LockLeads(ctx, keys, now)
		if err != nil {
			return nil, nil, err
		}
		for i, l := range leads {
			if fresh := relocked[l.Key]; fresh != nil {
				leads[i] = fresh
			}
		}
		res, _ = r.passTicks(leads, desk, now)
		if err := tx.SaveDesk(ctx, desk); err != nil {
			return nil, nil, err
		}
	}
	for i, l := range leads {
		t := res[i]
		if t.err != nil {
			// The engine is deterministic: the same tick would fail
			// again at once. Record it and look again later, backing
			// off while it keeps failing.
			delay := r.tickFailed(l, now)
			if err := tx.DeadLetter(ctx, store.DeadLetter{
				At: now, Subject: "tick", EventID: "tick:" + l.Key,
				Reason: fmt.Sprintf("%v (failure %d; next try in %s)", t.err, l.TickFailures, delay),
			}); err != nil {
				return nil, nil, err
			}
			continue
		}
		if !l.NextRunAt.IsZero() && !l.NextRunAt.After(now) {
			// A tick must move the lead's timer forward; if it did
			// not, firing again now would loop forever.
			r.log.Error("tick left the lead due; retrying later", "lead_id", redact(l.Key))
			r.tickFailed(l, now)
		} else {
			l.TickFailures = 0
		}
		r.addEffects(w, l, "", now, t.effects)
	}
	if err := tx.SaveLeads(ctx, leads); err != nil {
		return nil, nil, err
	}
	if err := tx.AppendHistory(ctx, w.history); err != nil {
		return nil, nil, err
	}
	if err := tx.Enqueue(ctx, w.items); err != nil {
		return nil, nil, err
	}
	return w, res, nil
}

// tickFailed counts a failed tick of l and moves its timer to the next
// try: TickRetry, doubling per consecutive failure, at most TickRetryMax.
func (r *Runner) tickFailed(l *engine.Lead, now time.Time) time.Duration {
	l.TickFailures++
	delay := r.cfg.TickRetryMax
	if n := l.TickFailures - 1; n < 32 && r.cfg.TickRetry<<n < r.cfg.TickRetryMax && r.cfg.TickRetry<<n > 0 {
		delay = r.cfg.TickRetry << n
	}
	l.NextRunAt = now.Add(delay)
	return delay
}

func (r *Runner) passTicks(leads []*engine.Lead, desk *engine.Desk, now time.Time) ([]tickResult, bool) {
	res := make([]tickResult, len(leads))
	escalated := false
	for i, l := range leads {
		effects, err := r.eng.Apply(l, engine.Input{Now: now, Desk: desk})
		res[i] = tickResult{lead: l.Key, effects: effects}
		if err != nil {
			res[i].err = fmt.Errorf("tick lead %s: %w", l.Key, err)
			continue
		}
		for _, ef := range effects {
			switch ef.(type) {
			case engine.Escalated, *engine.Escalated:
				escalated = true
			}
		}
	}
	return res, escalated
}
