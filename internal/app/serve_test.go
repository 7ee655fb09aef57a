package app

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
	"github.com/nurture-oss/nurture/internal/testdb"
)

// testDatabase is internal/testdb.New: an empty database of its own,
// dropped at the end (migrate is what the tests exercise).
func testDatabase(t testing.TB) string { return testdb.New(t) }

// cli runs one nurture command line in process with env as its whole
// environment.
func cli(ctx context.Context, env map[string]string, args ...string) (stdout, stderr string, err error) {
	root := newRootCmd()
	var out, errb syncBuffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.ExecuteContext(withEnv(ctx, func(k string) string { return env[k] }))
	return out.String(), errb.String(), err
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger
// and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// waitReady polls http://addr/readyz until it answers 200.
func waitReady(t testing.TB, addr string, timeout time.Duration, failed func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if failed != nil {
			if err := failed(); err != nil {
				t.Fatalf("serve exited before it was ready: %v", err)
			}
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status + " " + string(body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not ready after %s: %s", timeout, last)
}

func postEvents(t testing.TB, addr, token, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/events", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMigrateThenServe runs `nurture migrate` then `nurture serve` on a
// fresh PostgreSQL database and an embedded NATS, sends an event through
// the HTTP ingest API, sees it applied and its email delivered, and shuts
// serve down by cancelling its context (what SIGTERM does).
func TestMigrateThenServe(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	ns := natstest.Start(t)
	sink := smtptest.Start(t)
	addr := freeAddr(t)
	const token = "serve-test-token-1"
	env := map[string]string{
		"NURTURE_DATABASE_URL":   dbURL,
		"NURTURE_NATS_URL":       ns.URL,
		"NURTURE_SMTP_URL":       sink.URL(),
		"NURTURE_HTTP_ADDR":      addr,
		"NURTURE_CONTENT_DIR":    "testdata/content",
		"NURTURE_SECRET":         "serve-test-secret-0123456789",
		"NURTURE_API_TOKENS":     token,
		"NURTURE_SWEEP_INTERVAL": "100ms",
		"NURTURE_LOG_LEVEL":      "debug",
	}
	ctx := context.Background()

	// serve refuses a database whose schema is behind.
	_, _, err := cli(ctx, env, "serve")
	require.ErrorContains(t, err, "database schema is behind")
	require.ErrorContains(t, err, "nurture migrate")

	out, _, err := cli(ctx, env, "migrate", "--status")
	require.NoError(t, err)
	require.Contains(t, out, "pending")
	require.Contains(t, out, "schema is behind")

	out, _, err = cli(ctx, env, "migrate")
	require.NoError(t, err)
	require.Contains(t, out, "up to date")
	out, _, err = cli(ctx, env, "migrate") // idempotent
	require.NoError(t, err)
	require.Contains(t, out, "up to date")

	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	type result struct {
		stderr string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		_, stderr, err := cli(serveCtx, env, "serve")
		done <- result{stderr, err}
	}()
	exited := func() error {
		select {
		case r := <-done:
			done <- r
			if r.err == nil {
				return io.EOF
			}
			return r.err
		default:
			return nil
		}
	}
	waitReady(t, addr, 30*time.Second, exited)

	resp, err := http.Get("http://" + addr + "/livez")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	code, body := postEvents(t, addr, token, "application/cloudevents+json",
		`{"specversion":"1.0","id":"evt-ana-1","source":"test","type":"signed.up","subject":"ana",
		  "data":{"email":"ana@example.com","traits":{"first_name":"Ana","plan":"pro"}}}`)
	require.Equal(t, http.StatusAccepted, code, body)
	code, _ = postEvents(t, addr, "wrong-token-xyz", "application/cloudevents+json", `{}`)
	require.Equal(t, http.StatusUnauthorized, code)

	msgs := sink.Wait(1, 30*time.Second)
	require.Len(t, msgs, 1)
	require.Contains(t, string(msgs[0].Data), "Hello Ana")
	require.Equal(t, []string{"ana@example.com"}, msgs[0].To)

	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer db.Close(ctx)
	require.Eventually(t, func() bool {
		var n int
		_ = db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE lead_key='ana' AND kind='email' AND status='sent'`).Scan(&n)
		return n == 1
	}, 20*time.Second, 50*time.Millisecond, "the welcome email is recorded as sent")
	var step, status string
	var next time.Time
	require.NoError(t, db.QueryRow(ctx,
		`SELECT step, status, next_run_at FROM enrollments WHERE lead_key='ana' AND sequence='welcome'`).Scan(&step, &status, &next))
	require.Equal(t, "pause", step)
	require.Equal(t, "active", status)
	require.WithinDuration(t, time.Now().Add(72*time.Hour), next, 5*time.Minute)
	var processed int
	require.NoError(t, db.QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE event_id='evt-ana-1'`).Scan(&processed))
	require.Equal(t, 1, processed)

	// A hot lead escalates: the rep gets an email through the same relay.
	code, body = postEvents(t, addr, token, "application/cloudevents+json",
		`{"specversion":"1.0","id":"evt-ana-2","source":"test","type":"demo.requested","subject":"ana"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	msgs = sink.Wait(2, 30*time.Second)
	require.Len(t, msgs, 2)
	rep := msgs[1]
	require.Equal(t, []string{"sam@nurture.test"}, rep.To)
	require.Equal(t, "desk@nurture.test", rep.From)
	require.Contains(t, string(rep.Data), "Ana")
	require.Eventually(t, func() bool {
		var n int
		_ = db.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE lead_key='ana' AND kind='notify.email' AND status='sent'`).Scan(&n)
		return n == 1
	}, 20*time.Second, 50*time.Millisecond, "the rep email is recorded as sent")
	var owner string
	require.NoError(t, db.QueryRow(ctx, `SELECT owner FROM leads WHERE key='ana'`).Scan(&owner))
	require.Equal(t, "sam", owner)

	metrics, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	mb, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	require.Contains(t, string(mb), "nurture_events_applied_total 2")
	require.Contains(t, string(mb), `nurture_ingest_events_total{outcome="accepted"} 2`)
	require.Contains(t, string(mb), `nurture_smtp_attempts_total{outcome="sent"} 1`)
	require.Contains(t, string(mb), "go_goroutines")

	// The other areas are wired: the lead API answers with the lead.
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/leads/ana", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	lr, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	lb, _ := io.ReadAll(lr.Body)
	lr.Body.Close()
	require.Equal(t, http.StatusOK, lr.StatusCode, string(lb))
	require.Contains(t, string(lb), `"welcome"`)

	// The container health check command sees the same readiness.
	out, _, err = cli(ctx, env, "healthcheck")
	require.NoError(t, err)
	require.Contains(t, out, "ready")

	// SIGTERM-equivalent: cancel the command's context.
	stop()
	select {
	case r := <-done:
		require.NoError(t, r.err, r.stderr)
		require.Contains(t, r.stderr, "shutting down")
		require.Contains(t, r.stderr, "serve stopped")
		require.NotContains(t, r.stderr, "ana@example.com", "logs carry no email addresses")
		require.NotContains(t, r.stderr, "serve-test-secret")
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of cancellation")
	}
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the HTTP listener is closed after shutdown")
}

func TestServeConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "nothing set", env: map[string]string{},
			want: []string{"NURTURE_DATABASE_URL", "NURTURE_SMTP_URL", "NURTURE_CONTENT_DIR", "NURTURE_SECRET"}},
		{name: "bad values", env: map[string]string{"NURTURE_DATABASE_URL": "mysql://x", "NURTURE_SMTP_URL": "http://x",
			"NURTURE_SECRET": "short", "NURTURE_CONTENT_DIR": "testdata/content"},
			want: []string{"NURTURE_DATABASE_URL", "NURTURE_SMTP_URL", "NURTURE_SECRET"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := cli(context.Background(), tt.env, "serve")
			require.Error(t, err)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestServeReadiness checks /readyz follows the NATS connection and that
// serve still shuts down cleanly while NATS is gone.
func TestServeReadiness(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	ns := natstest.Start(t)
	addr := freeAddr(t)
	env := map[string]string{
		"NURTURE_DATABASE_URL": dbURL, "NURTURE_NATS_URL": ns.URL, "NURTURE_SMTP_URL": "smtp://127.0.0.1:1",
		"NURTURE_HTTP_ADDR": addr, "NURTURE_CONTENT_DIR": "testdata/content", "NURTURE_SECRET": "readiness-secret-0123456789",
		"NURTURE_SHUTDOWN_TIMEOUT": "15s",
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	_, _, err := cli(ctx, env, "migrate")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, _, err := cli(ctx, env, "serve")
		done <- err
	}()
	waitReady(t, addr, 30*time.Second, nil)

	ns.Shutdown()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "nats")
	}, 10*time.Second, 50*time.Millisecond, "readyz reports NATS down")
	resp, err := http.Get("http://" + addr + "/livez")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "still alive")

	stop()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s while NATS was down")
	}
}

