package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
)

// outcome is the dispatcher's verdict on one claimed item.
type outcome struct {
	item     store.OutboxItem
	result   store.OutboxResult
	class    string // "sent", "retry", "failed", "unknown", "suppressed", "gave_up"
	suppress *outbox.SuppressError
}

func (r *Runner) dispatchLoop(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		n, err := r.DispatchOnce(ctx, r.now())
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			failures++
			r.log.Warn("dispatch failed", "err", redactErr(err))
			sleep(ctx, backoff(failures, 100*time.Millisecond, 5*time.Second, r.cfg.Jitter()))
			continue
		default:
			failures = 0
		}
		if n >= r.cfg.DispatchBatch {
			continue // more may be due
		}
		t := time.NewTimer(r.cfg.DispatchPoll)
		select {
		case <-ctx.Done():
		case <-r.kick:
		case <-t.C:
		}
		t.Stop()
	}
	return nil
}

// DispatchOnce claims up to DispatchBatch due outbox items, delivers them
// with DispatchWorkers concurrent workers and records the outcomes. It
// returns how many items it claimed. Deliveries run to completion (within
// DeliverTimeout) even if ctx is cancelled after the claim.
func (r *Runner) DispatchOnce(ctx context.Context, now time.Time) (int, error) {
	if len(r.kinds) == 0 {
		return 0, nil
	}
	now = now.UTC()
	start := time.Now()
	items, err := r.st.ClaimOutbox(ctx, store.ClaimParams{Now: now, Limit: r.cfg.DispatchBatch, Lease: r.cfg.Lease, Kinds: r.kinds})
	if err != nil {
		return 0, fmt.Errorf("dispatch: claim: %w", err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	work := context.WithoutCancel(ctx)
	suppressed, err := r.suppressedAddresses(work, items)
	if err != nil {
		// Without the suppression list no email may go out. Nothing was
		// handed off: put the items back for a later attempt (record
		// retries through a short outage) rather than letting their
		// leases expire into "unknown".
		r.log.Warn("suppression check failed; releasing claimed items", "err", redactErr(err), "items", len(items))
		outcomes := make([]outcome, len(items))
		for i, it := range items {
			outcomes[i] = outcome{item: it, class: "retry", result: store.OutboxResult{
				ID: it.ID, At: now, Status: store.StatusRetry, NextAt: now.Add(r.cfg.RetryBase),
				Error: "not attempted: suppression check failed: " + err.Error()}}
		}
		if rerr := r.record(work, outcomes); rerr != nil {
			return len(items), errors.Join(err, rerr)
		}
		return len(items), fmt.Errorf("dispatch: suppression check: %w", err)
	}

	outcomes := make([]outcome, len(items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.cfg.DispatchWorkers)
	for i, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			outcomes[i] = r.deliver(work, it, suppressed, now)
		}()
	}
	wg.Wait()
	err = r.record(work, outcomes)
	r.m.dispatchDuration.Observe(time.Since(start).Seconds())
	return len(items), err
}

// suppressedAddresses looks up the email items' addresses on the
// suppression list, in one query.
func (r *Runner) suppressedAddresses(ctx context.Context, items []store.OutboxItem) (map[string]string, error) {
	var emails []string
	for _, it := range items {
		if it.Kind != store.KindEmail {
			continue
		}
		var p outbox.EmailPayload
		if json.Unmarshal(it.Payload, &p) == nil && p.To != "" {
			emails = append(emails, p.To)
		}
	}
	if len(emails) == 0 {
		return nil, nil
	}
	var out map[string]string
	var err error
	deadline := time.Now().Add(r.cfg.DeliverTimeout)
	for attempt := 1; ; attempt++ {
		err = r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
			var err error
			out, err = tx.Suppressed(ctx, emails)
			return err
		})
		if err == nil || !transient(err) || time.Now().After(deadline) {
			break
		}
		sleep(ctx, backoff(attempt, 50*time.Millisecond, time.Second, r.cfg.Jitter()))
	}
	if err != nil {
		return nil, err
	}
	// Match case-insensitively whatever the store returns.
	norm := make(map[string]string, len(out))
	for k, v := range out {
		norm[strings.ToLower(strings.TrimSpace(k))] = v
	}
	return norm, nil
}

// deliver hands one item to its channel and classifies the result.
func (r *Runner) deliver(ctx context.Context, it store.OutboxItem, suppressed map[string]string, now time.Time) outcome {
	o := outcome{item: it, result: store.OutboxResult{ID: it.ID, At: now}}
	if it.Kind == store.KindEmail {
		reason, ok, err := r.emailSuppressed(ctx, it, suppressed)
		if err != nil {
			// Not attempted: a plain (transient) error retries it.
			r.classify(&o, err, now)
			return o
		}
		if ok {
			o.result.Status, o.result.Error, o.class = store.StatusSuppressed, reason, "suppressed"
			return o
		}
	}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DeliverTimeout)
	defer cancel()
	var err error
	if it.Kind == store.KindEvent {
		err = r.publish(dctx, it)
	} else if h := r.cfg.Handlers[it.Kind]; h != nil {
		err = safeDeliver(dctx, h, it)
	} else {
		err = fmt.Errorf("no handler for outbox kind %q: %w", it.Kind, outbox.ErrPermanent)
	}
	r.classify(&o, err, now)
	return o
}

