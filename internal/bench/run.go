package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/sequences"
)

// run is the state of one benchmark run.
type run struct {
	cfg     Config
	sz      Sizes
	start   time.Time
	rep     *Report
	content fs.FS

	bundle *sequences.Bundle
	eng    *engine.Engine
	tmpl   *leadTemplate

	// admin is a connection to the server's maintenance database (create
	// and drop databases).
	admin   *pgx.Conn
	dbNames []string
	dbURL   string // the main benchmark database
	st      *postgres.Store
	pool    *pgxpool.Pool

	tmp     string
	emb     *natsadapter.Embedded
	natsURL string
	conn    *natsadapter.Conn
	pubNC   *natsgo.Conn
	pubJS   jetstream.JetStream
	pubErrs atomic.Int64
	// streamsOwned: the run created LEADS/NURTURE on an external server
	// and deletes them at the end.
	streamsOwned bool

	lim  limitFigures
	sink *smtpSink
}

// limitFigures are the same-run limits, for ratios.
type limitFigures struct {
	pgApply, pgClaim, js, smtp float64
}

// combinedIngest is the limit an ingest pipeline can reach on one machine
// when every event goes through both JetStream (publish, deliver, ack)
// and PostgreSQL (event row, lead update) sharing the same CPUs: the
// harmonic combination of the two rates.
func (l limitFigures) combinedIngest() float64 {
	if l.pgApply <= 0 || l.js <= 0 {
		return 0
	}
	return 1 / (1/l.pgApply + 1/l.js)
}

func (r *run) setup(ctx context.Context) error {
	b, err := sequences.LoadFS(r.content)
	if err != nil {
		return fmt.Errorf("load bench content: %w", err)
	}
	r.bundle = b
	if r.eng, err = engine.New(b.Content); err != nil {
		return fmt.Errorf("bench engine: %w", err)
	}
	if r.tmpl, err = newLeadTemplate(r.eng); err != nil {
		return err
	}

	if r.admin, err = pgx.Connect(ctx, r.cfg.DatabaseURL); err != nil {
		return fmt.Errorf("connect to %s: %w", redactURL(r.cfg.DatabaseURL), err)
	}
	var version string
	if err := r.admin.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit')`).
		Scan(&version, &r.rep.Machine.SyncCommit); err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	r.rep.Machine.Postgres = "PostgreSQL " + version
	if r.dbURL, err = r.createDB(ctx, ""); err != nil {
		return err
	}
	if r.st, err = openStore(ctx, r.dbURL); err != nil {
		return err
	}
	r.pool = r.st.Pool()
	vs := make([]store.SequenceVersion, 0, len(b.Sources))
	for _, s := range b.Sources {
		vs = append(vs, store.SequenceVersion{Sequence: s.Sequence, Version: s.Version, Source: s.Raw, PublishedAt: time.Now()})
	}
	if err := r.st.PublishVersions(ctx, vs); err != nil {
		return fmt.Errorf("publish bench content: %w", err)
	}
	r.progress("database %s created (%s, synchronous_commit=%s)", dbNameOf(r.dbURL), r.rep.Machine.Postgres, r.rep.Machine.SyncCommit)

	if r.tmp, err = tempDir(r.cfg.TempDir); err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	r.natsURL = r.cfg.NATSURL
	if r.natsURL == "" {
		if r.emb, err = natsadapter.StartEmbedded(natsadapter.Options{StoreDir: r.tmp, Port: -1}); err != nil {
			return err
		}
		r.natsURL = r.emb.URL()
		r.rep.Machine.NATS = "embedded nats-server (in this process), file storage"
	} else {
		r.rep.Machine.NATS = "external " + redactURL(r.natsURL)
	}
	if r.conn, err = natsadapter.Connect(ctx, natsadapter.Options{URL: r.natsURL, Name: "nurture-bench-worker", Durable: "nurture-bench",
		FetchWait: workerSettings.fetchWait, Duplicates: workerSettings.duplicates}); err != nil {
		return err
	}
	js := r.conn.JetStream()
	if r.cfg.NATSURL != "" {
		for _, name := range []string{natsadapter.LeadsStream, natsadapter.NurtureStream} {
			if _, err := js.Stream(ctx, name); err == nil {
				return fmt.Errorf("the NATS server at %s already has stream %s: point the bench at a server of its own (it creates and deletes LEADS and NURTURE)",
					redactURL(r.natsURL), name)
			}
		}
		r.streamsOwned = true
	}
	if err := r.conn.EnsureStreams(ctx); err != nil {
		return err
	}
	// The load generator publishes on its own connection, as upstream
	// systems do.
	if r.pubNC, err = natsgo.Connect(r.natsURL, natsgo.Name("nurture-bench-publisher")); err != nil {
		return fmt.Errorf("connect publisher: %w", err)
	}
	if r.pubJS, err = jetstream.New(r.pubNC, jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *natsgo.Msg, error) { r.pubErrs.Add(1) })); err != nil {
		return fmt.Errorf("publisher jetstream: %w", err)
	}
	r.progress("NATS: %s", r.rep.Machine.NATS)
	r.recordSettings()
	return nil
}

