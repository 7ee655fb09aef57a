package webhook_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/webhook"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/outbox"
)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func view(escID string, attempt int) leadview.View {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	return leadview.View{
		Key: "lead-42", Name: "Ada Lovelace", Company: "Analytical Engines", Email: "ada@example.com",
		Status: "active", Score: 87.5, Threshold: 80,
		Owner:      &leadview.Rep{ID: "sam", Name: "Sam Rivera", Email: "sam@example.com"},
		Escalation: &leadview.Escalation{ID: escID, Attempt: attempt, Rep: "sam", Score: 81, Reason: "round-robin among 2", At: at},
		Top:        []leadview.Contribution{{Rule: "demo", Event: "demo.requested", Points: 40, Count: 1}},
		Recent:     []leadview.Activity{{At: at, Kind: "event", Type: "demo.requested", Summary: "demo.requested", EventID: "e1", Points: 40}},
		LeadURL:    "https://nurture.example.com/leads/lead-42",
		AckURL:     "https://nurture.example.com/ack/tok",
		Now:        at.Add(time.Minute),
	}
}

// receiver is a real HTTP endpoint that verifies every request with the
// independent Standard Webhooks implementation.
type receiver struct {
	t       *testing.T
	wh      *standardwebhooks.Webhook
	mu      sync.Mutex
	invalid int
	ids     []string
	bodies  [][]byte
	respond func(n int, id string) (status int, header http.Header, delay time.Duration)
	n       int
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	r := &receiver{t: t, wh: wh}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	err := r.wh.Verify(body, req.Header)
	r.mu.Lock()
	if err != nil {
		r.invalid++
	}
	id := req.Header.Get("webhook-id")
	r.ids = append(r.ids, id)
	r.bodies = append(r.bodies, body)
	r.n++
	n := r.n
	respond := r.respond
	r.mu.Unlock()
	status, header, delay := http.StatusNoContent, http.Header(nil), time.Duration(0)
	if respond != nil {
		status, header, delay = respond(n, id)
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

func TestNotifySignedBodyVerifiesIndependently(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t)
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: srv.URL, Secret: secret})
	require.NoError(t, err)

	require.NoError(t, ep.Notify(context.Background(), view("esc-lead-42-1", 1)))

	require.Equal(t, 0, rcv.invalid)
	require.Equal(t, []string{"esc-lead-42-1"}, rcv.ids)
	var p webhook.Payload
	require.NoError(t, json.Unmarshal(rcv.bodies[0], &p))
	require.Equal(t, "lead.escalated", p.Type)
	require.Equal(t, "esc-lead-42-1", p.Data.Escalation.ID)
	require.Equal(t, "esc-lead-42-1", p.Data.Escalation.WebhookID)
	require.Equal(t, "sam", p.Data.Escalation.Rep.ID)
	require.Equal(t, "Sam Rivera", p.Data.Escalation.Rep.Name)
	require.Equal(t, "Ada Lovelace", p.Data.Lead.Name)
	require.Equal(t, "Analytical Engines", p.Data.Lead.Company)
	require.Equal(t, 87.5, p.Data.Lead.Score)
	require.Equal(t, "https://nurture.example.com/leads/lead-42", p.Data.Lead.URL)
	require.Equal(t, "https://nurture.example.com/ack/tok", p.Data.Escalation.AckURL)
	require.Len(t, p.Data.TopContributors, 1)
	require.Len(t, p.Data.RecentActivity, 1)
}

func TestSignMatchesIndependentImplementation(t *testing.T) {
	t.Parallel()
	key, err := webhook.DecodeSecret(secret)
	require.NoError(t, err)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	ts := time.Unix(1_700_000_000, 0)
	for _, body := range []string{`{}`, `{"a":"ü"}`, ""} {
		want, err := wh.Sign("msg_1", ts, []byte(body))
		require.NoError(t, err)
		require.Equal(t, want, webhook.Sign(key, "msg_1", ts, []byte(body)))
	}
}

