package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
)

func TestUnsubscribeSuppressesTheAddressTheEmailWentTo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		leadEmail string
		payloadTo string // "" removes the send's outbox record
		want      string
	}{
		{"lead changed address since the send", "ada@new.example", "ada@customer.example", "ada@customer.example"},
		{"display-name form", "ada@customer.example", "Ada <Ada@Customer.example>", "Ada@Customer.example"},
		{"send record gone: lead's address", "ada@new.example", "", "ada@new.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := trkSetup(t)
			b.state.leads["lead-1"].Email = tt.leadEmail
			if tt.payloadTo == "" {
				delete(b.state.payloads, "snd-1")
			} else {
				p := b.state.payloads["snd-1"]
				p.To = tt.payloadTo
				b.state.payloads["snd-1"] = p
			}
			res := b.do(t, "POST", pathOf(b.urls.Unsubscribe(b.ref)), "List-Unsubscribe=One-Click")
			require.Equal(t, http.StatusOK, res.StatusCode)
			require.Equal(t, map[string]string{tt.want: "unsubscribed"}, b.state.suppressed)
		})
	}
}

// lockedBuffer is a log sink safe for concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// failingLinks fails re-rendering with an error that quotes the address.
type failingLinks struct{}

func (failingLinks) Links(context.Context, outbox.EmailPayload) ([]string, error) {
	return nil, errors.New("render for ada@customer.example failed")
}

func TestTrackingLogsCarryNoEmailAddresses(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	// The lead key is an address; the send id embeds it escaped.
	const key, send = "ada@customer.example", "ada%40customer%2Eexample.trial-1.welcome"
	b.state.leads[key] = &engine.Lead{Key: key, Email: key}
	b.state.payloads[send] = outbox.EmailPayload{Send: engine.SendEmail{SendID: send, Template: "welcome"}, Lead: key, To: key}
	ref := b.ref
	ref.Lead, ref.Send, ref.LinkHash = key, send, "x"
	b.pub.fail = errors.New("nats: publish for ada@customer.example timed out")
	var logs lockedBuffer
	b.srv = httpapi.New(httpapi.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Tracking: &httpapi.TrackingConfig{
		Signer: b.signer, Publisher: b.pub, Sends: httpapi.OutboxSends{Reader: b.state}, Links: failingLinks{},
		Suppressor: b.state, Leads: b.state, Now: func() time.Time { return b.now },
	}})

	res := b.do(t, "POST", pathOf(b.urls.Unsubscribe(ref)), "List-Unsubscribe=One-Click")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	b.do(t, "GET", pathOf(b.urls.Open(ref)), "")
	res = b.do(t, "GET", pathOf(b.urls.Click(ref, 0, "https://example.com/x")), "")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)

	out := logs.String()
	require.Contains(t, out, "unsubscribe: publish")
	require.Contains(t, out, "publish engagement event")
	require.Contains(t, out, "resolve click")
	require.Contains(t, out, "<email>")
	require.NotContains(t, out, "customer.example", "logs: %s", out)
	require.NotContains(t, out, "customer%2Eexample", "logs: %s", out)
}