func TestPublishCommand(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	ctx := context.Background()
	env := map[string]string{"NURTURE_NATS_URL": ns.URL}

	// Without the stream (serve creates it) the error says so.
	_, _, err := cli(ctx, env, "publish", "--type", "trial.started", "--lead", "L1", "--timeout", "2s")
	require.ErrorContains(t, err, "nurture serve")

	conn, err := natsadapter.Connect(ctx, natsadapter.Options{URL: ns.URL})
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.EnsureStreams(ctx))

	out, _, err := cli(ctx, env, "publish", "--type", "trial.started", "--lead", "L1", "--email", "ana@example.com",
		"--traits", `{"plan":"trial","seats":3}`, "--properties", `{"source":"ads"}`, "--id", "evt-1",
		"--time", "2026-03-02T09:00:00+01:00")
	require.NoError(t, err)
	require.Equal(t, "published evt-1 to leads.trial.started: stream LEADS sequence 1\n", out)

	out, _, err = cli(ctx, env, "publish", "--type", "trial.started", "--lead", "L1", "--id", "evt-1")
	require.NoError(t, err)
	require.Contains(t, out, "sequence 1 (duplicate")

	out, _, err = cli(ctx, env, "publish", "--type", "page.viewed", "--lead", "L1") // random id
	require.NoError(t, err)
	require.Regexp(t, `^published [0-9a-f]{32} to leads.page.viewed: stream LEADS sequence 2\n$`, out)

	m, err := conn.JetStream().Stream(ctx, natsadapter.LeadsStream)
	require.NoError(t, err)
	raw, err := m.GetMsg(ctx, 1)
	require.NoError(t, err)
	ev, err := cloudevent.Parse(raw.Data)
	require.NoError(t, err)
	require.Equal(t, &engine.Event{ID: "evt-1", Type: "trial.started", Lead: "L1", Time: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC),
		Email: "ana@example.com", Traits: map[string]any{"plan": "trial", "seats": int64(3)},
		Properties: map[string]any{"source": "ads"}}, ev)

	for _, bad := range [][]string{
		{"--lead", "L1"},
		{"--type", "x", "--lead", "L1", "--traits", "[1]"},
		{"--type", "x", "--lead", "L1", "--time", "yesterday"},
	} {
		_, _, err := cli(ctx, env, append([]string{"publish"}, bad...)...)
		require.Error(t, err, bad)
	}
}
