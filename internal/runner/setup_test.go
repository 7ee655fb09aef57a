package runner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/testdb"
)

// testDatabase creates a uniquely named, migrated database for tb and drops
// it when tb ends. It fails (not skips) when PostgreSQL is unreachable,
// unless -short is given.
func testDatabase(tb testing.TB) string {
	tb.Helper()
	dbURL := testdb.New(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, dbURL)
	require.NoError(tb, err)
	defer st.Close()
	require.NoError(tb, st.Migrate(ctx))
	return dbURL
}

func openStore(tb testing.TB, dbURL string) *postgres.Store {
	tb.Helper()
	st, err := postgres.Open(context.Background(), dbURL)
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }
func (c *clock) Now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)  { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// testContent: one sequence (welcome email, wait 2 days, tips email), a
// page.viewed scoring rule worth 10 points, threshold 50 (re-arm below 20),
// two reps in round-robin.
func testContent() *engine.Content {
	seq := &engine.Sequence{
		ID: "trial", Version: "v1", Name: "Trial",
		Enroll: engine.Enroll{On: []string{"trial.started"}, Reenroll: engine.Reenroll{Mode: engine.ReenrollNever}},
		Exit:   engine.Exit{On: []string{"demo.booked"}},
		Steps: []*engine.Step{
			{ID: "welcome", Kind: engine.StepEmail, Template: "welcome"},
			{ID: "pause", Kind: engine.StepWait, Wait: 48 * time.Hour},
			{ID: "tips", Kind: engine.StepEmail, Template: "tips"},
		},
		From: "team@example.com",
	}
	return &engine.Content{
		Sequences: []*engine.Sequence{seq},
		Current:   map[string]string{"trial": "v1"},
		Scoring: &engine.Scoring{
			Rules:      []*engine.Rule{{ID: "viewed", Event: "page.viewed", Points: 10}},
			Threshold:  50,
			Rearm:      20,
			OnEscalate: engine.EscalationExit,
			Routing: engine.Routing{Strategy: engine.RouteRoundRobin, Reps: []engine.Rep{
				{ID: "ana", Name: "Ana", Email: "ana@example.com"},
				{ID: "bo", Name: "Bo", Email: "bo@example.com"},
			}},
		},
		Templates: []string{"welcome", "tips"},
	}
}

// recorder is a real Handler that records deliveries and can inject faults
// (the only fake here: faults are what a test injects).
type recorder struct {
	mu    sync.Mutex
	got   map[string]int // dedupe key → deliveries
	fault func(item store.OutboxItem, n int) error
}

func newRecorder() *recorder { return &recorder{got: map[string]int{}} }

func (r *recorder) Deliver(_ context.Context, item store.OutboxItem) error {
	r.mu.Lock()
	r.got[item.DedupeKey]++
	n := r.got[item.DedupeKey]
	f := r.fault
	r.mu.Unlock()
	if f != nil {
		return f(item, n)
	}
	return nil
}

func (r *recorder) count(key string) int { r.mu.Lock(); defer r.mu.Unlock(); return r.got[key] }
func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.got {
		n += v
	}
	return n
}

// bundle is what a runner test needs.
type bundle struct {
	dbURL string
	st    *postgres.Store
	nats  *natstest.Server
	conn  *nats.Conn
	pub   *nats.Publisher
	clock *clock
	mail  *recorder
	hooks *recorder
	reg   *prometheus.Registry
}

func setup(t *testing.T) *bundle {
	t.Helper()
	dbURL := testDatabase(t)
	srv := natstest.Start(t)
	conn := natstest.Connect(t, srv.URL, nats.Options{AckWait: 2 * time.Second, FetchWait: 200 * time.Millisecond})
	return &bundle{
		dbURL: dbURL, st: openStore(t, dbURL), nats: srv, conn: conn, pub: conn.Publisher("test"),
		clock: newClock(t0), mail: newRecorder(), hooks: newRecorder(), reg: prometheus.NewRegistry(),
	}
}

