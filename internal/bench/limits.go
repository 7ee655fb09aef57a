package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	gomail "github.com/wneessen/go-mail"
	"golang.org/x/sync/errgroup"

	"github.com/nurture-oss/nurture/sequences"
)

// limitWorkers is the number of concurrent transactions of the raw
// PostgreSQL limits: the runner applies each ingest batch in two
// concurrent parts (IngestParallel 2), on this 2-core class of machine.
const limitWorkers = 2

const limitStream = "BENCH_LIMIT"

func (r *run) limits(ctx context.Context) error {
	steps := []func(context.Context) error{r.limitApply, r.limitClaim, r.limitJetStream, r.limitSMTP}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return err
		}
	}
	if c := r.lim.combinedIngest(); c > 0 {
		r.add(Row{Workload: "limit.ingest_combined", Name: "Limit: ingest (PostgreSQL apply ⊕ JetStream, same CPUs)",
			Value: c, Unit: "events/s", Note: "1 / (1/apply + 1/jetstream): both run on the same cores"})
	}
	return nil
}

// limitApply: batched insert of event rows plus update of lead documents
// of the same shape and size as Nurture's, Batch per transaction, no engine.
func (r *run) limitApply(ctx context.Context) error {
	m, done, err := r.rawApply(ctx, r.sz.LimitApply)
	if err != nil {
		return fmt.Errorf("limit apply: %w", err)
	}
	r.lim.pgApply = m.rate(done)
	r.add(m.row(Row{Workload: "limit.pg_apply", Name: "Limit: PostgreSQL apply (event row + lead document, no engine)",
		Value: r.lim.pgApply, Unit: "events/s",
		Note: fmt.Sprintf("%d per transaction, %d concurrent transactions, %d-byte documents", r.sz.Batch, limitWorkers, len(r.tmpl.doc))}, done))
	return nil
}

