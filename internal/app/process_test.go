package app

import (
	"context"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/engine"
)

// buildBinary compiles cmd/nurture into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nurture")
	cmd := exec.Command("go", "build", "-o", bin, "../../cmd/nurture")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

func envList(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// TestServeProcess1000Leads is the end-to-end check of issue 3: `nurture
// serve` runs as a separate process against PostgreSQL and a real
// nats-server process; events for 1,000 leads arrive over NATS (as an
// upstream system would publish them) and over the HTTP ingest API; the
// test then checks lead state, timers (one fires during the test, the next
// is pending), history, outbox, dead letters and the mail that arrived,
// and finally stops the process with SIGTERM.
func TestServeProcess1000Leads(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	t0 := time.Now()
	bin := buildBinary(t)
	t.Logf("built the binary in %s", time.Since(t0).Round(time.Millisecond))
	ns := natstest.StartProcess(t)
	sink := smtptest.Start(t)
	addr := freeAddr(t)
	const token = "process-test-token-1"
	const leads = 1000
	env := map[string]string{
		"NURTURE_DATABASE_URL":   dbURL,
		"NURTURE_NATS_URL":       ns.URL,
		"NURTURE_SMTP_URL":       sink.URL(),
		"NURTURE_HTTP_ADDR":      addr,
		"NURTURE_CONTENT_DIR":    "testdata/content-fast",
		"NURTURE_SECRET":         "process-test-secret-0123456789",
		"NURTURE_API_TOKENS":     token,
		"NURTURE_SWEEP_INTERVAL": "200ms",
		"NURTURE_BATCH_SIZE":     "200",
	}
	ctx := context.Background()

	migrate := exec.Command(bin, "migrate")
	migrate.Env = envList(env)
	out, err := migrate.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "up to date")

	var logs syncBuffer
	serve := exec.Command(bin, "serve")
	serve.Env = envList(env)
	serve.Stdout = &logs
	serve.Stderr = &logs
	require.NoError(t, serve.Start())
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	t.Cleanup(func() {
		if serve.ProcessState == nil {
			_ = serve.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Log("serve output:\n" + tail(logs.String(), 60))
		}
	})
	waitReady(t, addr, 60*time.Second, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("exited: %v\n%s", err, logs.String())
		default:
			return nil
		}
	})

	t.Logf("serve ready after %s", time.Since(t0).Round(time.Millisecond))

	// Upstream publishes to NATS: one signed.up per lead, in order, then
	// account.closed for the first 50 (they exit the sequence), then the
	// signed.up of the first 100 again with the same ids (duplicates).
	conn, err := natsadapter.Connect(ctx, natsadapter.Options{URL: ns.URL, Name: "process-test"})
	require.NoError(t, err)
	defer conn.Close()
	pub := conn.Publisher("crm")
	start := time.Now().UTC().Truncate(time.Second)
	var outs []natsadapter.Out
	add := func(ev *engine.Event) {
		o, err := natsadapter.EventOut(ev, "crm")
		require.NoError(t, err)
		outs = append(outs, o)
	}
	for i := range leads {
		add(&engine.Event{ID: fmt.Sprintf("signup-%d", i), Type: "signed.up", Lead: fmt.Sprintf("lead-%04d", i), Time: start,
			Email: fmt.Sprintf("lead%d@example.com", i), Traits: map[string]any{"first_name": fmt.Sprintf("Lead%d", i)}})
	}
	for i := range 50 {
		add(&engine.Event{ID: fmt.Sprintf("closed-%d", i), Type: "account.closed", Lead: fmt.Sprintf("lead-%04d", i), Time: start})
	}
	for i := range 100 {
		add(&engine.Event{ID: fmt.Sprintf("signup-%d", i), Type: "signed.up", Lead: fmt.Sprintf("lead-%04d", i), Time: start,
			Email: fmt.Sprintf("lead%d@example.com", i)})
	}
	require.NoError(t, pub.PublishBatch(ctx, outs))
	// Two messages that can never apply go to the dead letters.
	require.NoError(t, pub.Publish(ctx, "leads.broken", []byte(`{"specversion":"1.0","id":`), "bad-1"))
	require.NoError(t, pub.Publish(ctx, "leads.broken", []byte(`{"specversion":"1.0","id":"bad-2","type":"x","source":"s"}`), "bad-2"))

	// The website posts page views for leads 100–199 over HTTP, in batches.
	for b := 0; b < 100; b += 25 {
		var evs []string
		for i := 100 + b; i < 100+b+25; i++ {
			evs = append(evs, fmt.Sprintf(`{"specversion":"1.0","id":"view-%d","source":"web","type":"page.viewed","subject":"lead-%04d","data":{"properties":{"path":"/pricing"}}}`, i, i))
		}
		code, body := postEvents(t, addr, token, "application/cloudevents-batch+json", "["+strings.Join(evs, ",")+"]")
		require.Equal(t, 202, code, body)
	}

	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	count := func(q string, args ...any) int {
		var n int
		require.NoError(t, db.QueryRow(ctx, q, args...).Scan(&n), q)
		return n
	}

	// Every unique event id is applied exactly once; the bad ones are dead.
	const unique = leads + 50 + 100
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM processed_events`) == unique
	}, 120*time.Second, 200*time.Millisecond, "processed events")
	require.Eventually(t, func() bool { return count(`SELECT count(*) FROM dead_letters`) == 2 },
		30*time.Second, 100*time.Millisecond, "dead letters")

	t.Logf("all events applied after %s", time.Since(t0).Round(time.Millisecond))

	// Timers: the 3s pause fires for the 950 leads still enrolled, sending
	// the follow-up; then each waits 30 days.
	const active = leads - 50
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM enrollments WHERE step='rest' AND status='active'`) == active
	}, 120*time.Second, 200*time.Millisecond, "enrollments past the timer")
	require.Eventually(t, func() bool {
		return count(`SELECT count(*) FROM outbox WHERE kind='email' AND status='sent'`) == leads+active
	}, 120*time.Second, 200*time.Millisecond, "emails sent")

	t.Logf("timers fired and emails sent after %s", time.Since(t0).Round(time.Millisecond))

	// State.
	require.Equal(t, leads, count(`SELECT count(*) FROM leads`))
	require.Equal(t, leads, count(`SELECT count(*) FROM leads WHERE email <> '' AND status='active'`))
	require.Equal(t, 50, count(`SELECT count(*) FROM enrollments WHERE status='exited'`))
	require.Equal(t, 50, count(`SELECT count(*) FROM enrollments WHERE status='exited' AND lead_key < 'lead-0050'`))
	require.Equal(t, leads, count(`SELECT count(*) FROM enrollments`), "one enrollment per lead: the duplicate signed.up did not re-enroll")
	// Scores: 5 for signing up, +10 for the pricing page view.
	require.Equal(t, 100, count(`SELECT count(*) FROM leads WHERE score = 15`))
	require.Equal(t, leads-100, count(`SELECT count(*) FROM leads WHERE score = 5`))

	// Timers: pending ones are ~30 days out, on the enrollment and the lead.
	var minNext, maxNext time.Time
	require.NoError(t, db.QueryRow(ctx, `SELECT min(next_run_at), max(next_run_at) FROM enrollments WHERE status='active'`).Scan(&minNext, &maxNext))
	require.WithinDuration(t, start.Add(30*24*time.Hour), minNext, 10*time.Minute)
	require.WithinDuration(t, start.Add(30*24*time.Hour), maxNext, 10*time.Minute)
	require.Equal(t, active, count(`SELECT count(*) FROM leads WHERE next_run_at IS NOT NULL`))
	require.Equal(t, 0, count(`SELECT count(*) FROM enrollments WHERE status='active' AND next_run_at <= now()`), "nothing overdue")

	// History: every applied event is on its lead's timeline once.
	require.Equal(t, unique, count(`SELECT count(*) FROM history WHERE kind='event'`))
	require.Equal(t, unique, count(`SELECT count(DISTINCT event_id) FROM history WHERE kind='event'`))
	require.Equal(t, 2, count(`SELECT count(*) FROM history WHERE lead_key='lead-0100' AND kind='event'`))

	// Outbox: one email per (lead, step), each sent once.
	require.Equal(t, leads+active, count(`SELECT count(*) FROM outbox WHERE kind='email'`))
	require.Equal(t, leads+active, count(`SELECT count(DISTINCT dedupe_key) FROM outbox WHERE kind='email'`))
	require.Equal(t, 0, count(`SELECT count(*) FROM outbox WHERE kind='email' AND attempts <> 1`))

	// The mail that arrived: exactly one hello per lead and one follow-up
	// per lead still enrolled, never a duplicate.
	msgs := sink.Wait(leads+active, 30*time.Second)
	require.Len(t, msgs, leads+active)
	seen := map[string]int{}
	for _, m := range msgs {
		parsed, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		require.NoError(t, err)
		subject := parsed.Header.Get("Subject")
		kind := "hello"
		if strings.HasPrefix(subject, "Still there") {
			kind = "followup"
		}
		require.Len(t, m.To, 1)
		seen[m.To[0]+" "+kind]++
		require.NotEmpty(t, parsed.Header.Get("List-Unsubscribe"))
	}
	for key, n := range seen {
		require.Equal(t, 1, n, "%s delivered %d times", key, n)
	}
	require.Equal(t, 1, seen["lead0@example.com hello"])
	require.Zero(t, seen["lead0@example.com followup"], "lead 0 exited before the timer")
	require.Equal(t, 1, seen["lead999@example.com followup"])

	// SIGTERM: a clean, prompt exit.
	require.NoError(t, serve.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, tail(logs.String(), 40))
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not exit within 40s of SIGTERM")
	}
	l := logs.String()
	require.Contains(t, l, `"msg":"serve stopped"`)
	require.NotContains(t, l, "@example.com", "logs carry no email addresses")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