func safeDeliver(ctx context.Context, h outbox.Handler, it store.OutboxItem) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler for %s panicked: %v", it.Kind, p)
		}
	}()
	return h.Deliver(ctx, it)
}

// emailSuppressed checks the address list and the lead's own status (an
// unsubscribe applied after the email was queued wins).
// A lookup failure is returned as an error (the item is retried: never
// send without the check).
func (r *Runner) emailSuppressed(ctx context.Context, it store.OutboxItem, list map[string]string) (string, bool, error) {
	var p outbox.EmailPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return "", false, nil // the handler reports the broken payload
	}
	if p.To == "" {
		return "no_email", true, nil
	}
	if reason, ok := list[strings.ToLower(strings.TrimSpace(p.To))]; ok {
		if reason == "" {
			reason = "suppressed"
		}
		return reason, true, nil
	}
	if p.Send.Transactional {
		return "", false, nil
	}
	lead, err := r.st.Lead(ctx, it.LeadKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("check lead %s status: %w", it.LeadKey, err)
	case lead.Status.Suppressed():
		return string(lead.Status), true, nil
	}
	return "", false, nil
}

func (r *Runner) publish(ctx context.Context, it store.OutboxItem) error {
	var p outbox.EventPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return fmt.Errorf("decode event payload: %v: %w", err, outbox.ErrPermanent)
	}
	if p.Subject == "" {
		return fmt.Errorf("event %s has no subject: %w", p.ID, outbox.ErrPermanent)
	}
	return r.cfg.Publisher.Publish(ctx, p.Subject, p.Data, p.ID)
}

// classify applies the retry policy to a delivery error.
func (r *Runner) classify(o *outcome, err error, now time.Time) {
	switch outbox.Classify(err) {
	case outbox.Delivered:
		o.result.Status, o.class = store.StatusSent, "sent"
	case outbox.Unknown:
		o.result.Status, o.result.Error, o.class = store.StatusUnknown, err.Error(), "unknown"
		if r.cfg.ResendUnknown {
			o.result.Status, o.result.NextAt, o.class = store.StatusRetry, now, "retry"
		}
	case outbox.Permanent:
		o.result.Status, o.result.Error, o.class = store.StatusFailed, err.Error(), "failed"
		var se *outbox.SuppressError
		if errors.As(err, &se) {
			o.suppress = se
		}
	default:
		created := o.item.CreatedAt
		if created.IsZero() {
			created = now
		}
		if now.Sub(created) >= r.cfg.GiveUp {
			o.result.Status, o.class = store.StatusFailed, "gave_up"
			o.result.Error = fmt.Sprintf("gave up after %d attempts over %s: %v", o.item.Attempts, now.Sub(created).Round(time.Second), err)
			return
		}
		o.result.Status, o.result.Error, o.class = store.StatusRetry, err.Error(), "retry"
		o.result.NextAt = now.Add(backoff(o.item.Attempts, r.cfg.RetryBase, r.cfg.RetryMax, r.cfg.Jitter()))
	}
}

type deliveryEntry struct {
	Kind      string    `json:"kind"`
	DedupeKey string    `json:"dedupe_key"`
	Outcome   string    `json:"outcome"`
	Attempt   int       `json:"attempt"`
	Error     string    `json:"error,omitempty"`
	NextAt    time.Time `json:"next_at,omitzero"`
}