// rawApply measures applying n events the raw way, on tables of its own
// that it drops afterwards.
func (r *run) rawApply(ctx context.Context, n int) (measurement, int64, error) {
	batch := r.sz.Batch
	leads := max(r.sz.IngestLeads, 4*batch)
	var m measurement
	if _, err := r.pool.Exec(ctx, `
CREATE TABLE limit_leads (LIKE leads INCLUDING ALL) WITH (fillfactor = 70);
CREATE TABLE limit_events (event_id text PRIMARY KEY, lead_key text NOT NULL, at timestamptz NOT NULL, kind text NOT NULL, data jsonb)`); err != nil {
		return m, 0, fmt.Errorf("limit tables: %w", err)
	}
	if err := r.tmpl.load(ctx, r.pool, "limit_leads", "ll-", 0, leads, time.Now().Add(24*time.Hour), 0, false); err != nil {
		return m, 0, err
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE limit_leads`); err != nil {
		return m, 0, err
	}
	doc := []byte(r.tmpl.doc)
	evData := []byte(`{"type":"page.viewed","properties":{"path":"/docs/connectors/postgres","referrer":"https://www.google.com/","session":"s-12"},"time":"2026-01-05T10:01:00Z"}`)
	half := leads / limitWorkers
	var done atomic.Int64
	m, err := measure(ctx, r.pool, func() error {
		g, gctx := errgroup.WithContext(ctx)
		for w := range limitWorkers {
			g.Go(func() error {
				j := 0 // events of this worker so far
				for b := w; b*batch < n; b += limitWorkers {
					size := min(batch, n-b*batch)
					ids, keys, kinds := make([]string, size), make([]string, size), make([]string, size)
					ats := make([]time.Time, size)
					datas, docs := make([][]byte, size), make([][]byte, size)
					now := time.Now()
					for i := range size {
						ids[i] = fmt.Sprintf("le-%d-%d", w, j)
						keys[i] = leadKey("ll-", limitWorkers*(j%half)+w)
						kinds[i], ats[i], datas[i], docs[i] = "event", now, evData, doc
						j++
					}
					err := pgx.BeginFunc(gctx, r.pool, func(tx pgx.Tx) error {
						bt := &pgx.Batch{}
						bt.Queue(`INSERT INTO limit_events (event_id, lead_key, at, kind, data)
SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[])`, ids, keys, ats, kinds, datas)
						bt.Queue(`UPDATE limit_leads AS l SET state = u.state, updated_at = u.at
FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[]) AS u(key, state, at) WHERE l.key = u.key`, keys, docs, ats)
						return tx.SendBatch(gctx, bt).Close()
					})
					if err != nil {
						return fmt.Errorf("apply batch: %w", err)
					}
					done.Add(int64(size))
				}
				return nil
			})
		}
		return g.Wait()
	})
	if err != nil {
		return m, 0, err
	}
	if _, err := r.pool.Exec(ctx, `DROP TABLE limit_events; DROP TABLE limit_leads`); err != nil {
		return m, 0, err
	}
	return m, done.Load(), nil
}

// limitClaim: claim due rows of a timer table with FOR UPDATE SKIP
// LOCKED in batches, read their documents and write them back with the
// next due time, as a sweep does, without the engine.
func (r *run) limitClaim(ctx context.Context) error {
	m, done, err := r.rawClaim(ctx, r.sz.LimitClaim)
	if err != nil {
		return fmt.Errorf("limit claim: %w", err)
	}
	r.lim.pgClaim = m.rate(done)
	r.add(m.row(Row{Workload: "limit.pg_claim", Name: "Limit: PostgreSQL SKIP LOCKED claim + write back",
		Value: r.lim.pgClaim, Unit: "rows/s",
		Note: fmt.Sprintf("%d per transaction, %d concurrent claimers", r.sz.Batch, limitWorkers)}, done))
	return nil
}

// rawClaim measures claiming n due rows the raw way, on a table of its
// own that it drops afterwards.
func (r *run) rawClaim(ctx context.Context, n int) (measurement, int64, error) {
	batch := r.sz.Batch
	var m measurement
	if _, err := r.pool.Exec(ctx, `CREATE TABLE limit_timers (LIKE leads INCLUDING ALL) WITH (fillfactor = 70)`); err != nil {
		return m, 0, fmt.Errorf("limit timer table: %w", err)
	}
	base := time.Now().Add(-time.Hour)
	if err := r.tmpl.load(ctx, r.pool, "limit_timers", "lt-", 0, n, base, time.Microsecond, false); err != nil {
		return m, 0, err
	}
	if _, err := r.pool.Exec(ctx, `ANALYZE limit_timers`); err != nil {
		return m, 0, err
	}
	var done atomic.Int64
	m, err := measure(ctx, r.pool, func() error {
		g, gctx := errgroup.WithContext(ctx)
		for range limitWorkers {
			g.Go(func() error {
				for {
					var got int
					err := pgx.BeginFunc(gctx, r.pool, func(tx pgx.Tx) error {
						now := time.Now()
						rows, err := tx.Query(gctx, `SELECT key, state FROM limit_timers WHERE next_run_at <= $1
ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, batch)
						if err != nil {
							return err
						}
						var keys []string
						var docs [][]byte
						for rows.Next() {
							var k string
							var d []byte
							if err := rows.Scan(&k, &d); err != nil {
								rows.Close()
								return err
							}
							keys, docs = append(keys, k), append(docs, d)
						}
						rows.Close()
						if err := rows.Err(); err != nil {
							return err
						}
						got = len(keys)
						if got == 0 {
							return nil
						}
						_, err = tx.Exec(gctx, `UPDATE limit_timers AS t SET next_run_at = $3, state = u.state, updated_at = $4
FROM unnest($1::text[], $2::jsonb[]) AS u(key, state) WHERE t.key = u.key`, keys, docs, now.Add(48*time.Hour), now)
						return err
					})
					if err != nil {
						return fmt.Errorf("claim batch: %w", err)
					}
					if got == 0 {
						return nil
					}
					done.Add(int64(got))
				}
			})
		}
		return g.Wait()
	})
	if err != nil {
		return m, 0, err
	}
	if int(done.Load()) != n {
		return m, 0, fmt.Errorf("claimed %d of %d rows", done.Load(), n)
	}
	if _, err := r.pool.Exec(ctx, `DROP TABLE limit_timers`); err != nil {
		return m, 0, err
	}
	return m, done.Load(), nil
}

