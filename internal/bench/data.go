package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	natsgo "github.com/nats-io/nats.go"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

// Placeholders in the lead template: id-safe, so the engine's ids keep
// them verbatim.
const (
	keyPH = "XKEYX"
	duePH = "XDUEX"
)

// leadTemplate is a realistic lead document produced by the engine (a
// signed-up lead with traits, one enrollment waiting on its "pause" step,
// one email sent, a few page views scored), with placeholders for the key
// and the due time, so SQL can stamp out millions of them.
type leadTemplate struct {
	doc      string // JSON with keyPH and duePH
	score    float64
	enrollID string // with keyPH
	sequence string
	version  string
	step     string
	created  time.Time
}

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

func newLeadTemplate(eng *engine.Engine) (*leadTemplate, error) {
	l := engine.NewLead(keyPH, t0)
	desk := &engine.Desk{Reps: map[string]*engine.RepLoad{}}
	in := []*engine.Event{signup("ev-"+keyPH+"-0", keyPH, t0)}
	for i := 1; i <= 3; i++ {
		in = append(in, pageView(fmt.Sprintf("ev-%s-%d", keyPH, i), keyPH, t0.Add(time.Duration(i)*time.Minute), i))
	}
	for _, ev := range in {
		if _, err := eng.Apply(l, engine.Input{Now: ev.Time, Event: ev, Desk: desk}); err != nil {
			return nil, fmt.Errorf("bench lead template: %w", err)
		}
	}
	if len(l.Enrollments) != 1 || l.NextRunAt.IsZero() || !l.Enrollments[0].NextRunAt.Equal(l.NextRunAt) {
		return nil, fmt.Errorf("bench lead template: want one enrollment waiting, got %d (next run %s)", len(l.Enrollments), l.NextRunAt)
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, fmt.Errorf("bench lead template: %w", err)
	}
	due, _ := json.Marshal(l.NextRunAt)
	doc := string(b)
	if n := strings.Count(doc, string(due)); n != 2 {
		return nil, fmt.Errorf("bench lead template: due time appears %d times, want 2", n)
	}
	e := l.Enrollments[0]
	return &leadTemplate{
		doc: strings.ReplaceAll(doc, string(due), `"`+duePH+`"`), score: l.Score.Value,
		enrollID: e.ID, sequence: e.Sequence, version: e.Version, step: e.Step, created: t0,
	}, nil
}

// leadKey is the key of the i-th lead with prefix.
func leadKey(prefix string, i int) string { return fmt.Sprintf("%s%08d", prefix, i) }

var signupTraits = map[string]any{
	"first_name": "Alex", "last_name": "Morgan", "company": "Northwind Traders", "job_title": "Head of Data",
	"plan": "trial", "employees": 240, "country": "DE", "region": "emea", "timezone": "Europe/Berlin",
}

func signup(id, lead string, at time.Time) *engine.Event {
	return &engine.Event{ID: id, Type: "signed.up", Lead: lead, Time: at, Email: lead + "@bench.example",
		Traits: signupTraits, Properties: map[string]any{"source": "website", "campaign": "q1-trial"}}
}

var paths = []string{"/docs/getting-started", "/docs/connectors/postgres", "/pricing", "/blog/dashboards-that-work", "/docs/sharing"}

func pageView(id, lead string, at time.Time, i int) *engine.Event {
	return &engine.Event{ID: id, Type: "page.viewed", Lead: lead, Time: at,
		Properties: map[string]any{"path": paths[i%len(paths)], "referrer": "https://www.google.com/", "session": fmt.Sprintf("s-%d", i/7)}}
}

func demoRequest(id, lead string, at time.Time) *engine.Event {
	return &engine.Event{ID: id, Type: "demo.requested", Lead: lead, Time: at, Email: lead + "@bench.example",
		Traits: signupTraits, Properties: map[string]any{"form": "contact-sales", "message": "We would like a demo for 40 analysts."}}
}

// natsMsg encodes ev as the NATS message upstream would publish.
func natsMsg(ev *engine.Event) (*natsgo.Msg, error) {
	data, err := cloudevent.Encode(ev, "bench-upstream")
	if err != nil {
		return nil, err
	}
	m := natsgo.NewMsg(cloudevent.Subject("leads", ev.Type))
	m.Data = data
	m.Header.Set(natsgo.MsgIdHdr, ev.ID)
	return m, nil
}

// sqlTime formats a timestamptz the way encoding/json writes time.Time.
const sqlTime = `to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`

// load inserts leads prefix%08d for i in [from, to) into table (shaped
// like leads), due at base + (i-from)·step, with their enrollment rows
// when withEnrollments (table leads only). One statement per 100k leads.
func (t *leadTemplate) load(ctx context.Context, pool *pgxpool.Pool, table, prefix string, from, to int, base time.Time, step time.Duration, withEnrollments bool) error {
	const chunk = 100_000
	tbl := pgx.Identifier{table}.Sanitize()
	due := `$4::timestamptz + ((i - $8)::float8 * $5::float8) * interval '1 microsecond'`
	qLeads := `
INSERT INTO ` + tbl + ` (key, email, status, owner, score, next_run_at, state, created_at, updated_at)
SELECT k, k || '@bench.example', 'active', '', $6, due,
       replace(replace($1, 'XKEYX', k), 'XDUEX', ` + fmt.Sprintf(sqlTime, "due") + `)::jsonb, $7, $7
FROM (SELECT $2 || lpad(i::text, 8, '0') AS k, ` + due + ` AS due
      FROM generate_series($3::int, $9::int - 1) AS i) g`
	qEnroll := `
INSERT INTO enrollments (lead_key, id, sequence, version, step, status, next_run_at, started_at)
SELECT k, replace($1, 'XKEYX', k), $2, $3, $4, 'active', due, $5
FROM (SELECT $6 || lpad(i::text, 8, '0') AS k, $7::timestamptz + ((i - $10)::float8 * $8::float8) * interval '1 microsecond' AS due
      FROM generate_series($9::int, $11::int - 1) AS i) g`
	stepUS := float64(step) / float64(time.Microsecond)
	for lo := from; lo < to; lo += chunk {
		hi := min(lo+chunk, to)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, qLeads, t.doc, prefix, lo, base, stepUS, t.score, t.created, from, hi); err != nil {
				return fmt.Errorf("load leads %s[%d,%d): %w", prefix, lo, hi, err)
			}
			if !withEnrollments {
				return nil
			}
			if _, err := tx.Exec(ctx, qEnroll, t.enrollID, t.sequence, t.version, t.step, t.created,
				prefix, base, stepUS, lo, from, hi); err != nil {
				return fmt.Errorf("load enrollments %s[%d,%d): %w", prefix, lo, hi, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// makeDue sets the due time of the named leads (column and document) to due.
func makeDue(ctx context.Context, pool *pgxpool.Pool, keys []string, due time.Time) error {
	d, _ := json.Marshal(due.UTC())
	_, err := pool.Exec(ctx, `
UPDATE leads SET next_run_at = $2,
    state = jsonb_set(jsonb_set(state::jsonb, '{next_run_at}'::text[], $3::jsonb), '{enrollments,0,next_run_at}'::text[], $3::jsonb)
WHERE key = ANY($1::text[])`, keys, due, string(d))
	if err != nil {
		return fmt.Errorf("make %d leads due: %w", len(keys), err)
	}
	return nil
}
