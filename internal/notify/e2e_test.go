package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/adapters/slack"
	"github.com/nurture-oss/nurture/adapters/webhook"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/examples"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/notify"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/testdb"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
)

// The end-to-end escalation test runs the real parts: an embedded
// nats-server (JetStream), PostgreSQL, the runner with the example content
// (examples/scoring.yaml: threshold 100, re-arm below 60, 14-day half-life,
// territory routing), the Slack and webhook adapters against real HTTP
// receivers, and the HTTP API for the acknowledgement.

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time)     { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// hookReceiver is a CRM-like endpoint verifying every request with the
// independent Standard Webhooks library; it fails the first attempt of
// every notification whose id is in failFirst.
type hookReceiver struct {
	wh        *standardwebhooks.Webhook
	mu        sync.Mutex
	requests  []hookRequest
	failFirst map[string]bool
}

type hookRequest struct {
	id       string
	verified error
	payload  webhook.Payload
	status   int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := hookRequest{id: r.Header.Get("webhook-id"), verified: h.wh.Verify(body, r.Header), status: http.StatusOK}
	_ = json.Unmarshal(body, &req.payload)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failFirst[req.id] {
		delete(h.failFirst, req.id)
		req.status = http.StatusServiceUnavailable
	}
	h.requests = append(h.requests, req)
	w.WriteHeader(req.status)
}

func (h *hookReceiver) all() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.requests...)
}

// delivered are the accepted notifications by webhook-id (what a receiver
// that dedupes on webhook-id processes).
func (h *hookReceiver) delivered() map[string]webhook.Payload {
	out := map[string]webhook.Payload{}
	for _, r := range h.all() {
		if r.status == http.StatusOK && r.verified == nil {
			out[r.id] = r.payload
		}
	}
	return out
}

type slackReceiver struct {
	mu   sync.Mutex
	msgs []slack.Message
	bad  int
}

func (s *slackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m slack.Message
	err := json.NewDecoder(r.Body).Decode(&m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || m.Text == "" || len(m.Blocks) == 0 || m.Blocks[0].Type != "header" {
		s.bad++
		http.Error(w, "invalid_blocks", http.StatusBadRequest)
		return
	}
	s.msgs = append(s.msgs, m)
	_, _ = w.Write([]byte("ok"))
}

func (s *slackReceiver) all() []slack.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]slack.Message(nil), s.msgs...)
}

func TestEscalationEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := testdb.New(t)
	st, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(ctx))

	srv := natstest.Start(t)
	conn := natstest.Connect(t, srv.URL, nats.Options{AckWait: 5 * time.Second, FetchWait: 100 * time.Millisecond})
	pub := conn.Publisher("e2e")

	bundle, err := sequences.LoadFS(examples.FS)
	require.NoError(t, err)
	scoring := bundle.Content.Scoring
	require.Equal(t, 100.0, scoring.Threshold)
	require.Equal(t, 60.0, scoring.Rearm)

	// Real receivers.
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	hooks := &hookReceiver{wh: wh, failFirst: map[string]bool{"lena.escalation-1": true}}
	hookSrv := httptest.NewServer(hooks)
	t.Cleanup(hookSrv.Close)
	slackRcv := &slackReceiver{}
	slackSrv := httptest.NewServer(slackRcv)
	t.Cleanup(slackSrv.Close)

	// The app's wiring, by hand.
	clk := &clock{t: time.Date(2026, 3, 3, 9, 0, 0, 0, time.UTC)}
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("e2e-secret-0123456789abcdef")})
	require.NoError(t, err)
	mux := http.NewServeMux()
	api := httptest.NewServer(mux)
	t.Cleanup(api.Close)
	views := leadview.NewBuilder(api.URL, scoring)
	views.AckToken = func(c leadview.AckClaim) (string, error) { return signer.Sign(leadview.AckPurpose, c.Encode()), nil }
	views.LeadToken = func(k string) (string, error) { return signer.Sign(leadview.PagePurpose, []byte(k)), nil }
	mux.Handle("/", httpapi.New(httpapi.Config{PublicURL: api.URL, Leads: &httpapi.LeadsConfig{
		Store: st, Views: views, Tokens: []string{"e2e-token"}, Links: signer, Publisher: conn.Publisher("e2e-ack"),
		Reps: st, Now: clk.Now,
	}}))

	sl, err := slack.New(slack.Config{WebhookURL: slackSrv.URL + "/services/T0/B0/secret"})
	require.NoError(t, err)
	// webhook-timestamp is wall time (receivers check it against their clock).
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: hookSrv.URL, Secret: secret})
	require.NoError(t, err)
	nh := notify.New(notify.Config{
		Store: st, Views: views,
		Slack:    map[string]notify.Notifier{"sdr-alerts": sl},
		Webhooks: map[string]notify.Notifier{"crm": ep},
		Now:      clk.Now,
	})
	handlers := nh.Handlers()
	delete(handlers, store.KindNotifyEmail) // no rep mailer here: the email has its own tests
	cons, err := conn.Consumer(ctx)
	require.NoError(t, err)
	rn, err := runner.New(runner.Config{
		Store: st, Content: bundle.Content, Consumer: runner.AdaptConsumer[*nats.Msg](cons), Publisher: conn.Publisher("nurture"),
		Handlers:   handlers,
		Channels:   []runner.Channel{{Kind: store.KindNotifySlack, Name: "sdr-alerts"}, {Kind: store.KindNotifyWebhook, Name: "crm"}},
		Registerer: prometheus.NewRegistry(), Now: clk.Now, Jitter: func() float64 { return 0 },
		SweepInterval: 20 * time.Millisecond, DispatchPoll: 20 * time.Millisecond,
		RetryBase: time.Second, BatchSize: 50,
	})
	require.NoError(t, err)
	runCtx, stop := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- rn.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-runDone:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("runner did not stop")
		}
	})

	seq := 0
	send := func(typ string, props map[string]any) {
		t.Helper()
		seq++
		ev := &engine.Event{ID: fmt.Sprintf("lena-%02d", seq), Type: typ, Lead: "lena", Time: clk.Now(), Properties: props}
		if typ == "trial.started" {
			ev.Email = "lena@lumen-customer.example"
			ev.Traits = map[string]any{"first_name": "Lena", "last_name": "Lang", "company": "Linde", "employees": 300, "region": "emea", "plan": "trial", "timezone": "Europe/Berlin"}
		}
		require.NoError(t, pub.PublishEvent(ctx, ev))
		clk.Add(time.Minute)
	}
	lead := func() *engine.Lead {
		l, err := st.Lead(ctx, "lena")
		require.NoError(t, err)
		return l
	}
	applied := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			h, err := st.History(ctx, "lena", 1000)
			require.NoError(t, err)
			c := 0
			for _, e := range h {
				if e.Kind == "event" {
					c++
				}
			}
			return c >= n
		}, 20*time.Second, 20*time.Millisecond, "%d events applied", n)
	}

	// 1. Engagement below the threshold: no escalation.
	send("trial.started", nil)                              // +20 (employees ≥ 200)
	send("page.viewed", map[string]any{"path": "/pricing"}) // +15
	send("page.viewed", map[string]any{"path": "/pricing"}) // +15 (cap 30/day)
	send("teammate.invited", nil)                           // +30 → 80
	send("page.viewed", map[string]any{"path": "/pricing"}) // capped: +0
	applied(5)
	require.Nil(t, lead().Escalation)
	require.InDelta(t, 80, lead().Score.Value, 0.1)
	require.NotEmpty(t, lead().Enrollments)

	// 2. The crossing event, published twice (an upstream retry with the same id).
	send("demo.requested", nil) // +60 → 140: escalates
	dup := &engine.Event{ID: "lena-06", Type: "demo.requested", Lead: "lena", Time: clk.Now()}
	require.NoError(t, pub.PublishEvent(ctx, dup))
	// … and replayed after the stream's duplicate window (a fresh message
	// id): the event id is applied once all the same.
	out, err := nats.EventOut(dup, "e2e")
	require.NoError(t, err)
	require.NoError(t, pub.Publish(ctx, out.Subject, out.Data, "replay-lena-06"))
	applied(6)
	require.Eventually(t, func() bool { return len(slackRcv.all()) == 1 }, 20*time.Second, 20*time.Millisecond, "one Slack message")

	l := lead()
	require.NotNil(t, l.Escalation)
	require.Equal(t, "lena.escalation-1", l.Escalation.ID)
	require.Equal(t, "clara", l.Escalation.Rep, "territory emea → clara")
	require.Equal(t, "clara", l.Owner)
	require.False(t, l.Armed)
	for _, e := range l.Enrollments {
		require.True(t, e.Status.Ended(), "sequence %s must stop on escalation, is %s", e.Sequence, e.Status)
	}

	// The receiver failed the first webhook attempt (503): the dispatcher
	// retries after its backoff with the same webhook-id.
	require.Eventually(t, func() bool { return len(hooks.all()) >= 1 }, 20*time.Second, 20*time.Millisecond)
	clk.Add(5 * time.Second)
	if !assertEventually(t, func() bool { return len(hooks.delivered()) == 1 }) {
		items, _ := st.ListOutbox(ctx, store.OutboxFilter{LeadKey: "lena", Limit: 100})
		for _, it := range items {
			t.Logf("%s %s %s attempts=%d next=%s err=%s", it.Kind, it.DedupeKey, it.Status, it.Attempts, it.NextAttemptAt, it.LastError)
		}
		for _, r := range hooks.all() {
			t.Logf("hook %s %d %v", r.id, r.status, r.verified)
		}
		t.Logf("clock %s", clk.Now())
		t.FailNow()
	}

	p := hooks.delivered()["lena.escalation-1"]
	require.Equal(t, "lead.escalated", p.Type)
	require.Equal(t, "Lena Lang", p.Data.Lead.Name)
	require.Equal(t, "Linde", p.Data.Lead.Company)
	require.Equal(t, "lena@lumen-customer.example", p.Data.Lead.Email)
	require.Equal(t, "clara", p.Data.Escalation.Rep.ID)
	require.Equal(t, "Clara Weber", p.Data.Escalation.Rep.Name)
	require.GreaterOrEqual(t, p.Data.Escalation.Score, 100.0)
	require.Equal(t, "demo-requested", p.Data.TopContributors[0].Rule)
	require.True(t, strings.HasPrefix(p.Data.Lead.URL, api.URL+"/leads/lena?t="))
	require.True(t, strings.HasPrefix(p.Data.Escalation.AckURL, api.URL+"/ack/"))

	msg := slackRcv.all()[0]
	require.Contains(t, msg.Text, "Lena Lang (Linde)")
	require.Contains(t, msg.Text, "Clara Weber")
	blocks, _ := json.Marshal(msg.Blocks)
	require.Contains(t, string(blocks), "demo.requested")
	require.Contains(t, string(blocks), "lena.escalation-1")

	// 3. The rep acknowledges through the API; the engine records it.
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/v1/escalations/lena.escalation-1/ack", strings.NewReader(`{"rep":"clara"}`))
	req.Header.Set("Authorization", "Bearer e2e-token")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	require.Eventually(t, func() bool { return lead().Escalation.AckedBy == "clara" }, 20*time.Second, 20*time.Millisecond, "ack recorded")

	// 4. More engagement while escalated: no second escalation.
	send("dashboard.created", nil) // +25
	send("webinar.attended", nil)  // +20
	applied(9)
	time.Sleep(300 * time.Millisecond) // let any (wrong) notification show
	require.Equal(t, 1, lead().Crossings)
	require.Len(t, slackRcv.all(), 1)
	require.Len(t, hooks.delivered(), 1)

	// 5. Sixty days later the score has decayed below the re-arm mark (60);
	// new intent crosses 100 once more: a second escalation, once.
	clk.Add(60 * 24 * time.Hour)
	send("page.viewed", map[string]any{"path": "/docs/sso"}) // +2, re-arms
	applied(10)
	require.Eventually(t, func() bool { return lead().Armed }, 20*time.Second, 20*time.Millisecond, "re-armed below 60")
	require.Len(t, slackRcv.all(), 1)
	send("demo.requested", nil)                             // +60
	send("page.viewed", map[string]any{"path": "/pricing"}) // +15
	send("teammate.invited", nil)                           // +30 → crosses
	applied(13)
	require.Eventually(t, func() bool { return len(slackRcv.all()) == 2 && len(hooks.delivered()) == 2 }, 20*time.Second, 20*time.Millisecond, "second crossing notified")
	require.Equal(t, "lena.escalation-2", lead().Escalation.ID)
	require.Equal(t, 2, lead().Crossings)
	send("dashboard.created", nil)
	applied(14)
	time.Sleep(300 * time.Millisecond)

	// Exactly one logical notification per crossing per channel; every
	// request signed validly; retries reuse the webhook-id.
	require.Len(t, slackRcv.all(), 2)
	require.Zero(t, slackRcv.bad)
	ids := map[string]int{}
	for _, r := range hooks.all() {
		require.NoError(t, r.verified, "signature of %s", r.id)
		ids[r.id]++
	}
	require.Equal(t, map[string]int{"lena.escalation-1": 2, "lena.escalation-2": 1}, ids)

	// Every notification item ended sent.
	items, err := st.ListOutbox(ctx, store.OutboxFilter{LeadKey: "lena", Limit: 100})
	require.NoError(t, err)
	var notes int
	for _, it := range items {
		if it.Kind == store.KindNotifySlack || it.Kind == store.KindNotifyWebhook {
			notes++
			require.Equal(t, store.StatusSent, it.Status, "%s %s: %s", it.Kind, it.DedupeKey, it.LastError)
			var np outbox.NotifyPayload
			require.NoError(t, json.Unmarshal(it.Payload, &np))
		}
	}
	require.Equal(t, 4, notes)

	// lead.escalated went out on NATS once per crossing.
	stream, err := conn.JetStream().Stream(ctx, nats.NurtureStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("nurture.lead.escalated"))
	require.NoError(t, err)
	require.Equal(t, uint64(2), info.State.Subjects["nurture.lead.escalated"])
}

func assertEventually(t *testing.T, f func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if f() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
