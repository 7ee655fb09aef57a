package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	natsad "github.com/nurture-oss/nurture/adapters/nats"
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
	// skip: not recorded in the outbox (the attempt lost its lease
	// before the hand-off; whoever holds the item now records it).
	skip bool
}

// notSent is what the pre-send check returns when an item must not leave:
// its outcome is decided without a delivery.
type notSent struct {
	class  string // "suppressed", "retry", "released", "lease_lost"
	status string
	reason string
	next   time.Time
	// deferred: the attempt is given back (not counted).
	deferred bool
}

func (e *notSent) Error() string { return "not sent: " + e.reason }

// The dispatcher is a pipeline. The loop claims due items while others
// are delivered, up to DispatchBatch items in flight (claimed and not yet
// recorded); each is delivered on its own goroutine, at most
// DispatchWorkers of them past their hand-off at once. The steps that
// touch the database are gathered across the items in flight by
// coalescers, so they cost one statement per group rather than per item:
// the last check before an item leaves together with its hand-off mark
// (handOffs), and the recording of outcomes (records).

// dispatchLoop claims and starts deliveries until ctx ends, then waits
// for the deliveries in flight (items not yet handed off are released).
func (r *Runner) dispatchLoop(ctx context.Context) error {
	slots := make(chan struct{}, max(1, r.cfg.DispatchBatch))
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	failures := 0
	for ctx.Err() == nil {
		want := r.claimLimit()
		got := reserve(ctx, slots, want, claimLinger)
		if got == 0 {
			return nil // cancelled
		}
		items, err := r.claim(ctx, r.now(), got)
		for range got - len(items) {
			<-slots
		}
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
		now := r.now()
		for _, it := range items {
			inFlight.Go(func() {
				defer func() { <-slots }()
				if err := r.deliverAndRecord(ctx, it, now); err != nil {
					r.log.Warn("dispatch failed", "err", redactErr(err))
				}
			})
		}
		if len(items) == got {
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

// reserve takes between 1 and want slots for a claim: it waits for the
// first, then takes what is free. With fewer than half of want free (the
// pipeline is busy: most items are still in flight), it waits up to linger
// for that half, so a busy pipeline claims in groups rather than an item
// at a time: a claim costs a statement whatever its size, and the items
// still in flight keep the deliveries busy meanwhile. It returns 0 when
// ctx ends before the first slot.
func reserve(ctx context.Context, slots chan struct{}, want int, linger time.Duration) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	got := 1
	for got < want && tryTake(slots) {
		got++
	}
	enough := max(1, want/2)
	if got >= enough {
		return got
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for got < enough {
		select {
		case slots <- struct{}{}:
			got++
		case <-t.C:
			return got
		case <-ctx.Done():
			return got
		}
	}
	return got
}

// claimLinger bounds how long a busy pipeline waits to claim a group.
const claimLinger = 20 * time.Millisecond

// tryTake takes a free slot if there is one.
func tryTake(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// claimLimit is how many items one claim takes: at most half of the
// items allowed in flight, so the next claim overlaps the deliveries of
// the previous one.
func (r *Runner) claimLimit() int { return max(1, r.cfg.DispatchBatch/2) }

func (r *Runner) claim(ctx context.Context, now time.Time, limit int) ([]store.OutboxItem, error) {
	items, err := r.st.ClaimOutbox(ctx, store.ClaimParams{Now: now, Limit: limit, Lease: r.cfg.Lease, Kinds: r.kinds})
	if err != nil {
		return nil, fmt.Errorf("dispatch: claim: %w", err)
	}
	return items, nil
}

// DispatchOnce claims up to claimLimit due outbox items, delivers them
// concurrently (at most DispatchWorkers past their hand-off at once) and
// records the outcomes: a turn of the dispatch loop, run to completion.
// It returns how many items it claimed. Deliveries run to completion (within DeliverTimeout) even if ctx is
// cancelled after the claim; items not yet handed off when the runner
// stops are released.
func (r *Runner) DispatchOnce(ctx context.Context, now time.Time) (int, error) {
	if len(r.kinds) == 0 {
		return 0, nil
	}
	now = now.UTC()
	items, err := r.claim(ctx, now, r.claimLimit())
	if err != nil || len(items) == 0 {
		return 0, err
	}
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() { errs[i] = r.deliverAndRecord(ctx, it, now) })
	}
	wg.Wait()
	// Items recorded together share one error: report it once.
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return len(items), errors.Join(out...)
}

// deliverAndRecord delivers one claimed item and records its outcome
// (gathered with the outcomes of other items in flight).
func (r *Runner) deliverAndRecord(ctx context.Context, it store.OutboxItem, now time.Time) error {
	start := time.Now()
	o := r.deliver(context.WithoutCancel(ctx), it, now)
	_, err := r.records.do(o)
	r.m.dispatchDuration.Observe(time.Since(start).Seconds())
	return err
}

// preSend runs right before an item leaves (after any throttle wait in
// the handler): it releases the item when the runner is stopping, then,
// gathered with the other items leaving at the same moment, checks an
// email's address and its lead's status and marks the hand-off on the
// item's current attempt (renewing its lease). A *notSent error says the
// item must not be delivered.
func (r *Runner) preSend(ctx context.Context, it store.OutboxItem, now time.Time) error {
	if r.stopping.Load() {
		return &notSent{class: "released", status: store.StatusRetry, next: now, deferred: true,
			reason: "released before hand-off: the runner is stopping"}
	}
	if it.Kind == store.KindEvent {
		return nil // NATS dedupes by message id; no hand-off mark needed
	}
	h := store.HandOff{ID: it.ID, Attempts: it.Attempts}
	if it.Kind == store.KindEmail {
		var p emailHead
		// A broken payload is the handler's to report (permanent).
		if json.Unmarshal(it.Payload, &p) == nil {
			if p.To == "" {
				return &notSent{class: "suppressed", status: store.StatusSuppressed, reason: "no_email"}
			}
			h.Email = p.To
			if !p.Send.Transactional {
				// An unsubscribe applied after the email was queued wins.
				h.LeadKey = it.LeadKey
			}
		}
	}
	res, err := r.handOffs.do(h)
	switch {
	case err != nil:
		return &notSent{class: "retry", status: store.StatusRetry, next: now.Add(r.cfg.RetryBase),
			reason: "not attempted: pre-send check and hand-off failed: " + err.Error()}
	case res.Suppressed != "":
		return &notSent{class: "suppressed", status: store.StatusSuppressed, reason: res.Suppressed}
	case res.Stale:
		return &notSent{class: "lease_lost", reason: "lease lost before hand-off; not sent by this attempt"}
	}
	return nil
}

// handOffBatch is the handOffs coalescer's batch: one store statement,
// retried through short transient failures within DeliverTimeout.
func (r *Runner) handOffBatch(items []store.HandOff) ([]store.HandOffResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.DeliverTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		res, err := r.st.HandOff(ctx, items, r.now(), r.cfg.Lease)
		if err == nil || !transient(err) || ctx.Err() != nil {
			return res, err
		}
		sleep(ctx, backoff(attempt, 50*time.Millisecond, time.Second, r.cfg.Jitter()))
	}
}

// deliver hands one item to its channel and classifies the result.
func (r *Runner) deliver(ctx context.Context, it store.OutboxItem, now time.Time) outcome {
	o := outcome{item: it, result: store.OutboxResult{ID: it.ID, At: now, Attempts: it.Attempts}}
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DeliverTimeout)
	defer cancel()
	// The delivery slot is taken right before the hand-off and held until
	// the handler returns, so at most DispatchWorkers handed-off items are
	// on their way at any moment (what a crash can leave unknown).
	held := false
	defer func() {
		if held {
			<-r.delivering
		}
	}()
	check := func(ctx context.Context) error {
		if !held {
			select {
			case r.delivering <- struct{}{}:
				held = true
			case <-ctx.Done():
				return &notSent{class: "retry", status: store.StatusRetry, next: now, deferred: true,
					reason: "not attempted: no delivery slot within the delivery timeout"}
			}
		}
		return r.preSend(ctx, it, now)
	}
	var err error
	h := r.cfg.Handlers[it.Kind]
	switch {
	case it.Kind == store.KindEvent:
		if err = check(dctx); err == nil {
			err = r.publish(dctx, it)
		}
	case h == nil:
		err = fmt.Errorf("no handler for outbox kind %q: %w", it.Kind, outbox.ErrPermanent)
	default:
		if ch, ok := h.(outbox.CheckedHandler); ok {
			err = safeDeliver(dctx, it, func(ctx context.Context) error { return ch.DeliverChecked(ctx, it, check) })
		} else if err = check(dctx); err == nil {
			err = safeDeliver(dctx, it, func(ctx context.Context) error { return h.Deliver(ctx, it) })
		}
	}
	var ns *notSent
	if errors.As(err, &ns) {
		o.class, o.skip = ns.class, ns.class == "lease_lost"
		o.result.Status, o.result.Error, o.result.NextAt, o.result.Deferred = ns.status, ns.reason, ns.next, ns.deferred
		return o
	}
	r.classify(&o, err, now)
	return o
}