// close releases everything setup and the phases created, in reverse
// order, and drops the benchmark databases.
func (r *run) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	if r.sink != nil {
		r.sink.Close()
	}
	if r.pubNC != nil {
		r.pubNC.Close()
	}
	if r.conn != nil {
		if r.streamsOwned {
			js := r.conn.JetStream()
			for _, name := range []string{natsadapter.LeadsStream, natsadapter.NurtureStream, limitStream} {
				if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
					errs = append(errs, fmt.Errorf("delete stream %s: %w", name, err))
				}
			}
		}
		_ = r.conn.Close()
	}
	if r.emb != nil {
		r.emb.Shutdown()
	}
	if r.tmp != "" {
		_ = os.RemoveAll(r.tmp)
	}
	if r.st != nil {
		_ = r.st.Close()
	}
	if r.admin != nil {
		for _, name := range r.dbNames {
			if _, err := r.admin.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
				errs = append(errs, fmt.Errorf("drop database %s: %w", name, err))
			}
		}
		_ = r.admin.Close(ctx)
	}
	return errors.Join(errs...)
}

// createDB creates a fresh, uniquely named database and returns its URL.
func (r *run) createDB(ctx context.Context, suffix string) (string, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("nurture_bench_%s_%s%s", time.Now().UTC().Format("20060102t150405"), hex.EncodeToString(rnd[:]), suffix)
	if _, err := r.admin.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	r.dbNames = append(r.dbNames, name)
	u, err := url.Parse(r.cfg.DatabaseURL)
	if err != nil {
		return "", errors.New("database URL: not a URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func openStore(ctx context.Context, dbURL string) (*postgres.Store, error) {
	st, err := postgres.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func dbNameOf(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "?"
	}
	return strings.TrimPrefix(u.Path, "/")
}

// redactURL drops the password from a URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// processParts says what runs in this process besides the worker.
func (r *run) processParts() string {
	if r.emb != nil {
		return "worker + embedded NATS server + load generator, SMTP sink, webhook receiver"
	}
	return "worker + load generator, SMTP sink, webhook receiver; NATS is external"
}

// resetLeads deletes the bench consumer and purges LEADS, so the next
// phase starts on an empty stream.
func (r *run) resetLeads(ctx context.Context) error {
	js := r.conn.JetStream()
	s, err := js.Stream(ctx, natsadapter.LeadsStream)
	if err != nil {
		return fmt.Errorf("stream LEADS: %w", err)
	}
	if err := s.DeleteConsumer(ctx, "nurture-bench"); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete consumer: %w", err)
	}
	if err := s.Purge(ctx); err != nil {
		return fmt.Errorf("purge LEADS: %w", err)
	}
	return nil
}

// workerSettings are the runner settings of every phase: the defaults of
// `nurture serve`, spelled out so the report states them.
var workerSettings = struct {
	batch, parallel, dispatchBatch, dispatchWorkers, smtpPool int
	sweepEvery, dispatchPoll, fetchWait, duplicates           time.Duration
}{
	batch: 500, parallel: 2, dispatchBatch: 64, dispatchWorkers: 8, smtpPool: 4,
	sweepEvery: time.Second, dispatchPoll: 250 * time.Millisecond, fetchWait: 500 * time.Millisecond,
	duplicates: 2 * time.Hour,
}

func (r *run) recordSettings() {
	ws := workerSettings
	r.setting("ingest_batch", fmt.Sprint(ws.batch))
	r.setting("ingest_parallel_tx", fmt.Sprint(ws.parallel))
	r.setting("fetch_wait_when_idle", ws.fetchWait.String())
	r.setting("sweep_interval", ws.sweepEvery.String())
	r.setting("sweep_batch", fmt.Sprint(ws.batch))
	r.setting("sweep_parallel_tx", fmt.Sprint(ws.parallel))
	r.setting("dispatch_batch", fmt.Sprint(ws.dispatchBatch))
	r.setting("dispatch_workers", fmt.Sprint(ws.dispatchWorkers))
	r.setting("dispatch_poll", ws.dispatchPoll.String()+" (woken at once by commits that queue work)")
	r.setting("smtp_connections", fmt.Sprint(ws.smtpPool))
	r.setting("stream_duplicate_window", ws.duplicates.String())
}

// worker is a runner under test with its private metrics registry.
type worker struct {
	rn   *runner.Runner
	reg  *prometheus.Registry
	cons *natsadapter.Consumer
}

// newWorker builds a runner on st with the given adjustments; with
// consume set it gets a fresh consumer on LEADS.
func (r *run) newWorker(ctx context.Context, st store.Store, consume bool, tune func(*runner.Config)) (*worker, error) {
	w := &worker{reg: prometheus.NewRegistry()}
	rc := runner.Config{Store: st, Engine: r.eng, Registerer: w.reg, Logger: r.cfg.Logger,
		BatchSize: workerSettings.batch, IngestParallel: workerSettings.parallel,
		SweepInterval: workerSettings.sweepEvery, SweepBatch: workerSettings.batch, SweepParallel: workerSettings.parallel,
		DispatchBatch: workerSettings.dispatchBatch, DispatchWorkers: workerSettings.dispatchWorkers,
		DispatchPoll: workerSettings.dispatchPoll}
	if consume {
		if err := r.resetLeads(ctx); err != nil {
			return nil, err
		}
		c, err := r.conn.Consumer(ctx)
		if err != nil {
			return nil, err
		}
		w.cons = c
		rc.Consumer = runner.AdaptConsumer[*natsadapter.Msg](c)
	}
	if tune != nil {
		tune(&rc)
	}
	rn, err := runner.New(rc)
	if err != nil {
		return nil, err
	}
	w.rn = rn
	return w, nil
}

// start runs the worker's loops until the returned stop is called; stop
// waits for Run to return and reports its error.
func (w *worker) start(ctx context.Context) (stop func() error) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.rn.Run(rctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// counter sums a counter metric of the worker (over all label values
// matching labels).
func (w *worker) counter(name string, labels map[string]string) float64 {
	mfs, err := w.reg.Gather()
	if err != nil {
		return 0
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// histogram returns the count and mean of a histogram metric of the worker.
func (w *worker) histogram(name string) (count uint64, mean float64) {
	mfs, err := w.reg.Gather()
	if err != nil {
		return 0, 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			count += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
		if count > 0 {
			mean = sum / float64(count)
		}
	}
	return count, mean
}

// batchNote describes the ingest batches a worker ran.
func (w *worker) batchNote() string {
	n, size := w.histogram("nurture_ingest_batch_size")
	_, dur := w.histogram("nurture_ingest_batch_duration_seconds")
	return fmt.Sprintf("%d batches, mean %.0f events, mean %.1f ms per batch", n, size, dur*1000)
}

// sweepNote describes the sweep transactions a worker ran.
func (w *worker) sweepNote() string {
	n, dur := w.histogram("nurture_sweep_batch_duration_seconds")
	return fmt.Sprintf("%d sweep transactions, mean %.1f ms", n, dur*1000)
}

// dispatchNote describes the dispatcher's items: claim to recorded
// outcome.
func (w *worker) dispatchNote() string {
	n, dur := w.histogram("nurture_dispatch_duration_seconds")
	return fmt.Sprintf("%d items, mean %.1f ms from claim to recorded outcome", n, dur*1000)
}

// msgGen makes the i-th message of a load. Messages are made while
// publishing, as upstream systems do, so the load generator holds no
// backlog in memory (its encoding is part of the phase's CPU time).
type msgGen func(i int) (*natsgo.Msg, error)

// publishAsync publishes n messages pipelined on the load generator's
// connection and waits until the stream acknowledged all of them. A
// stalled publish (too many outstanding) waits and retries.
func (r *run) publishAsync(ctx context.Context, n int, gen msgGen) error {
	before := r.pubErrs.Load()
	for i := range n {
		m, err := gen(i)
		if err != nil {
			return err
		}
		for {
			_, err := r.pubJS.PublishMsgAsync(m, jetstream.WithStallWait(5*time.Second))
			if err == nil {
				break
			}
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				return fmt.Errorf("publish %s: %w", m.Subject, err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	select {
	case <-r.pubJS.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	if n := r.pubErrs.Load() - before; n > 0 {
		return fmt.Errorf("%d publishes failed", n)
	}
	return nil
}

// drained waits until the consumer has nothing pending and nothing
// unacknowledged, polling every 10 ms, and returns when that happened.
func drained(ctx context.Context, c *natsadapter.Consumer, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		pending, ackPending, err := c.Pending(ctx)
		now := time.Now()
		if err == nil && pending == 0 && ackPending == 0 {
			return now, nil
		}
		if now.After(deadline) {
			return now, fmt.Errorf("consumer not drained after %s (pending %d, unacked %d, err %v)", timeout, pending, ackPending, err)
		}
		select {
		case <-ctx.Done():
			return now, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