func TestRerouteGetsItsOwnID(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t)
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: srv.URL, Secret: secret})
	require.NoError(t, err)
	require.NoError(t, ep.Notify(context.Background(), view("esc-9", 1)))
	require.NoError(t, ep.Notify(context.Background(), view("esc-9", 2)))
	require.Equal(t, []string{"esc-9", "esc-9/2"}, rcv.ids)
	require.Equal(t, 0, rcv.invalid)
}

// A receiver that fails 30% of first attempts (errors, throttling and
// timeouts): every notification ends delivered, all attempts of one
// notification carry the same webhook-id, and every signature is valid.
func TestFlakyReceiverSameIDValidSignatures(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t)
	rng := rand.New(rand.NewPCG(7, 11))
	var failFirst sync.Map // id → failure mode
	seen := map[string]bool{}
	var mu sync.Mutex
	rcv.respond = func(n int, id string) (int, http.Header, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if seen[id] {
			return http.StatusOK, nil, 0
		}
		seen[id] = true
		if rng.Float64() >= 0.3 {
			return http.StatusOK, nil, 0
		}
		mode := rng.IntN(4)
		failFirst.Store(id, mode)
		switch mode {
		case 0:
			return http.StatusInternalServerError, nil, 0
		case 1:
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}}, 0
		case 2:
			return http.StatusBadGateway, nil, 0
		default:
			return http.StatusOK, nil, 300 * time.Millisecond // longer than the client timeout
		}
	}
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: srv.URL, Secret: secret, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)

	const n = 60
	var retried atomic.Int32
	for i := range n {
		v := view(fmt.Sprintf("esc-lead-%d-1", i), 1)
		// The dispatcher's loop: retry transient failures.
		for attempt := 1; ; attempt++ {
			require.Less(t, attempt, 5, "notification %d never delivered", i)
			err := ep.Notify(context.Background(), v)
			if err == nil {
				break
			}
			require.Equal(t, outbox.Transient, outbox.Classify(err), "attempt %d: %v", attempt, err)
			if mode, ok := failFirst.Load(v.Escalation.ID); ok && mode.(int) == 1 {
				d, ok := outbox.RetryAfter(err)
				require.True(t, ok)
				require.Equal(t, 2*time.Second, d)
			}
			retried.Add(1)
		}
	}
	require.Positive(t, retried.Load(), "the receiver should have failed some first attempts")

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	require.Equal(t, 0, rcv.invalid, "every signature must verify")
	byID := map[string]int{}
	for _, id := range rcv.ids {
		byID[id]++
	}
	require.Len(t, byID, n, "one webhook-id per escalation, across retries")
	for i := range n {
		id := fmt.Sprintf("esc-lead-%d-1", i)
		_, failed := failFirst.Load(id)
		want := 1
		if failed {
			want = 2
		}
		require.Equal(t, want, byID[id], "requests for %s", id)
	}
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		header    http.Header
		wantClass outbox.Class
		wantAfter time.Duration
		disabled  bool
	}{
		{name: "ok", status: 200, wantClass: outbox.Delivered},
		{name: "accepted", status: 202, wantClass: outbox.Delivered},
		{name: "no content", status: 204, wantClass: outbox.Delivered},
		{name: "bad request", status: 400, wantClass: outbox.Permanent},
		{name: "unauthorized", status: 401, wantClass: outbox.Permanent},
		{name: "not found", status: 404, wantClass: outbox.Permanent},
		{name: "redirect not followed", status: 301, header: http.Header{"Location": {"/elsewhere"}}, wantClass: outbox.Permanent},
		{name: "gone disables", status: 410, wantClass: outbox.Permanent, disabled: true},
		{name: "request timeout", status: 408, wantClass: outbox.Transient},
		{name: "throttled", status: 429, header: http.Header{"Retry-After": {"30"}}, wantClass: outbox.Transient, wantAfter: 30 * time.Second},
		{name: "throttled without hint", status: 429, wantClass: outbox.Transient},
		{name: "server error", status: 500, wantClass: outbox.Transient},
		{name: "unavailable with date", status: 503, header: http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}, wantClass: outbox.Transient, wantAfter: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rcv, srv := newReceiver(t)
			rcv.respond = func(int, string) (int, http.Header, time.Duration) { return tt.status, tt.header, 0 }
			state := webhook.NewMemoryState()
			ep, err := webhook.New(webhook.Config{Name: "crm", URL: srv.URL, Secret: secret, State: state})
			require.NoError(t, err)
			err = ep.Notify(context.Background(), view("esc-1", 1))
			require.Equal(t, tt.wantClass, outbox.Classify(err), "err: %v", err)
			if err != nil {
				require.NotContains(t, err.Error(), srv.URL, "errors must not leak the endpoint URL")
			}
			d, _ := outbox.RetryAfter(err)
			require.InDelta(t, float64(tt.wantAfter), float64(d), float64(2*time.Second))
			off, _, _ := state.Disabled(context.Background(), "crm")
			require.Equal(t, tt.disabled, off)
			require.Equal(t, 1, rcv.n, "exactly one request (redirects are not followed)")
			if tt.disabled {
				require.ErrorIs(t, err, webhook.ErrDisabled)
				err = ep.Notify(context.Background(), view("esc-2", 1))
				require.ErrorIs(t, err, webhook.ErrDisabled)
				require.ErrorIs(t, err, outbox.ErrPermanent)
				require.Equal(t, 1, rcv.n, "a disabled endpoint gets no more requests")
			}
		})
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t)
	rcv.respond = func(int, string) (int, http.Header, time.Duration) { return 200, nil, 300 * time.Millisecond }
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: srv.URL, Secret: secret, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	err = ep.Notify(context.Background(), view("esc-1", 1))
	require.Error(t, err)
	require.Equal(t, outbox.Transient, outbox.Classify(err))
	require.True(t, errors.Is(err, context.DeadlineExceeded), "err: %v", err)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	short := "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))
	tests := []struct {
		name string
		cfg  webhook.Config
	}{
		{"no name", webhook.Config{URL: "https://x.example", Secret: secret}},
		{"bad url", webhook.Config{Name: "a", URL: "ftp://x", Secret: secret}},
		{"no prefix", webhook.Config{Name: "a", URL: "https://x.example", Secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		{"not base64", webhook.Config{Name: "a", URL: "https://x.example", Secret: "whsec_***"}},
		{"too short", webhook.Config{Name: "a", URL: "https://x.example", Secret: short}},
		{"bad format", webhook.Config{Name: "a", URL: "https://x.example", Secret: secret, Format: "salesforce"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := webhook.New(tt.cfg)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "MfKQ9r8", "errors must not echo the secret")
		})
	}
}