func safeDeliver(ctx context.Context, it store.OutboxItem, deliver func(ctx context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler for %s panicked: %v", it.Kind, p)
		}
	}()
	return deliver(ctx)
}

func (r *Runner) publish(ctx context.Context, it store.OutboxItem) error {
	var p outbox.EventPayload
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return fmt.Errorf("decode event payload: %v: %w", err, outbox.ErrPermanent)
	}
	if p.Subject == "" {
		return fmt.Errorf("event %s has no subject: %w", p.ID, outbox.ErrPermanent)
	}
	err := r.cfg.Publisher.Publish(ctx, p.Subject, p.Data, p.ID)
	if errors.Is(err, natsad.ErrTooLarge) {
		// Over the server's or stream's size limit: no retry can help.
		return fmt.Errorf("publish event %s: %w: %w", p.ID, err, outbox.ErrPermanent)
	}
	return err
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
		// Only a marketing email's bounce suppresses the address: a
		// bounced rep notification must not put the rep on the list.
		var se *outbox.SuppressError
		if o.item.Kind == store.KindEmail && errors.As(err, &se) {
			o.suppress = se
		}
	default:
		if until, ok := outbox.DeferUntil(err); ok {
			// Throttled before any hand-off: wait, not a failure; the
			// attempt is given back and the wait does not age the item.
			o.result.Status, o.result.Error, o.class = store.StatusRetry, err.Error(), "deferred"
			o.result.NextAt, o.result.Deferred = until.UTC(), true
			if o.result.NextAt.Before(now) {
				o.result.NextAt = now
			}
			return
		}
		created := o.item.CreatedAt
		if created.IsZero() {
			created = now
		}
		if now.Sub(created)-o.item.Deferred >= r.cfg.GiveUp {
			o.result.Status, o.class = store.StatusFailed, "gave_up"
			o.result.Error = fmt.Sprintf("gave up after %d attempts over %s: %v", o.item.Attempts, now.Sub(created).Round(time.Second), err)
			return
		}
		o.result.Status, o.result.Error, o.class = store.StatusRetry, err.Error(), "retry"
		wait := backoff(o.item.Attempts, r.cfg.RetryBase, r.cfg.RetryMax, r.cfg.Jitter())
		if after, ok := outbox.RetryAfter(err); ok && after > wait {
			wait = after // the receiver asked for at least this long
		}
		o.result.NextAt = now.Add(wait)
	}
}