// record writes the outcomes: history entries and follow-up events in one
// transaction, the suppression list, then the outbox rows. A transient
// store failure is retried for a while: a send that happened must not
// turn into "unknown" because of a short database blip.
func (r *Runner) record(ctx context.Context, outcomes []outcome) error {
	var hist []store.History
	var follow []store.OutboxItem
	results := make([]store.OutboxResult, len(outcomes))
	for i, o := range outcomes {
		results[i] = o.result
		r.m.sends.WithLabelValues(o.item.Kind, o.class).Inc()
		hist = append(hist, store.History{
			LeadKey: o.item.LeadKey, At: o.result.At, Kind: "delivery",
			Data: mustJSON(deliveryEntry{Kind: o.item.Kind, DedupeKey: o.item.DedupeKey, Outcome: o.class,
				Attempt: o.item.Attempts, Error: o.result.Error, NextAt: o.result.NextAt}),
		})
		if o.item.Kind == store.KindEmail && o.class == "sent" {
			if item, ok := r.sentEvent(o.item, o.result.At); ok {
				follow = append(follow, item)
			}
		}
		level := slog.LevelDebug
		if o.class == "failed" || o.class == "gave_up" || o.class == "unknown" {
			level = slog.LevelWarn
		}
		if r.log.Enabled(ctx, level) {
			attrs := []any{"lead_id", redact(o.item.LeadKey), "kind", o.item.Kind,
				"dedupe_key", redact(o.item.DedupeKey), "outcome", o.class, "attempt", o.item.Attempts}
			if o.item.Kind == store.KindEmail {
				var p outbox.EmailPayload
				if json.Unmarshal(o.item.Payload, &p) == nil {
					attrs = append(attrs, "sequence", p.Send.Sequence, "step", p.Send.Step)
				}
			}
			if o.result.Error != "" {
				attrs = append(attrs, "err", redactErr(o.result.Error))
			}
			r.log.Log(ctx, level, "outbox delivery", attrs...)
		}
	}
	// Keep trying through a database outage of up to a lease (at least
	// 30s): the outcome is known and must not decay into "unknown". If the
	// lease ends first, a later "sent" still overwrites the recovery's
	// "unknown" with the truth.
	deadline := time.Now().Add(max(r.cfg.Lease, 30*time.Second))
	var err error
	for attempt := 1; ; attempt++ {
		err = r.recordOnce(ctx, hist, follow, outcomes, results)
		if err == nil || !transient(err) || time.Now().After(deadline) {
			break
		}
		if r.stopping.Load() {
			// Shutting down during an outage: give it a few seconds,
			// not a whole lease.
			if soon := time.Now().Add(5 * time.Second); soon.Before(deadline) {
				deadline = soon
			}
		}
		sleep(ctx, backoff(attempt, 50*time.Millisecond, 2*time.Second, r.cfg.Jitter()))
	}
	if err != nil {
		return fmt.Errorf("record %d outcomes: %w", len(outcomes), err)
	}
	if len(follow) > 0 {
		r.signalDispatch()
	}
	return nil
}

func (r *Runner) recordOnce(ctx context.Context, hist []store.History, follow []store.OutboxItem, outcomes []outcome, results []store.OutboxResult) error {
	if err := r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := tx.AppendHistory(ctx, hist); err != nil {
			return err
		}
		return tx.Enqueue(ctx, follow)
	}); err != nil {
		return err
	}
	for _, o := range outcomes {
		if o.suppress == nil {
			continue
		}
		email := o.suppress.Email
		if email == "" {
			var p outbox.EmailPayload
			if json.Unmarshal(o.item.Payload, &p) == nil {
				email = p.To
			}
		}
		if email == "" {
			continue
		}
		if err := r.st.Suppress(ctx, email, o.suppress.Reason, o.result.At); err != nil {
			return err
		}
	}
	return r.st.CompleteOutbox(ctx, results)
}

// sentEvent is the nurture.email.sent event of a delivered email; its id
// is the send id.
func (r *Runner) sentEvent(it store.OutboxItem, at time.Time) (store.OutboxItem, bool) {
	var p outbox.EmailPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return store.OutboxItem{}, false
	}
	ev := &engine.Event{
		ID: p.Send.SendID, Type: engine.EventEmailSent, Lead: it.LeadKey, Time: at,
		Properties: map[string]any{
			"send_id": p.Send.SendID, "enrollment": p.Send.Enrollment, "sequence": p.Send.Sequence,
			"version": p.Send.Version, "step": p.Send.Step, "template": p.Send.Template,
		},
	}
	return r.eventItem(it.LeadKey, SubjectEmailSent, ev, at)
}

// RecoverLeasesOnce settles outbox items whose lease expired while sending
// (their worker died mid hand-off): emails become unknown (or are retried
// when ResendUnknown is set), other kinds are retried at once since their
// receivers dedupe. It returns how many items it settled.
func (r *Runner) RecoverLeasesOnce(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC()
	items, err := r.st.ExpiredLeases(ctx, now, 500)
	if err != nil {
		return 0, fmt.Errorf("recover leases: %w", err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	outcomes := make([]outcome, len(items))
	for i, it := range items {
		o := outcome{item: it, result: store.OutboxResult{ID: it.ID, At: now}}
		if it.Kind == store.KindEmail && !r.cfg.ResendUnknown {
			o.result.Status, o.class = store.StatusUnknown, "unknown"
			o.result.Error = "lease expired while sending: the worker stopped after handing the email off; not resent"
		} else {
			o.result.Status, o.class, o.result.NextAt = store.StatusRetry, "retry", now
			o.result.Error = "lease expired while sending; retrying"
		}
		outcomes[i] = o
	}
	return len(items), r.record(ctx, outcomes)
}