// limitJetStream: async publish of lead-event-sized messages (with
// Nats-Msg-Id) while a pull consumer fetches them in batches and acks
// each one; from the first publish to the last ack.
func (r *run) limitJetStream(ctx context.Context) error {
	n := r.sz.LimitJS
	js := r.conn.JetStream()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: limitStream, Subjects: []string{"benchlimit.>"},
		Storage: jetstream.FileStorage, Duplicates: workerSettings.duplicates})
	if err != nil {
		return fmt.Errorf("limit stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), limitStream) }()
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench-limit",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000, AckWait: 30 * time.Second})
	if err != nil {
		return fmt.Errorf("limit consumer: %w", err)
	}
	gen := func(i int) (*natsgo.Msg, error) {
		m, err := natsMsg(pageView(fmt.Sprintf("lim-%d", i), leadKey("in-", i%1000), t0, i))
		if err != nil {
			return nil, err
		}
		m.Subject = "benchlimit.page_viewed"
		return m, nil
	}
	first, err := gen(0)
	if err != nil {
		return err
	}
	size := len(first.Data)
	var acked atomic.Int64
	m, err := measure(ctx, nil, func() error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return r.publishAsync(gctx, n, gen) })
		g.Go(func() error {
			for acked.Load() < int64(n) {
				b, err := cons.FetchNoWait(500)
				if err != nil {
					return err
				}
				got := 0
				for msg := range b.Messages() {
					if err := msg.Ack(); err != nil {
						return err
					}
					got++
				}
				if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
					return err
				}
				acked.Add(int64(got))
				if got == 0 {
					b, err := cons.Fetch(500, jetstream.FetchMaxWait(100*time.Millisecond))
					if err != nil {
						return err
					}
					for msg := range b.Messages() {
						if err := msg.Ack(); err != nil {
							return err
						}
						acked.Add(1)
					}
				}
				if gctx.Err() != nil {
					return gctx.Err()
				}
			}
			// Acks are asynchronous: wait until the server saw them all.
			for {
				info, err := cons.Info(gctx)
				if err != nil {
					return err
				}
				if info.NumAckPending == 0 {
					return nil
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
		return g.Wait()
	})
	if err != nil {
		return fmt.Errorf("limit jetstream: %w", err)
	}
	r.lim.js = m.rate(int64(n))
	r.add(m.row(Row{Workload: "limit.jetstream", Name: "Limit: JetStream async publish + fetch + ack",
		Value: r.lim.js, Unit: "msgs/s", Note: fmt.Sprintf("%d-byte CloudEvents with Nats-Msg-Id, file storage, fetch 500", size)}, int64(n)))
	return nil
}

// limitSMTP: go-mail composes and sends messages shaped like Nurture's
// (multipart/alternative, same HTML) on one connection to the sink.
func (r *run) limitSMTP(ctx context.Context) error {
	n := r.sz.LimitSMTP
	sink, err := startSink()
	if err != nil {
		return err
	}
	r.sink = sink
	html, text, subject, err := sampleEmail(r.bundle)
	if err != nil {
		return err
	}
	c, err := gomail.NewClient(sink.host, gomail.WithPort(sink.port), gomail.WithTLSPolicy(gomail.NoTLS),
		gomail.WithoutNoop(), gomail.WithTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("limit smtp client: %w", err)
	}
	before := sink.count.Load()
	m, err := measure(ctx, nil, func() error {
		if err := c.DialWithContext(ctx); err != nil {
			return fmt.Errorf("dial sink: %w", err)
		}
		defer func() { _ = c.Close() }()
		for i := range n {
			msg := gomail.NewMsg()
			if err := msg.From("Maya from Bench <maya@bench.example>"); err != nil {
				return err
			}
			if err := msg.To(fmt.Sprintf("lead-%08d@bench.example", i)); err != nil {
				return err
			}
			msg.Subject(subject)
			msg.SetMessageIDWithValue(fmt.Sprintf("limit-%d@bench.example", i))
			msg.SetGenHeader("List-Unsubscribe", "<https://bench.example/u/xxxxxxxxxxxxxxxxxxxxxxxx>")
			msg.SetGenHeader("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
			msg.SetBodyString(gomail.TypeTextPlain, text)
			msg.AddAlternativeString(gomail.TypeTextHTML, html)
			if err := c.Send(msg); err != nil {
				return fmt.Errorf("send %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("limit smtp: %w", err)
	}
	if got := sink.count.Load() - before; got != int64(n) {
		return fmt.Errorf("limit smtp: the sink received %d of %d messages", got, n)
	}
	r.lim.smtp = m.rate(int64(n))
	r.add(m.row(Row{Workload: "limit.smtp", Name: "Limit: go-mail to local SMTP sink (1 connection)",
		Value: r.lim.smtp, Unit: "emails/s", Note: "go-mail v0.8.1, in-process go-smtp sink that discards"}, int64(n)))
	return nil
}

// sampleEmail renders the bench's welcome template for a typical lead.
func sampleEmail(b *sequences.Bundle) (html, text, subject string, err error) {
	t := b.Templates["welcome"]
	if t == nil {
		return "", "", "", errors.New("bench content has no welcome template")
	}
	lead := map[string]any{"email": "lead@bench.example"}
	for k, v := range signupTraits {
		lead[k] = v
	}
	out, err := t.Render(sequences.RenderData{Lead: lead, UnsubscribeURL: "https://bench.example/u/xxxxxxxxxxxxxxxxxxxxxxxx"})
	if err != nil {
		return "", "", "", fmt.Errorf("render sample email: %w", err)
	}
	text = out.Text
	if text == "" {
		text = "Hi Alex,\n\nYour Bench workspace for Northwind Traders is ready.\n"
	}
	return out.HTML, text, out.Subject, nil
}