type deliveryEntry struct {
	Kind      string    `json:"kind"`
	DedupeKey string    `json:"dedupe_key"`
	Outcome   string    `json:"outcome"`
	Attempt   int       `json:"attempt"`
	Error     string    `json:"error,omitempty"`
	NextAt    time.Time `json:"next_at,omitzero"`
	// Stale: the outcome belongs to an attempt that lost its lease and
	// was claimed again; it was not applied to the outbox row.
	Stale bool `json:"stale,omitempty"`
}

// record writes the outcomes: the suppression list first (idempotent),
// then in one transaction the outbox rows (fenced to each claimed
// attempt), their history entries and follow-up events, so a retry after
// a partial failure never duplicates entries. A transient store failure
// is retried for a while: a send that happened must not turn into
// "unknown" because of a short database blip.
func (r *Runner) record(ctx context.Context, outcomes []outcome) error {
	var follow []store.OutboxItem
	var pubs []outbox.EventPayload // follow[i] publishes pubs[i]
	var results []store.OutboxResult
	for _, o := range outcomes {
		if o.skip {
			r.m.sends.WithLabelValues(o.item.Kind, o.class).Inc()
			r.log.Warn("outbox item not sent: lease lost before hand-off", "lead_id", redact(o.item.LeadKey),
				"kind", o.item.Kind, "dedupe_key", redact(o.item.DedupeKey), "attempt", o.item.Attempts)
			continue
		}
		results = append(results, o.result)
		if o.item.Kind == store.KindEmail && o.class == "sent" {
			if p, ok := r.sentEvent(o.item, o.result.At); ok {
				follow = append(follow, eventItem(o.item.LeadKey, p, o.result.At))
				pubs = append(pubs, p)
			}
		}
	}
	if len(results) == 0 {
		return nil
	}
	follow = r.publishFollow(ctx, follow, pubs)
	// Keep trying through a database outage of up to a lease (at least
	// 30s): the outcome is known and must not decay into "unknown". If the
	// lease ends first, the fenced completion still records the truth
	// unless the item was claimed again.
	deadline := time.Now().Add(max(r.cfg.Lease, 30*time.Second))
	var stale map[int64]bool
	var err error
	for attempt := 1; ; attempt++ {
		stale, err = r.recordOnce(ctx, follow, outcomes, results)
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
		return fmt.Errorf("record %d outcomes: %w", len(results), err)
	}
	for _, o := range outcomes {
		if !o.skip {
			r.logOutcome(ctx, o, stale[o.item.ID])
		}
	}
	if len(follow) > 0 {
		r.signalDispatch() // the dispatcher publishes what publishFollow could not
	}
	return nil
}

