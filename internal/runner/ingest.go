package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
	"github.com/nurture-oss/nurture/internal/store"
)

// maxDeadPayload caps the raw bytes kept in a dead-letter record.
const maxDeadPayload = 64 << 10

// inMsg is one message of a batch and what became of it.
type inMsg struct {
	msg Msg
	ev  *engine.Event
	// parseErr: the message is not a valid event (dead-lettered).
	parseErr error
	// set by a pass:
	dup       bool  // already processed (earlier or within the batch)
	engineErr error // the engine refused it (dead-lettered)
	effects   []engine.Effect
}

func (m *inMsg) applied() bool { return m.ev != nil && !m.dup && m.engineErr == nil }

// IngestOnce fetches one batch and applies it. It returns how many
// messages were fetched. The batch is finished (committed and acked, or
// nakked) even if ctx is cancelled after the fetch.
func (r *Runner) IngestOnce(ctx context.Context) (int, error) {
	if r.cfg.Consumer == nil {
		return 0, errors.New("ingest: no consumer configured")
	}
	msgs, err := r.cfg.Consumer.Fetch(ctx, r.cfg.BatchSize)
	if err != nil && len(msgs) == 0 {
		return 0, fmt.Errorf("ingest: fetch: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	return len(msgs), r.ProcessBatch(context.WithoutCancel(ctx), msgs)
}

// ingestLoop fetches the next batch while the current one is applied
// (the fetch round trip overlaps the transaction), and processes batches
// one after another, so each lead's events keep their order. On
// cancellation the in-flight fetch is awaited and whatever it returned is
// processed too: nothing fetched is left hanging until its ack wait.
func (r *Runner) ingestLoop(ctx context.Context) error {
	type fetched struct {
		msgs []Msg
		err  error
	}
	next := make(chan fetched, 1)
	fetch := func() {
		ms, err := r.cfg.Consumer.Fetch(ctx, r.cfg.BatchSize)
		next <- fetched{ms, err}
	}
	work := context.WithoutCancel(ctx)
	failures := 0
	go fetch()
	for inFlight := true; inFlight; {
		f := <-next
		inFlight = false
		if ctx.Err() == nil {
			inFlight = true
			go fetch()
		}
		switch {
		case len(f.msgs) > 0:
			if err := r.ProcessBatch(work, f.msgs); err != nil {
				failures++
				r.log.Warn("ingest batch failed", "err", redactErr(err), "messages", len(f.msgs))
				sleep(ctx, backoff(failures, 100*time.Millisecond, 5*time.Second, r.cfg.Jitter()))
			} else {
				failures = 0
			}
		case f.err != nil && ctx.Err() == nil:
			failures++
			r.log.Warn("fetch failed", "err", redactErr(f.err))
			sleep(ctx, backoff(failures, 100*time.Millisecond, 5*time.Second, r.cfg.Jitter()))
		}
	}
	return nil
}

// ProcessBatch applies fetched messages: one transaction for the batch,
// then ack (or term, for dead-lettered ones). A transient store error naks
// the messages with a backoff and is returned. Any other failure of the
// batch transaction falls back to one transaction per message, so a single
// bad event is dead-lettered and the rest apply.
//
// With IngestParallel > 1 the batch is split by lead key into that many
// parts applied in concurrent transactions: their leads are disjoint, so
// they never wait on each other's row locks, and each lead's events stay in
// one part in arrival order.
func (r *Runner) ProcessBatch(ctx context.Context, msgs []Msg) error {
	start := time.Now()
	batch := make([]*inMsg, len(msgs))
	for i, m := range msgs {
		batch[i] = &inMsg{msg: m}
		batch[i].ev, batch[i].parseErr = cloudevent.Parse(m.Data())
		if batch[i].parseErr == nil {
			batch[i].parseErr = checkStorable(batch[i].ev)
		}
	}
	r.m.batchSize.Observe(float64(len(batch)))
	defer func() { r.m.ingestDuration.Observe(time.Since(start).Seconds()) }()
	parts := r.split(batch)
	if len(parts) == 1 {
		return r.processPart(ctx, parts[0])
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.processPart(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// split partitions the batch by a hash of the lead key (unparseable
// messages go to the first part). Empty parts are dropped.
func (r *Runner) split(batch []*inMsg) [][]*inMsg {
	n := r.cfg.IngestParallel
	if n <= 1 || len(batch) < 2*minPart {
		return [][]*inMsg{batch}
	}
	parts := make([][]*inMsg, n)
	for _, m := range batch {
		i := 0
		if m.ev != nil {
			h := fnv.New32a()
			_, _ = h.Write([]byte(m.ev.Lead))
			i = int(h.Sum32() % uint32(n))
		}
		parts[i] = append(parts[i], m)
	}
	out := parts[:0]
	for _, p := range parts {
		if len(p) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// minPart: batches smaller than two of these are not split (the second
// transaction would cost more than it saves).
const minPart = 32

func (r *Runner) processPart(ctx context.Context, batch []*inMsg) error {
	err := r.applyAndAck(ctx, batch)
	if err == nil || transient(err) {
		return err
	}
	if len(batch) == 1 {
		return r.failAlone(ctx, batch[0], err)
	}
	r.log.Warn("batch failed; applying its messages one by one", "err", redactErr(err), "messages", len(batch))
	var errs []error
	for _, m := range batch {
		fresh := &inMsg{msg: m.msg, ev: m.ev, parseErr: m.parseErr}
		if err := r.applyAndAck(ctx, []*inMsg{fresh}); err != nil {
			if !transient(err) {
				err = r.failAlone(ctx, fresh, err)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// inputError reports whether err is the input's fault, so that retrying
// the same event can never help: it is not a CloudEvent, the engine
// refuses it, or the database refuses one of its values.
func inputError(err error) bool {
	return errors.Is(err, cloudevent.ErrInvalid) || errors.Is(err, engine.ErrInvalidEvent) ||
		errors.Is(err, store.ErrInvalidData)
}

// failAlone settles a message whose own transaction failed with an error
// that is not transient. An input error is dead-lettered at once. Anything
// else (a bug, a schema problem, a constraint) may be the system's fault,
// so the message is nakked with backoff and kept until its
// DeadLetterAfter-th delivery, then dead-lettered with the reason: a valid
// event is never dropped because the database misbehaved for a while.
// It returns cause when the message was nakked.
func (r *Runner) failAlone(ctx context.Context, m *inMsg, cause error) error {
	if inputError(cause) {
		r.deadLetterAlone(ctx, m, cause)
		return nil
	}
	if n := int(m.msg.NumDelivered()); n >= r.cfg.DeadLetterAfter {
		r.deadLetterAlone(ctx, m, fmt.Errorf("gave up after %d deliveries: %w", n, cause))
		return nil
	}
	r.nakAll([]*inMsg{m}, cause)
	return cause
}

// checkStorable rejects events holding what the database cannot store: a
// NUL character (\u0000) in any string, which PostgreSQL refuses in text
// and jsonb values. Rejected here, before any lead is locked or created,
// the event is dead-lettered instead of failing its batch.
func checkStorable(ev *engine.Event) error {
	bad := func(field string) error {
		return fmt.Errorf("%w: %s contains a NUL character (\\u0000), which the database cannot store", cloudevent.ErrInvalid, field)
	}
	switch {
	case strings.IndexByte(ev.Lead, 0) >= 0:
		return bad("subject")
	case strings.IndexByte(ev.Email, 0) >= 0:
		return bad("email")
	case hasNUL(ev.Traits):
		return bad("traits")
	case hasNUL(ev.Properties):
		return bad("properties")
	}
	return nil
}

// hasNUL reports whether v (decoded JSON) holds a string or key with a NUL.
func hasNUL(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.IndexByte(x, 0) >= 0
	case map[string]any:
		for k, e := range x {
			if strings.IndexByte(k, 0) >= 0 || hasNUL(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNUL(e) {
				return true
			}
		}
	}
	return false
}

// applyAndAck runs the batch transaction and settles the messages.
func (r *Runner) applyAndAck(ctx context.Context, batch []*inMsg) error {
	now := r.now()
	var w *writes
	err := r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		var err error
		w, err = r.applyBatch(ctx, tx, batch, now)
		return err
	})
	if err != nil {
		if transient(err) {
			r.nakAll(batch, err)
		}
		return fmt.Errorf("apply batch of %d: %w", len(batch), err)
	}
	r.settle(ctx, batch, w, now)
	return nil
}

func (r *Runner) nakAll(batch []*inMsg, cause error) {
	for _, m := range batch {
		d := backoff(int(m.msg.NumDelivered()), r.cfg.NakDelay, time.Minute, r.cfg.Jitter())
		if err := m.msg.NakWithDelay(d); err != nil {
			r.log.Warn("nak failed; the message will be redelivered after its ack wait", "err", redactErr(err))
		}
	}
	r.m.nakked.Add(float64(len(batch)))
	r.log.Warn("batch not applied; messages nakked for redelivery", "messages", len(batch), "err", redactErr(cause))
}

// settle runs after commit: ack, term, metrics, logs, observer.
func (r *Runner) settle(ctx context.Context, batch []*inMsg, w *writes, now time.Time) {
	var applied, dead, dups int
	for _, m := range batch {
		var err error
		switch {
		case m.parseErr != nil || m.engineErr != nil:
			dead++
			err = m.msg.Term()
		default:
			if m.dup {
				dups++
			} else {
				applied++
			}
			err = m.msg.Ack()
		}
		if err != nil {
			// Committed already: a redelivery is a no-op.
			r.log.Warn("ack failed after commit", "err", redactErr(err), "subject", m.msg.Subject())
		}
	}
	r.m.applied.Add(float64(applied))
	r.m.deadLettered.Add(float64(dead))
	r.m.duplicates.Add(float64(dups))
	r.m.escalations.Add(float64(w.escalations))
	for _, m := range batch {
		switch {
		case m.parseErr != nil:
			r.log.Warn("event dead-lettered", "subject", m.msg.Subject(), "reason", redact(m.parseErr.Error()))
		case m.engineErr != nil:
			r.log.Warn("event dead-lettered", "event_id", m.ev.ID, "lead_id", redact(m.ev.Lead), "reason", redact(m.engineErr.Error()))
		case m.applied() && r.log.Enabled(ctx, slog.LevelDebug):
			r.log.Debug("event applied", "event_id", m.ev.ID, "lead_id", redact(m.ev.Lead), "type", m.ev.Type, "effects", len(m.effects))
		}
	}
	r.suppressAfterCommit(ctx, w, now)
	if len(w.items) > 0 {
		r.signalDispatch()
	}
	if r.cfg.Observer != nil {
		for _, m := range batch {
			if m.applied() {
				r.observe(m.ev.Lead, now, m.effects)
			}
		}
	}
}

func (r *Runner) suppressAfterCommit(ctx context.Context, w *writes, now time.Time) {
	for email, reason := range w.suppress {
		if err := r.st.Suppress(ctx, email, reason, now); err != nil {
			// The lead's own status already stops its mail; the list
			// protects other leads sharing the address.
			r.log.Warn("suppress address failed", "reason", reason, "err", redactErr(err))
		}
	}
}

// applyBatch is the body of the batch transaction. It is safe to call
// again on the same batch (it resets per-message results).
func (r *Runner) applyBatch(ctx context.Context, tx store.Tx, batch []*inMsg, now time.Time) (*writes, error) {
	w := &writes{}
	var keys, ids []string
	for _, m := range batch {
		m.dup, m.engineErr, m.effects = false, nil, nil
		if m.parseErr != nil {
			if err := tx.DeadLetter(ctx, deadLetterOf(m, m.parseErr, now)); err != nil {
				return nil, fmt.Errorf("dead-letter: %w", err)
			}
			continue
		}
		if m.ev.Time.IsZero() {
			m.ev.Time = now
		}
		keys = append(keys, m.ev.Lead)
		ids = append(ids, m.ev.ID)
	}
	if len(keys) == 0 {
		return w, nil
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	leads, err := tx.LockLeads(ctx, keys, now)
	if err != nil {
		return nil, err
	}
	fresh, err := tx.MarkEvents(ctx, ids, now)
	if err != nil {
		return nil, err
	}
	desk, err := tx.Desk(ctx, false)
	if err != nil {
		return nil, err
	}
	before := deskKey(desk)
	escalated := r.passEvents(leads, desk, batch, fresh, now)
	if escalated || deskKey(desk) != before {
		// Routing changed shared state: redo the batch from the stored
		// lead states with the desk locked, so the outcome is the same
		// whichever worker got there first.
		if desk, err = tx.Desk(ctx, true); err != nil {
			return nil, err
		}
		if leads, err = tx.LockLeads(ctx, keys, now); err != nil {
			return nil, err
		}
		r.passEvents(leads, desk, batch, fresh, now)
		if err := tx.SaveDesk(ctx, desk); err != nil {
			return nil, err
		}
	}

	touched := map[string]bool{}
	for _, m := range batch {
		switch {
		case m.ev == nil || m.dup:
		case m.engineErr != nil:
			if err := tx.DeadLetter(ctx, deadLetterOf(m, m.engineErr, now)); err != nil {
				return nil, fmt.Errorf("dead-letter event %s: %w", m.ev.ID, err)
			}
		default:
			touched[m.ev.Lead] = true
			w.history = append(w.history, eventEntry(m.ev, now))
			r.addEffects(w, leads[m.ev.Lead], m.ev.ID, now, m.effects)
			r.echoEngagement(w, m.ev, now)
		}
	}
	save := make([]*engine.Lead, 0, len(touched))
	for _, k := range keys {
		if touched[k] {
			save = append(save, leads[k])
		}
	}
	if err := tx.SaveLeads(ctx, save); err != nil {
		return nil, err
	}
	if err := tx.AppendHistory(ctx, w.history); err != nil {
		return nil, err
	}
	if err := tx.Enqueue(ctx, w.items); err != nil {
		return nil, err
	}
	return w, nil
}

// passEvents applies the batch's fresh events in arrival order and
// reports whether any escalation happened.
func (r *Runner) passEvents(leads map[string]*engine.Lead, desk *engine.Desk, batch []*inMsg, fresh map[string]bool, now time.Time) (escalated bool) {
	seen := make(map[string]bool, len(batch))
	for _, m := range batch {
		if m.ev == nil {
			continue
		}
		m.dup, m.engineErr, m.effects = false, nil, nil
		if !fresh[m.ev.ID] || seen[m.ev.ID] {
			m.dup = true
			continue
		}
		seen[m.ev.ID] = true
		lead := leads[m.ev.Lead]
		if lead == nil { // the store broke its contract; never panic on it
			m.engineErr = fmt.Errorf("lead %s was not locked", m.ev.Lead)
			continue
		}
		effects, err := r.eng.Apply(lead, engine.Input{Now: now, Event: m.ev, Desk: desk})
		if err != nil {
			m.engineErr = fmt.Errorf("apply event %s (%s) to lead %s: %w", m.ev.ID, m.ev.Type, m.ev.Lead, err)
			continue
		}
		m.effects = effects
		for _, ef := range effects {
			switch ef.(type) {
			case engine.Escalated, *engine.Escalated:
				escalated = true
			}
		}
	}
	return escalated
}

func deadLetterOf(m *inMsg, reason error, now time.Time) store.DeadLetter {
	data := m.msg.Data()
	if len(data) > maxDeadPayload {
		data = data[:maxDeadPayload]
	}
	dl := store.DeadLetter{At: now, Subject: m.msg.Subject(), Reason: reason.Error(), Payload: slices.Clone(data)}
	if m.ev != nil {
		dl.EventID = m.ev.ID
	} else {
		var probe struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(m.msg.Data(), &probe) == nil && len(probe.ID) <= 256 {
			dl.EventID = probe.ID
		}
	}
	return dl
}

// deadLetterAlone records a message that failed on its own with a
// non-transient error, then terms it. If even that fails it is nakked.
func (r *Runner) deadLetterAlone(ctx context.Context, m *inMsg, cause error) {
	now := r.now()
	err := r.st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		return tx.DeadLetter(ctx, deadLetterOf(m, cause, now))
	})
	if err != nil {
		r.nakAll([]*inMsg{m}, err)
		return
	}
	r.m.deadLettered.Inc()
	r.log.Warn("event dead-lettered", "subject", m.msg.Subject(), "reason", redact(cause.Error()))
	if err := m.msg.Term(); err != nil {
		r.log.Warn("term failed", "err", redactErr(err))
	}
}