func TestHubSpotTaskFormat(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t)
	ep, err := webhook.New(webhook.Config{
		Name: "hubspot", URL: srv.URL, Secret: secret, Format: webhook.FormatHubSpotTask,
		HubSpotOwners: map[string]string{"sam": "512"},
		Headers:       map[string]string{"Authorization": "Bearer pat-test"},
	})
	require.NoError(t, err)
	require.NoError(t, ep.Notify(context.Background(), view("esc-7", 1)))
	require.Equal(t, 0, rcv.invalid)
	var task webhook.HubSpotTask
	require.NoError(t, json.Unmarshal(rcv.bodies[0], &task))
	require.Equal(t, "512", task.Properties["hubspot_owner_id"])
	require.Equal(t, "NOT_STARTED", task.Properties["hs_task_status"])
	require.Contains(t, task.Properties["hs_task_subject"], "Ada Lovelace")
	require.Contains(t, task.Properties["hs_task_body"], "https://nurture.example.com/leads/lead-42")
	require.Contains(t, task.Properties["hs_task_body"], "esc-7")
}

func TestErrorsCarryNoEmailAddresses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"owner of ada@example.com unknown"}`)
	}))
	t.Cleanup(srv.Close)
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: srv.URL, Secret: secret})
	require.NoError(t, err)
	v := view("ada%40example%2Ecom.escalation-1", 2)
	v.Key = "ada@example.com"
	err = ep.Notify(context.Background(), v)
	require.ErrorIs(t, err, outbox.ErrPermanent)
	require.NotContains(t, err.Error(), "ada@example.com", "error texts reach logs")
	require.NotContains(t, err.Error(), "ada%40example%2Ecom")
	require.Contains(t, err.Error(), "<email>.escalation-1/2")
}
