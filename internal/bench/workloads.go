package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	natsgo "github.com/nats-io/nats.go"

	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/webhook"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/notify"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
)

// Goals of issue 7 on the 2-core development machine.
const (
	goalIngest      = 50_000.0
	goalIngestRatio = 0.65
	goalTimers      = 50_000.0
	goalSends       = 4_000.0
	goalSendsRatio  = 0.7
	goalEscP99MS    = 20.0
	goalRSSMiB      = 128.0
	goalGrowth      = 0.8
)

func verdict(ok bool) string {
	if ok {
		return VerdictOK
	}
	return VerdictMissed
}

// runIngest publishes msgs while w's loops run and returns the
// measurement from the first publish until the consumer has nothing
// pending or unacknowledged. Every message must have been applied.
func (r *run) runIngest(ctx context.Context, w *worker, n int, gen msgGen, pool *pgxpool.Pool) (measurement, error) {
	applied0 := w.counter("nurture_events_applied_total", nil)
	stop := w.start(ctx)
	m, err := measure(ctx, pool, func() error {
		if err := r.publishAsync(ctx, n, gen); err != nil {
			return err
		}
		_, err := drained(ctx, w.cons, 10*time.Minute)
		return err
	})
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return m, err
	}
	if got := int(w.counter("nurture_events_applied_total", nil) - applied0); got != n {
		dead := w.counter("nurture_events_dead_lettered_total", nil)
		return m, fmt.Errorf("applied %d of %d events (%v dead-lettered)", got, n, dead)
	}
	return m, nil
}

func (r *run) ingest(ctx context.Context) error {
	n, leads := r.sz.IngestEvents, r.sz.IngestLeads
	now := time.Now()
	gen := func(i int) (*natsgo.Msg, error) {
		lead := leadKey("in-", i%leads)
		if i < leads {
			return natsMsg(signup(fmt.Sprintf("in-ev-%d", i), lead, now))
		}
		return natsMsg(pageView(fmt.Sprintf("in-ev-%d", i), lead, now, i/leads))
	}
	w, err := r.newWorker(ctx, r.st, true, nil)
	if err != nil {
		return err
	}
	r.progress("ingest: publishing %d events over %d leads (1 sign-up per lead, then page views) …", n, leads)
	m, err := r.runIngest(ctx, w, n, gen, r.pool)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	rate := m.rate(int64(n))
	limit := r.lim.combinedIngest()
	row := m.row(Row{Workload: "ingest", Name: "Ingest: published → applied → acked", Value: rate, Unit: "events/s",
		Limit: limit, LimitName: "ingest limit", Goal: "≥ 50,000/s and ≥ 0.65 of limit",
		Note: fmt.Sprintf("%d events over %d leads; %s", n, leads, w.batchNote())}, int64(n))
	row.Verdict = verdict(rate >= goalIngest && limit > 0 && rate/limit >= goalIngestRatio)
	r.add(row)

	var bytes int64
	if err := r.pool.QueryRow(ctx, `SELECT pg_total_relation_size('history') + pg_total_relation_size('processed_events') +
pg_total_relation_size('outbox')`).Scan(&bytes); err != nil {
		return fmt.Errorf("ingest storage: %w", err)
	}
	r.add(Row{Workload: "ingest.storage", Name: "Ingest: history + processed ids + outbox per event", Value: float64(bytes) / float64(n),
		Unit: "bytes/event", Count: int64(n), Note: "grows with activity, not with leads; processed ids are pruned after 7 days"})
	return nil
}