// config returns a runner config on the bundle's parts; mutate before New.
func (b *bundle) config(t *testing.T) runner.Config {
	t.Helper()
	cons, err := b.conn.Consumer(context.Background())
	require.NoError(t, err)
	return runner.Config{
		Store:      b.st,
		Content:    testContent(),
		Consumer:   runner.AdaptConsumer[*nats.Msg](cons),
		Publisher:  b.pub,
		Handlers:   map[string]outbox.Handler{store.KindEmail: b.mail, store.KindNotifyWebhook: b.hooks},
		Channels:   []runner.Channel{{Kind: store.KindNotifyWebhook, Name: "crm"}},
		Registerer: prometheus.NewRegistry(),
		Now:        b.clock.Now,
		Jitter:     func() float64 { return 0.5 },
		BatchSize:  100,
	}
}

func (b *bundle) runner(t *testing.T, mut ...func(*runner.Config)) *runner.Runner {
	t.Helper()
	cfg := b.config(t)
	for _, m := range mut {
		m(&cfg)
	}
	r, err := runner.New(cfg)
	require.NoError(t, err)
	return r
}

var evSeq atomic.Int64

// event builds a lead event.
func event(id, typ, lead string) *engine.Event {
	if id == "" {
		id = fmt.Sprintf("evt-%d", evSeq.Add(1))
	}
	ev := &engine.Event{ID: id, Type: typ, Lead: lead, Time: t0}
	if typ == "trial.started" {
		ev.Email = lead + "@example.com"
		ev.Traits = map[string]any{"first_name": "L" + lead}
	}
	return ev
}

func (b *bundle) publish(t *testing.T, evs ...*engine.Event) {
	t.Helper()
	ctx := context.Background()
	outs := make([]nats.Out, len(evs))
	for i, ev := range evs {
		o, err := nats.EventOut(ev, "test")
		require.NoError(t, err)
		outs[i] = o
	}
	require.NoError(t, b.pub.PublishBatch(ctx, outs))
}

func mustOut(t testing.TB, ev *engine.Event) nats.Out {
	t.Helper()
	o, err := nats.EventOut(ev, "test")
	require.NoError(t, err)
	return o
}

func (b *bundle) publishRaw(t *testing.T, subject string, data []byte, id string) {
	t.Helper()
	require.NoError(t, b.pub.Publish(context.Background(), subject, data, id))
}

// drain runs IngestOnce until want messages were fetched in total.
func drain(t *testing.T, r *runner.Runner, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := 0
	for got < want {
		n, err := r.IngestOnce(ctx)
		require.NoError(t, err)
		got += n
	}
}

// history returns the lead's timeline entries of a kind.
func (b *bundle) history(t *testing.T, lead, kind string) []store.History {
	t.Helper()
	hs, err := b.st.History(context.Background(), lead, 1000)
	require.NoError(t, err)
	var out []store.History
	for _, h := range hs {
		if h.Kind == kind {
			out = append(out, h)
		}
	}
	return out
}

func (b *bundle) outbox(t *testing.T, kind, lead string) []store.OutboxItem {
	t.Helper()
	items, err := b.st.ListOutbox(context.Background(), store.OutboxFilter{Kind: kind, LeadKey: lead, Limit: 10000})
	require.NoError(t, err)
	return items
}

func (b *bundle) lead(t *testing.T, key string) *engine.Lead {
	t.Helper()
	l, err := b.st.Lead(context.Background(), key)
	require.NoError(t, err)
	return l
}

func (b *bundle) deadLetters(t *testing.T) []store.DeadLetter {
	t.Helper()
	dls, err := b.st.DeadLetters(context.Background(), 1000)
	require.NoError(t, err)
	return dls
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

// flaky wraps a store and makes InTx fail with store.ErrTransient (after
// running fn, so the real transaction rolls back) while fail > 0.
type flaky struct {
	store.Store
	fail atomic.Int32
}

func (f *flaky) InTx(ctx context.Context, fn func(ctx context.Context, tx store.Tx) error) error {
	return f.Store.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		if f.fail.Add(-1) >= 0 {
			return fmt.Errorf("injected: connection reset: %w", store.ErrTransient)
		}
		return nil
	})
}