// publishFollow publishes the follow-up events of sent emails right away,
// before their outcome commits, and returns the ones it could not publish:
// only those are enqueued (pending), for the dispatcher to publish with its
// retry policy. A published event needs no outbox row, claim or delivery
// of its own; JetStream holds it, and the email's delivery entry in the
// lead's history records the send. Publishing one twice (the recording is
// retried, or the process dies before the commit) is harmless: JetStream
// drops a repeated message id within the stream's duplicate window, as for
// any dispatched event.
func (r *Runner) publishFollow(ctx context.Context, follow []store.OutboxItem, pubs []outbox.EventPayload) []store.OutboxItem {
	if r.cfg.Publisher == nil || len(follow) == 0 {
		return follow
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.DeliverTimeout)
	defer cancel()
	published := make([]bool, len(pubs))
	var wg sync.WaitGroup
	for i, p := range pubs {
		wg.Go(func() { published[i] = r.cfg.Publisher.Publish(pctx, p.Subject, p.Data, p.ID) == nil })
	}
	wg.Wait()
	left := follow[:0]
	for i, it := range follow {
		if published[i] {
			r.m.sends.WithLabelValues(store.KindEvent, "sent").Inc()
			continue
		}
		left = append(left, it)
	}
	return left
}

func (r *Runner) logOutcome(ctx context.Context, o outcome, stale bool) {
	r.m.sends.WithLabelValues(o.item.Kind, o.class).Inc()
	level := slog.LevelDebug
	if o.class == "failed" || o.class == "gave_up" || o.class == "unknown" || stale {
		level = slog.LevelWarn
	}
	if !r.log.Enabled(ctx, level) {
		return
	}
	attrs := []any{"lead_id", redact(o.item.LeadKey), "kind", o.item.Kind,
		"dedupe_key", redact(o.item.DedupeKey), "outcome", o.class, "attempt", o.item.Attempts}
	if stale {
		attrs = append(attrs, "stale", true)
	}
	if o.item.Kind == store.KindEmail {
		var p emailHead
		if json.Unmarshal(o.item.Payload, &p) == nil {
			attrs = append(attrs, "sequence", p.Send.Sequence, "step", p.Send.Step)
		}
	}
	if o.result.Error != "" {
		attrs = append(attrs, "err", redactErr(o.result.Error))
	}
	msg := "outbox delivery"
	if stale {
		msg = "outbox delivery of a superseded attempt: not applied (the item was claimed again)"
	}
	r.log.Log(ctx, level, msg, attrs...)
}

