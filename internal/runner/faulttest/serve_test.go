package faulttest_test

import (
	"context"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
)

// serveProc is `nurture serve` as a child process.
type serveProc struct {
	t   *testing.T
	bin string
	env []string
	cmd *exec.Cmd
	log *os.File
}

func buildNurture(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nurture")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/nurture-oss/nurture/cmd/nurture")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build nurture: %s", out)
	return bin
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func (s *serveProc) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "serve")
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	require.NoError(s.t, s.cmd.Start())
}

func (s *serveProc) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// TestServeSIGKILLMidBatch runs the real `nurture serve` binary against
// PostgreSQL, a nats-server and an SMTP server, kills it with SIGKILL three
// times while it works through 3,000 events for 1,000 leads, restarts it,
// and checks that every event was applied once and no step email arrived
// twice.
func TestServeSIGKILLMidBatch(t *testing.T) {
	t.Parallel()
	dbURL := testDatabase(t)
	bin := buildNurture(t)
	ns := natstest.Start(t)
	conn := natstest.Connect(t, ns.URL, nats.Options{})
	sink := smtptest.Start(t)
	d := openDB(t, dbURL)
	content, err := filepath.Abs("testdata/content")
	require.NoError(t, err)
	logf, err := os.CreateTemp(t.TempDir(), "serve-*.log")
	require.NoError(t, err)
	s := &serveProc{t: t, bin: bin, log: logf, env: append(os.Environ(),
		"NURTURE_DATABASE_URL="+dbURL, "NURTURE_NATS_URL="+ns.URL, "NURTURE_SMTP_URL="+sink.URL(),
		"NURTURE_HTTP_ADDR="+freePort(t), "NURTURE_CONTENT_DIR="+content,
		"NURTURE_SECRET=fault-test-secret-0123456789abcdef", "NURTURE_BATCH_SIZE=200", "NURTURE_SWEEP_INTERVAL=200ms",
	)}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			lines := strings.Split(string(b), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			t.Logf("serve log (tail):\n%s", strings.Join(lines, "\n"))
		}
	})

	const leads = 1000
	evs := events(leads)
	publish(t, conn.Publisher("faulttest"), evs)
	s.start()
	for _, at := range []int{1, len(evs) / 3, 2 * len(evs) / 3} {
		deadline := time.Now().Add(60 * time.Second)
		for d.int(`SELECT count(*) FROM processed_events`) < at {
			require.True(t, time.Now().Before(deadline), "serve made no progress")
			time.Sleep(2 * time.Millisecond)
		}
		s.kill()
		s.start()
	}
	// Emails a killed process had claimed stay "sending" until their
	// lease (serve's default: 2 minutes) ends. Let that time pass: once
	// nothing else is in flight, end those leases in the database, and the
	// running serve's lease recovery must mark them unknown (not resend).
	deadline := time.Now().Add(60 * time.Second)
	for d.int(`SELECT count(*) FROM history WHERE kind = 'event'`) < len(evs) ||
		d.int(`SELECT count(*) FROM outbox WHERE kind = 'email' AND status IN ('pending', 'retry')`) > 0 {
		require.True(t, time.Now().Before(deadline), "serve did not catch up")
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // deliveries of the live process finish
	_, err = d.conn.Exec(context.Background(),
		`UPDATE outbox SET lease_until = now() - interval '1 second' WHERE kind = 'email' AND status = 'sending'`)
	require.NoError(t, err)
	d.waitSettled(len(evs), leads, 60*time.Second)

	// SIGTERM: a clean exit.
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not exit within 40s of SIGTERM")
	}
	s.cmd = nil

	require.Equal(t, len(evs), d.int(`SELECT count(*) FROM history WHERE kind = 'event'`), "each event applied once")
	require.Equal(t, len(evs), d.int(`SELECT count(DISTINCT event_id) FROM history WHERE kind = 'event'`))
	require.Zero(t, d.int(`SELECT count(*) FROM leads WHERE score <> 20`))
	require.Equal(t, leads, d.int(`SELECT count(*) FROM outbox WHERE kind = 'email'`), "one welcome email per lead")
	sent := d.int(`SELECT count(*) FROM outbox WHERE kind = 'email' AND status = 'sent'`)
	unknown := d.int(`SELECT count(*) FROM outbox WHERE kind = 'email' AND status = 'unknown'`)
	require.Equal(t, leads, sent+unknown, "every email sent or (killed mid hand-off) unknown")
	require.Zero(t, d.int(`SELECT count(*) FROM outbox WHERE kind = 'email' AND status = 'unknown' AND handed_at IS NULL`),
		"claimed but never handed off: retried and sent, never unknown")
	require.LessOrEqual(t, unknown, 3*64, "at most kills × DispatchBatch emails in flight (claimed, not recorded)")

	// What arrived: never the same step email twice.
	perID := map[string]int{}
	for _, m := range sink.Messages() {
		parsed, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		require.NoError(t, err)
		id := parsed.Header.Get("Message-Id")
		require.NotEmpty(t, id)
		perID[id]++
	}
	for id, n := range perID {
		require.Equal(t, 1, n, "message %s arrived %d times", id, n)
	}
	require.GreaterOrEqual(t, len(perID), sent, "every email recorded sent arrived")
	require.LessOrEqual(t, len(perID), leads)
	// Unknown emails that never arrived were handed off when serve was
	// killed but not yet on their way: at most DispatchWorkers per kill.
	require.LessOrEqual(t, unknown-(len(perID)-sent), 3*8, "at most kills × DispatchWorkers emails lost")
	t.Logf("serve killed 3 times: %d events applied once each; %d emails arrived once each (%d recorded sent, %d unknown: counted, not resent)",
		len(evs), len(perID), sent, unknown)
	b, _ := os.ReadFile(logf.Name())
	require.NotContains(t, string(b), "@example.com", "serve logs carry no email addresses")
}
