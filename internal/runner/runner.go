package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"golang.org/x/sync/errgroup"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
)

// Msg is one fetched lead event (adapters/nats.Msg satisfies it).
type Msg interface {
	Data() []byte
	Subject() string
	Ack() error
	NakWithDelay(d time.Duration) error
	Term() error
	// NumDelivered is 1 on the first delivery.
	NumDelivered() uint64
}

// Consumer fetches lead events. Fetch blocks a short while when nothing is
// pending and then returns an empty slice.
type Consumer interface {
	Fetch(ctx context.Context, max int) ([]Msg, error)
}

// LagReporter is optionally implemented by a Consumer: messages not yet
// delivered and delivered but not acked.
type LagReporter interface {
	Pending(ctx context.Context) (pending uint64, ackPending int, err error)
}

// Publisher publishes an emitted event (nurture.>) with a dedupe id.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte, msgID string) error
}

// Observer is told, after commit, what happened to a lead (the dev
// console prints it). Calls are serialized.
type Observer interface {
	Observe(lead string, at time.Time, effects []engine.Effect)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(lead string, at time.Time, effects []engine.Effect)

func (f ObserverFunc) Observe(lead string, at time.Time, effects []engine.Effect) {
	f(lead, at, effects)
}

// pruner is implemented by stores that can forget old processed event ids
// (adapters/postgres does).
type pruner interface {
	PruneProcessed(ctx context.Context, before time.Time) (int64, error)
}

// AdaptConsumer turns any consumer whose Fetch returns a concrete message
// type into a Consumer, keeping Pending when the source has it:
//
//	runner.AdaptConsumer[*nats.Msg](cons)
func AdaptConsumer[M Msg](c interface {
	Fetch(ctx context.Context, max int) ([]M, error)
}) Consumer {
	a := &adapted[M]{src: c}
	if lr, ok := c.(LagReporter); ok {
		return &adaptedLag[M]{adapted: a, lr: lr}
	}
	return a
}

type adapted[M Msg] struct {
	src interface {
		Fetch(ctx context.Context, max int) ([]M, error)
	}
}

func (a *adapted[M]) Fetch(ctx context.Context, max int) ([]Msg, error) {
	ms, err := a.src.Fetch(ctx, max)
	out := make([]Msg, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out, err
}

type adaptedLag[M Msg] struct {
	*adapted[M]
	lr LagReporter
}

func (a *adaptedLag[M]) Pending(ctx context.Context) (uint64, int, error) { return a.lr.Pending(ctx) }

// Channel is one configured escalation notification channel. Each
// escalation becomes one outbox item per channel.
type Channel struct {
	// Kind is store.KindNotifySlack, KindNotifyWebhook or KindNotifyEmail.
	Kind string
	// Name tells channels of one kind apart (a Slack channel, a webhook
	// endpoint); unique across all channels. "" defaults to Kind.
	Name string
}

// Config configures a Runner. Zero values take the documented defaults.
type Config struct {
	// Store is required.
	Store store.Store
	// Engine, or Content to build one from. One is required.
	Engine  *engine.Engine
	Content *engine.Content
	// Consumer feeds the ingest loop; nil disables ingest in Run.
	Consumer Consumer
	// Publisher publishes KindEvent outbox items; nil leaves them pending.
	Publisher Publisher
	// Handlers deliver outbox items by kind (store.KindEmail, notify.*).
	// Kinds without a handler are not claimed by this runner.
	Handlers map[string]outbox.Handler
	// Channels: escalation notification channels.
	Channels []Channel
	Logger   *slog.Logger
	// Registerer receives the runner's metrics (nil: a private registry).
	Registerer prometheus.Registerer
	Observer   Observer
	// Now is the clock (default time.Now). Tests pass a fake.
	Now func() time.Time
	// Jitter returns a number in [0,1) for retry jitter (default
	// math/rand). Tests pass a fixed source.
	Jitter func() float64

	// Ingest.
	BatchSize int // events per fetch (500)
	// IngestParallel splits each fetched batch by lead into this many
	// concurrent transactions (2; 1 = one transaction per batch).
	IngestParallel int
	NakDelay       time.Duration // first redelivery delay after a failed apply (1s; doubles per delivery, max 1m)
	// DeadLetterAfter: an event whose apply keeps failing with an error
	// that is neither transient nor caused by the input (a bug, a schema
	// problem) is nakked with backoff and dead-lettered on this delivery
	// (20, about 15 minutes of retries). Input errors are dead-lettered at
	// once; transient ones are retried for as long as it takes.
	DeadLetterAfter int
	// MaxDeliver is the consumer's cap on deliveries (0 or -1: none). When
	// set, events are dead-lettered no later than their last delivery, so
	// JetStream never drops an event nobody recorded.
	MaxDeliver int

	// Timers.
	SweepInterval time.Duration // how often sweeps run (1s)
	SweepBatch    int           // leads per sweep transaction (500)
	// SweepParallel sweep transactions run side by side (2).
	SweepParallel int
	// TickRetry is how long a lead whose tick failed waits before the
	// next try (5m); it doubles per consecutive failure up to TickRetryMax
	// (24h). Each failure is dead-lettered with its count.
	TickRetry    time.Duration
	TickRetryMax time.Duration
	// StreamMaxAge is how long the LEADS stream keeps messages. A consumer
	// created anew (DeliverAll) replays everything the stream holds, so
	// processed event ids must outlive it.
	StreamMaxAge time.Duration
	// EventRetention is how long processed event ids are kept for
	// deduplication (default: the longer of 7 days and StreamMaxAge plus
	// RetentionMargin; validated to be at least StreamMaxAge plus
	// RetentionMargin). PruneInterval is how often old ids are pruned (10m).
	EventRetention time.Duration
	PruneInterval  time.Duration
	// LeaseCheckInterval: how often expired outbox leases are recovered
	// (10s). LagInterval: how often consumer lag is sampled (5s).
	LeaseCheckInterval time.Duration
	LagInterval        time.Duration

	// Dispatch.
	// DispatchWorkers caps the deliveries under way at once: from an
	// item's hand-off to its receiver's answer (default 8). Items whose
	// lease ends are retried unless they were handed off (then emails
	// become unknown), so a crash leaves at most DispatchWorkers emails
	// unknown that never reached the receiver.
	// DispatchBatch caps the items in flight: claimed and not yet recorded
	// (default 8 × DispatchWorkers). Claimed items wait for a delivery
	// slot, and their outcomes are recorded in groups, so the database
	// round trips of claiming and recording overlap the deliveries; one
	// claim takes at most half of DispatchBatch.
	DispatchBatch   int
	DispatchWorkers int
	DispatchPoll    time.Duration // idle poll interval (250ms)
	Lease           time.Duration // claim lease (2m)
	DeliverTimeout  time.Duration // per delivery (30s)
	RetryBase       time.Duration // first retry delay (10s)
	RetryMax        time.Duration // longest retry delay (1h)
	GiveUp          time.Duration // transient failures give up after this age (24h)
	// ResendUnknown resends emails whose outcome is unknown (the worker
	// died after handing them off). Default false: counted, not resent.
	ResendUnknown bool
	// Source is the CloudEvents source of emitted events ("nurture").
	Source string
}

func (c *Config) setDefaults() {
	def := func(p *time.Duration, d time.Duration) {
		if *p <= 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Source == "" {
		c.Source = "nurture"
	}
	defInt(&c.BatchSize, 500)
	defInt(&c.DeadLetterAfter, 20)
	if c.MaxDeliver > 0 && c.DeadLetterAfter > c.MaxDeliver {
		c.DeadLetterAfter = c.MaxDeliver
	}
	defInt(&c.IngestParallel, 2)
	def(&c.NakDelay, time.Second)
	def(&c.SweepInterval, time.Second)
	defInt(&c.SweepBatch, 500)
	defInt(&c.SweepParallel, 2)
	def(&c.TickRetry, 5*time.Minute)
	def(&c.TickRetryMax, 24*time.Hour)
	if c.TickRetryMax < c.TickRetry {
		c.TickRetryMax = c.TickRetry
	}
	def(&c.EventRetention, max(7*24*time.Hour, c.StreamMaxAge+RetentionMargin))
	def(&c.PruneInterval, 10*time.Minute)
	def(&c.LeaseCheckInterval, 10*time.Second)
	def(&c.LagInterval, 5*time.Second)
	defInt(&c.DispatchWorkers, 8)
	defInt(&c.DispatchBatch, 8*c.DispatchWorkers)
	def(&c.DispatchPoll, 250*time.Millisecond)
	def(&c.Lease, 2*time.Minute)
	def(&c.DeliverTimeout, 30*time.Second)
	def(&c.RetryBase, 10*time.Second)
	def(&c.RetryMax, time.Hour)
	def(&c.GiveUp, 24*time.Hour)
}

func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no store"))
	}
	if c.Engine == nil && c.Content == nil {
		errs = append(errs, errors.New("no engine or content"))
	}
	seen := map[string]bool{}
	for i, ch := range c.Channels {
		switch ch.Kind {
		case store.KindNotifySlack, store.KindNotifyWebhook, store.KindNotifyEmail:
		default:
			errs = append(errs, fmt.Errorf("channel %d: unknown kind %q", i, ch.Kind))
		}
		name := ch.name()
		if seen[name] {
			errs = append(errs, fmt.Errorf("channel %d: duplicate name %q", i, name))
		}
		seen[name] = true
	}
	if c.StreamMaxAge > 0 && c.EventRetention < c.StreamMaxAge+RetentionMargin {
		errs = append(errs, fmt.Errorf("event retention %s must be at least the stream max age %s plus %s: "+
			"a replayed event whose id was pruned would apply twice", c.EventRetention, c.StreamMaxAge, RetentionMargin))
	}
	if c.Lease < 2*c.DeliverTimeout {
		errs = append(errs, fmt.Errorf("lease %s must be at least twice the delivery timeout %s", c.Lease, c.DeliverTimeout))
	}
	return errors.Join(errs...)
}

// RetentionMargin is how much longer than the stream's max age processed
// event ids are kept (clock skew between NATS, workers and the database,
// redeliveries in flight when a message expires).
const RetentionMargin = 24 * time.Hour

func (ch Channel) name() string {
	if ch.Name == "" {
		return ch.Kind
	}
	return ch.Name
}

// Runner runs the ingest, timer and dispatch loops. It holds no lead
// state: any number of runners can share one store and one consumer.
type Runner struct {
	cfg   Config
	st    store.Store
	eng   *engine.Engine
	log   *slog.Logger
	m     *metrics
	kinds []string // outbox kinds this runner claims
	kick  chan struct{}
	obsMu sync.Mutex
	// stopping is set when Run's context ends: loops finish the batch in
	// hand and start no new one.
	stopping atomic.Bool
	// The dispatcher's database steps, gathered across items in flight.
	handOffs *coalescer[store.HandOff, store.HandOffResult]
	records  *coalescer[outcome, struct{}]
	// delivering holds one token per delivery under way (DispatchWorkers).
	delivering chan struct{}
}

// New validates cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("runner config: %w", err)
	}
	eng := cfg.Engine
	if eng == nil {
		var err error
		if eng, err = engine.New(cfg.Content); err != nil {
			return nil, fmt.Errorf("runner: build engine: %w", err)
		}
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("runner: metrics: %w", err)
	}
	var kinds []string
	for k, h := range cfg.Handlers {
		if h != nil && k != store.KindEvent {
			kinds = append(kinds, k)
		}
	}
	if cfg.Publisher != nil {
		kinds = append(kinds, store.KindEvent)
	}
	sort.Strings(kinds)
	r := &Runner{
		cfg: cfg, st: cfg.Store, eng: eng, log: cfg.Logger, m: m, kinds: kinds,
		kick: make(chan struct{}, 1), delivering: make(chan struct{}, cfg.DispatchWorkers),
	}
	r.handOffs = newCoalescer(maxGroup, r.handOffBatch)
	r.records = newCoalescer(maxGroup, func(outs []outcome) ([]struct{}, error) {
		return make([]struct{}, len(outs)), r.record(context.Background(), outs)
	})
	return r, nil
}

