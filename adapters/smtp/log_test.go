package smtp_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/internal/outbox"
)

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

// TestLogsCarryNoEmailAddresses: the policy-rejection warning names the
// send and the lead, but lead keys that are addresses, send ids that embed
// them and SMTP replies that quote the recipient are redacted.
func TestLogsCarryNoEmailAddresses(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	var logs syncBuffer
	d, err := smtp.ParseURL(b.sink.URL())
	require.NoError(t, err)
	m, err := smtp.New(smtp.Config{Dial: d, Pool: 1, Timeout: 5 * time.Second,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, b.composer)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	b.sink.SetFault(smtptest.StageRcpt, smtptest.Fault{Code: 550, Enhanced: [3]int{5, 7, 1},
		Message: "<lead@customer.example>: sender not authorised"}, true)
	p := payload("lead%40customer%2Eexample.trial-1.welcome", "welcome", nil)
	p.Lead = "lead@customer.example"
	err = m.Deliver(context.Background(), item(t, p))
	require.Equal(t, outbox.Permanent, outbox.Classify(err), "err: %v", err)

	out := logs.String()
	require.Contains(t, out, "smtp policy rejection")
	require.Contains(t, out, `"send_id":"<email>.trial-1.welcome"`)
	require.Contains(t, out, `"lead_id":"<email>"`)
	require.NotContains(t, out, "customer.example", "logs: %s", out)
	require.NotContains(t, out, "customer%2Eexample", "logs: %s", out)
}