func (r *Runner) recordOnce(ctx context.Context, follow []store.OutboxItem, outcomes []outcome, results []store.OutboxResult) (map[int64]bool, error) {
	for _, o := range outcomes {
		if o.suppress == nil || o.skip {
			continue
		}
		email := o.suppress.Email
		if email == "" {
			var p emailHead
			if json.Unmarshal(o.item.Payload, &p) == nil {
				email = p.To
			}
		}
		if email == "" {
			continue
		}
		if err := r.st.Suppress(ctx, email, o.suppress.Reason, o.result.At); err != nil {
			return nil, err
		}
	}
	var stale map[int64]bool
	err := r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		notApplied, err := tx.CompleteOutbox(ctx, results)
		if err != nil {
			return err
		}
		stale = make(map[int64]bool, len(notApplied))
		for _, id := range notApplied {
			stale[id] = true
		}
		hist := make([]store.History, 0, len(results))
		for _, o := range outcomes {
			if o.skip {
				continue
			}
			hist = append(hist, store.History{
				LeadKey: o.item.LeadKey, At: o.result.At, Kind: "delivery",
				Data: mustJSON(deliveryEntry{Kind: o.item.Kind, DedupeKey: o.item.DedupeKey, Outcome: o.class,
					Attempt: o.item.Attempts, Error: o.result.Error, NextAt: o.result.NextAt, Stale: stale[o.item.ID]}),
			})
		}
		if err := tx.AppendHistory(ctx, hist); err != nil {
			return err
		}
		return tx.Enqueue(ctx, follow)
	})
	return stale, err
}

// emailHead is the part of an email's payload (outbox.EmailPayload) the
// dispatcher reads; the lead's traits, most of the payload, are left to
// the handler, so decoding this much is cheap.
type emailHead struct {
	Send engine.SendEmail `json:"send"`
	To   string           `json:"to"`
}

// sentEvent is the nurture.email.sent event of a delivered email; its id
// is the send id.
func (r *Runner) sentEvent(it store.OutboxItem, at time.Time) (outbox.EventPayload, bool) {
	var p emailHead
	if err := json.Unmarshal(it.Payload, &p); err != nil {
		return outbox.EventPayload{}, false
	}
	ev := &engine.Event{
		ID: p.Send.SendID, Type: engine.EventEmailSent, Lead: it.LeadKey, Time: at,
		Properties: map[string]any{
			"send_id": p.Send.SendID, "enrollment": p.Send.Enrollment, "sequence": p.Send.Sequence,
			"version": p.Send.Version, "step": p.Send.Step, "template": p.Send.Template,
		},
	}
	return r.eventPayload(it.LeadKey, SubjectEmailSent, ev)
}

// RecoverLeasesOnce settles, in one store statement, outbox items whose
// lease expired while sending (their worker died or stalled): emails that
// were handed off become unknown (or are retried when ResendUnknown is
// set); items never handed off, and other kinds (whose receivers dedupe),
// are retried at once. It returns how many items it settled.
func (r *Runner) RecoverLeasesOnce(ctx context.Context, now time.Time) (int, error) {
	now = now.UTC()
	var unknownKinds []string
	if !r.cfg.ResendUnknown {
		unknownKinds = []string{store.KindEmail}
	}
	items, err := r.st.RecoverLeases(ctx, store.RecoverParams{Now: now, Limit: 500, UnknownKinds: unknownKinds})
	if err != nil {
		return 0, fmt.Errorf("recover leases: %w", err)
	}
	if len(items) == 0 {
		return 0, nil
	}
	hist := make([]store.History, len(items))
	for i, it := range items {
		class := "retry"
		if it.Status == store.StatusUnknown {
			class = "unknown"
		}
		o := outcome{item: it, class: class, result: store.OutboxResult{ID: it.ID, At: now, Status: it.Status, Error: it.LastError, NextAt: it.NextAttemptAt}}
		if class == "unknown" {
			o.result.NextAt = time.Time{}
		}
		r.logOutcome(ctx, o, false)
		hist[i] = store.History{LeadKey: it.LeadKey, At: now, Kind: "delivery",
			Data: mustJSON(deliveryEntry{Kind: it.Kind, DedupeKey: it.DedupeKey, Outcome: class,
				Attempt: it.Attempts, Error: it.LastError, NextAt: o.result.NextAt})}
	}
	// The items are settled; their timeline entries follow (retried
	// through a short blip; lost, not duplicated, if the process dies in
	// between).
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		err = r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error { return tx.AppendHistory(ctx, hist) })
		if err == nil || !transient(err) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, backoff(attempt, 50*time.Millisecond, 2*time.Second, r.cfg.Jitter()))
	}
	if err != nil {
		return len(items), fmt.Errorf("recover leases: history of %d items: %w", len(items), err)
	}
	r.signalDispatch()
	return len(items), nil
}