// maxGroup caps how many items one coalesced dispatcher statement covers.
const maxGroup = 256

// Run runs the loops until ctx is cancelled, then stops fetching, finishes
// the in-flight batch (commit and ack), lets running sweeps and deliveries
// finish, and returns nil. Transient failures are logged and retried; Run
// returns an error only when a loop cannot continue.
func (r *Runner) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, func() { r.stopping.Store(true) })
	defer stop()
	if r.cfg.Consumer != nil {
		g.Go(func() error { return r.ingestLoop(gctx) })
	}
	g.Go(func() error { return r.timerLoop(gctx) })
	if len(r.kinds) > 0 {
		g.Go(func() error { return r.dispatchLoop(gctx) })
	}
	return g.Wait()
}

func (r *Runner) now() time.Time { return r.cfg.Now().UTC() }

// every is a cron schedule firing at a fixed interval (sub-second allowed,
// unlike cron.Every).
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

func (r *Runner) timerLoop(ctx context.Context) error {
	work := context.WithoutCancel(ctx)
	c := cron.New(cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	c.Schedule(every(r.cfg.SweepInterval), cron.FuncJob(func() {
		if _, err := r.SweepOnce(work, r.now()); err != nil {
			r.log.Warn("sweep failed", "err", redactErr(err))
		}
	}))
	c.Schedule(every(r.cfg.PruneInterval), cron.FuncJob(func() { r.pruneOnce(work) }))
	if len(r.kinds) > 0 {
		c.Schedule(every(r.cfg.LeaseCheckInterval), cron.FuncJob(func() {
			if _, err := r.RecoverLeasesOnce(work, r.now()); err != nil {
				r.log.Warn("recover expired leases failed", "err", redactErr(err))
			}
		}))
	}
	if lr, ok := r.cfg.Consumer.(LagReporter); ok {
		c.Schedule(every(r.cfg.LagInterval), cron.FuncJob(func() {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			pending, ackPending, err := lr.Pending(lctx)
			if err != nil {
				r.log.Debug("consumer lag unavailable", "err", redactErr(err))
				return
			}
			r.m.lag.Set(float64(pending))
			r.m.ackPending.Set(float64(ackPending))
		}))
	}
	c.Start()
	<-ctx.Done()
	<-c.Stop().Done() // wait for running jobs
	return nil
}

func (r *Runner) pruneOnce(ctx context.Context) {
	n, err := r.PruneOnce(ctx, r.now())
	if err != nil {
		r.log.Warn("prune processed events failed", "err", redactErr(err))
		return
	}
	if n > 0 {
		r.log.Debug("pruned processed events", "count", n)
	}
}

// PruneOnce forgets processed event ids older than EventRetention before
// now, when the store supports it (adapters/postgres does), and returns
// how many it removed.
func (r *Runner) PruneOnce(ctx context.Context, now time.Time) (int64, error) {
	p, ok := r.st.(pruner)
	if !ok {
		return 0, nil
	}
	n, err := p.PruneProcessed(ctx, now.Add(-r.cfg.EventRetention))
	if err != nil {
		return n, fmt.Errorf("prune processed events: %w", err)
	}
	return n, nil
}

// transient reports whether err is worth retrying.
func transient(err error) bool {
	return errors.Is(err, store.ErrTransient) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled)
}

// backoff is base·2^(n-1) capped at max, with "equal jitter" (half fixed,
// half random) from j in [0,1).
func backoff(n int, base, max time.Duration, j float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := float64(base) * math.Pow(2, float64(n-1))
	if d > float64(max) || math.IsInf(d, 0) {
		d = float64(max)
	}
	return time.Duration(d/2 + j*d/2)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (r *Runner) signalDispatch() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}