func (r *run) timers(ctx context.Context) error {
	k := r.sz.TimerBacklog
	base := time.Now().Add(-10 * time.Minute)
	r.progress("timers: loading a backlog of %d due enrollments …", k)
	if err := r.tmpl.load(ctx, r.pool, "leads", "tb-", 0, k, base, 5*time.Minute/time.Duration(k), true); err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE leads; ANALYZE enrollments`); err != nil {
		return err
	}
	w, err := r.newWorker(ctx, r.st, false, nil)
	if err != nil {
		return err
	}
	var fired int
	m, err := measure(ctx, r.pool, func() error {
		var err error
		fired, err = w.rn.SweepOnce(ctx, time.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("timers: sweep: %w", err)
	}
	if fired != k {
		return fmt.Errorf("timers: the sweep fired %d of %d due enrollments", fired, k)
	}
	rate := m.rate(int64(k))
	row := m.row(Row{Workload: "timers.backlog", Name: "Timers: backlog of due steps (wait ends → email queued → next wait)",
		Value: rate, Unit: "steps/s", Limit: r.lim.pgClaim, LimitName: "claim limit", Goal: "≥ 50,000/s",
		Note: fmt.Sprintf("%d due at once; %d parallel sweep transactions, %s", k, workerSettings.parallel, w.sweepNote())}, int64(k))
	row.Verdict = verdict(rate >= goalTimers)
	r.add(row)
	return r.steadyTimers(ctx)
}

// steadyTimers loads enrollments falling due at SteadyRate per second and
// runs the worker's timer loop; lag = when the step committed − when it
// was due. The runner's clock is shifted so that the first one falls due
// one second after the loop starts.
func (r *run) steadyTimers(ctx context.Context) error {
	rate := r.sz.SteadyRate
	n := int(float64(rate) * r.sz.SteadyFor.Seconds())
	step := time.Second / time.Duration(rate)
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	r.progress("timers: loading %d enrollments falling due at %d/s …", n, rate)
	if err := r.tmpl.load(ctx, r.pool, "leads", "ts-", 0, n, base, step, true); err != nil {
		return err
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE leads`); err != nil {
		return err
	}
	var offset time.Duration
	var mu sync.Mutex
	lags := make([]time.Duration, 0, n)
	w, err := r.newWorker(ctx, r.st, false, func(c *runner.Config) {
		c.Now = func() time.Time { return time.Now().Add(-offset) }
		c.Observer = runner.ObserverFunc(func(lead string, _ time.Time, _ []engine.Effect) {
			at := time.Now().Add(-offset)
			idx, ok := strings.CutPrefix(lead, "ts-")
			if !ok {
				return
			}
			i, err := strconv.Atoi(idx)
			if err != nil {
				return
			}
			mu.Lock()
			lags = append(lags, at.Sub(base.Add(time.Duration(i)*step)))
			mu.Unlock()
		})
	})
	if err != nil {
		return err
	}
	offset = time.Since(base) + time.Second
	stop := w.start(ctx)
	deadline := time.Now().Add(r.sz.SteadyFor + 20*time.Second)
	for {
		mu.Lock()
		got := len(lags)
		mu.Unlock()
		if got >= n || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := stop(); err != nil {
		return fmt.Errorf("timers: steady: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	note := fmt.Sprintf("%d steps due at %d/s; sweep interval %s (lag ≈ interval/2 + sweep time)", n, rate, workerSettings.sweepEvery)
	if missing := n - len(lags); missing > 0 {
		// Steps that had not fired by the deadline count with the lag
		// they had reached then (a lower bound).
		at := time.Now().Add(-offset)
		for i := n - missing; i < n; i++ {
			lags = append(lags, at.Sub(base.Add(time.Duration(i)*step)))
		}
		note += fmt.Sprintf("; %d steps had not fired %s after the last fell due (counted with the lag reached then): the sweeper cannot keep up with this rate", missing, 20*time.Second)
	}
	p50, p99 := percentile(lags, 0.50), percentile(lags, 0.99)
	r.add(Row{Workload: "timers.lag_p50", Name: "Timers: firing lag p50 at a steady due rate", Value: ms(p50), Unit: "ms", Count: int64(n), Note: note})
	r.add(Row{Workload: "timers.lag_p99", Name: "Timers: firing lag p99 at a steady due rate", Value: ms(p99), Unit: "ms", Count: int64(n), Note: note})
	return nil
}

func (r *run) composer() (*smtp.Composer, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	signer, err := token.New(token.Key{ID: "bench", Secret: secret})
	if err != nil {
		return nil, err
	}
	b := r.bundle
	return smtp.NewComposer(smtp.ComposeConfig{PublicURL: "https://bench.example", Signer: signer,
		Renderer: smtp.BundleRenderer(func() *sequences.Bundle { return b }), PostalAddress: "Bench Analytics, 100 Main St, Boston MA"})
}

func (r *run) sends(ctx context.Context) error {
	var pending int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE kind = 'email' AND status = 'pending'`).Scan(&pending); err != nil {
		return err
	}
	s := min(r.sz.Sends, pending)
	if s == 0 {
		return fmt.Errorf("sends: no email in the outbox")
	}
	// Only s items are due; the rest wait far in the future.
	if _, err := r.pool.Exec(ctx, `UPDATE outbox SET next_attempt_at = now() + interval '100 years'
WHERE kind = 'email' AND status = 'pending'
  AND id NOT IN (SELECT id FROM outbox WHERE kind = 'email' AND status = 'pending' ORDER BY id LIMIT $1)`, s); err != nil {
		return fmt.Errorf("sends: park emails: %w", err)
	}
	comp, err := r.composer()
	if err != nil {
		return err
	}
	mailer, err := smtp.New(smtp.Config{Dial: smtp.Dial{Host: r.sink.host, Port: r.sink.port, StartTLS: "none"}, Pool: workerSettings.smtpPool}, comp)
	if err != nil {
		return err
	}
	defer func() { _ = mailer.Close() }()
	w, err := r.newWorker(ctx, r.st, false, func(c *runner.Config) {
		c.Handlers = map[string]outbox.Handler{store.KindEmail: mailer}
		// As in `nurture serve`: each sent email's nurture.email.sent
		// event is published with its outcome.
		c.Publisher = r.conn.Publisher(natsadapter.Source)
	})
	if err != nil {
		return err
	}
	r.progress("sends: dispatching %d emails from the outbox to the SMTP sink …", s)
	sink0 := r.sink.count.Load()
	kind := map[string]string{"kind": store.KindEmail}
	stop := w.start(ctx)
	m, err := measure(ctx, r.pool, func() error {
		deadline := time.Now().Add(10 * time.Minute)
		for w.counter("nurture_outbox_deliveries_total", kind) < float64(s) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("only %v of %d emails settled", w.counter("nurture_outbox_deliveries_total", kind), s)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return nil
	})
	if serr := stop(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("sends: %w", err)
	}
	sent := w.counter("nurture_outbox_deliveries_total", map[string]string{"kind": store.KindEmail, "outcome": "sent"})
	if int(sent) != s || r.sink.count.Load()-sink0 != int64(s) {
		return fmt.Errorf("sends: %v of %d emails sent, %d received by the sink", sent, s, r.sink.count.Load()-sink0)
	}
	rate := m.rate(int64(s))
	row := m.row(Row{Workload: "sends", Name: "Sends: outbox → dispatcher → go-mail → SMTP sink", Value: rate, Unit: "emails/s",
		Limit: r.lim.smtp, LimitName: "go-mail limit", Goal: "≥ 4,000/s and ≥ 0.7 of limit",
		Note: fmt.Sprintf("%d SMTP connections; nurture.email.sent published per email; %s", workerSettings.smtpPool, w.dispatchNote())}, int64(s))
	row.Verdict = verdict(rate >= goalSends && r.lim.smtp > 0 && rate/r.lim.smtp >= goalSendsRatio)
	r.add(row)
	return nil
}

// escalationStages splits the escalation latency at the notification's
// outbox row: published → applied (the row's creation, in the batch that
// applied the event), applied → handed off (commit, dispatcher, claim,
// hand-off), handed off → received (signing and the POST). It reports the
// p99 of each stage, so a tail can be placed.
func (r *run) escalationStages(ctx context.Context, pubAt, got map[string]time.Time) (string, error) {
	rows, err := r.pool.Query(ctx, `SELECT lead_key, created_at, handed_at FROM outbox WHERE kind = $1 AND handed_at IS NOT NULL`, store.KindNotifyWebhook)
	if err != nil {
		return "", fmt.Errorf("stages: %w", err)
	}
	defer rows.Close()
	var applied, dispatched, posted []time.Duration
	var worst [3]time.Duration
	for rows.Next() {
		var lead string
		var created, handed time.Time
		if err := rows.Scan(&lead, &created, &handed); err != nil {
			return "", fmt.Errorf("stages: %w", err)
		}
		p, okP := pubAt[lead]
		a, okA := got[lead]
		if !okP || !okA {
			continue
		}
		applied = append(applied, created.Sub(p))
		dispatched = append(dispatched, handed.Sub(created))
		posted = append(posted, a.Sub(handed))
		if a.Sub(p) > worst[0]+worst[1]+worst[2] {
			worst = [3]time.Duration{created.Sub(p), handed.Sub(created), a.Sub(handed)}
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("stages: %w", err)
	}
	return fmt.Sprintf("p99 by stage: published → applied %.1f ms, applied → handed off %.1f ms, handed off → received %.1f ms; slowest: %.1f + %.1f + %.1f ms",
		ms(percentile(applied, 0.99)), ms(percentile(dispatched, 0.99)), ms(percentile(posted, 0.99)),
		ms(worst[0]), ms(worst[1]), ms(worst[2])), nil
}

func (r *run) escalation(ctx context.Context) error {
	// Nothing else may be due in the outbox: the latency is the
	// escalation's own.
	if _, err := r.pool.Exec(ctx, `UPDATE outbox SET next_attempt_at = now() + interval '100 years' WHERE status IN ('pending', 'retry')`); err != nil {
		return err
	}
	rc, err := startReceiver()
	if err != nil {
		return err
	}
	defer rc.Close()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: rc.url, Secret: webhook.SecretPrefix + base64.StdEncoding.EncodeToString(key), Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	nh := notify.New(notify.Config{Store: r.st, Views: leadview.NewBuilder("https://bench.example", r.bundle.Content.Scoring),
		Webhooks: map[string]notify.Notifier{"crm": ep}, Logger: r.cfg.Logger})
	w, err := r.newWorker(ctx, r.st, true, func(c *runner.Config) {
		c.Handlers = nh.Handlers()
		c.Channels = []runner.Channel{{Kind: store.KindNotifyWebhook, Name: "crm"}}
		c.Publisher = r.conn.Publisher(natsadapter.Source)
	})
	if err != nil {
		return err
	}
	rate, every := r.sz.EscalationRate, r.sz.EscalationEvery
	total := int(float64(rate) * r.sz.EscalationFor.Seconds())
	rng := mrand.New(mrand.NewPCG(7, 11))
	msgs := make([]*natsgo.Msg, total)
	escLead := make([]string, total)
	now := time.Now()
	for i := range total {
		var ev *engine.Event
		if i%every == 0 {
			escLead[i] = leadKey("es-", i/every)
			ev = demoRequest(fmt.Sprintf("es-ev-%d", i), escLead[i], now)
		} else {
			ev = pageView(fmt.Sprintf("es-pv-%d", i), leadKey("in-", rng.IntN(r.sz.IngestLeads)), now, i)
		}
		m, err := natsMsg(ev)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	r.progress("escalation: %d events/s for %s, one in %d escalates a lead …", rate, r.sz.EscalationFor, every)
	stop := w.start(ctx)
	time.Sleep(200 * time.Millisecond) // let the loops reach their first fetch
	pubAt := map[string]time.Time{}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var perr error
	for i, m := range msgs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > time.Millisecond {
			time.Sleep(d)
		}
		if escLead[i] != "" {
			pubAt[escLead[i]] = time.Now()
		}
		if _, err := r.pubJS.PublishMsgAsync(m); err != nil {
			perr = err
			break
		}
	}
	sent := time.Since(start)
	want := len(pubAt)
	deadline := time.Now().Add(15 * time.Second)
	for len(rc.arrivals()) < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if err := stop(); err != nil {
		return fmt.Errorf("escalation: %w", err)
	}
	if perr != nil {
		return fmt.Errorf("escalation: publish: %w", perr)
	}
	got := rc.arrivals()
	var lats []time.Duration
	for lead, at := range got {
		if p, ok := pubAt[lead]; ok {
			lats = append(lats, at.Sub(p))
		}
	}
	if len(lats) < want {
		return fmt.Errorf("escalation: %d of %d notifications arrived within 15s of the last publish (%d rejected)", len(lats), want, rc.bad.Load())
	}
	achieved := float64(total) / sent.Seconds()
	note := fmt.Sprintf("%d escalations among %d events at %.0f events/s; dispatcher woken on commit (poll 250ms), fetch wait 500ms when idle",
		len(lats), total, achieved)
	stages, err := r.escalationStages(ctx, pubAt, got)
	if err != nil {
		return fmt.Errorf("escalation: %w", err)
	}
	note += "; " + stages
	p50, p99 := percentile(lats, 0.5), percentile(lats, 0.99)
	r.add(Row{Workload: "escalation.p50", Name: "Escalation: event published → signed webhook received, p50", Value: ms(p50), Unit: "ms",
		Count: int64(len(lats)), Note: note})
	r.add(Row{Workload: "escalation.p99", Name: "Escalation: event published → signed webhook received, p99", Value: ms(p99), Unit: "ms",
		Count: int64(len(lats)), Goal: "≤ 20 ms", Verdict: verdict(ms(p99) <= goalEscP99MS), Note: note})
	return nil
}

// percentile returns the q-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
