package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/slack"
	"github.com/nurture-oss/nurture/adapters/webhook"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/notify"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// reader serves one lead from memory (the store adapters have their own
// conformance suite; this test is about the glue).
type reader struct {
	lead *engine.Lead
	hist []store.History
	err  error
}

func (r *reader) Lead(_ context.Context, key string) (*engine.Lead, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.lead == nil || r.lead.Key != key {
		return nil, store.ErrNotFound
	}
	return r.lead, nil
}

func (r *reader) History(context.Context, string, int) ([]store.History, error) { return r.hist, nil }

type bundle struct {
	h        *notify.Handler
	reader   *reader
	mu       sync.Mutex
	slack    []slack.Message
	hooks    []webhook.Payload
	hookErrs []error
	mails    []leadview.Email
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{}
	l := engine.NewLead("lead-1", t0)
	l.Email = "ada@example.com"
	l.Traits = map[string]any{"name": "Ada Lovelace", "company": "Analytical Engines"}
	l.Score = engine.Score{Value: 72, At: t0.Add(time.Hour)}
	l.Owner = "sam"
	l.Escalation = &engine.Escalation{ID: "esc-lead-1-1", Rep: "sam", Attempt: 1, At: t0.Add(time.Hour)}
	ev, _ := json.Marshal(engine.Event{ID: "e1", Type: "demo.requested", Lead: "lead-1"})
	sc, _ := json.Marshal(engine.ScoreChanged{Rule: "demo", Event: "e1", Delta: 72, Score: 72})
	b.reader = &reader{lead: l, hist: []store.History{
		{LeadKey: "lead-1", At: t0.Add(time.Hour), Kind: "event", EventID: "e1", Data: ev},
		{LeadKey: "lead-1", At: t0.Add(time.Hour), Kind: "score.changed", EventID: "e1", Data: sc},
	}}

	slackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m slack.Message
		require.NoError(t, json.NewDecoder(r.Body).Decode(&m))
		b.mu.Lock()
		b.slack = append(b.slack, m)
		b.mu.Unlock()
	}))
	t.Cleanup(slackSrv.Close)
	wh, err := standardwebhooks.NewWebhook(secret)
	require.NoError(t, err)
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p webhook.Payload
		require.NoError(t, json.Unmarshal(body, &p))
		b.mu.Lock()
		b.hooks = append(b.hooks, p)
		b.hookErrs = append(b.hookErrs, wh.Verify(body, r.Header))
		b.mu.Unlock()
	}))
	t.Cleanup(hookSrv.Close)

	sl, err := slack.New(slack.Config{WebhookURL: slackSrv.URL})
	require.NoError(t, err)
	ep, err := webhook.New(webhook.Config{Name: "crm", URL: hookSrv.URL, Secret: secret})
	require.NoError(t, err)
	views := &leadview.Builder{
		PublicURL: "https://n.example",
		Threshold: 70,
		Reps:      []engine.Rep{{ID: "sam", Name: "Sam Rivera", Email: "sam@example.com"}},
		AckToken:  func(c leadview.AckClaim) (string, error) { return "signed-" + c.Rep, nil },
	}
	b.h = notify.New(notify.Config{
		Store:    b.reader,
		Views:    views,
		Slack:    map[string]notify.Notifier{"sales": sl},
		Webhooks: map[string]notify.Notifier{"crm": ep},
		Mailer: notify.MailerFunc(func(_ context.Context, m leadview.Email) error {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.mails = append(b.mails, m)
			return nil
		}),
		Now: func() time.Time { return t0.Add(time.Hour + time.Second) },
	})
	return b
}

func item(t *testing.T, kind, channel string) store.OutboxItem {
	t.Helper()
	p, err := json.Marshal(outbox.NotifyPayload{
		Escalation: engine.Escalated{ID: "esc-lead-1-1", Rep: "sam", Attempt: 1, Score: 72, Reason: "round-robin among 1"},
		Lead:       "lead-1", Channel: channel,
	})
	require.NoError(t, err)
	return store.OutboxItem{ID: 1, Kind: kind, LeadKey: "lead-1", Payload: p, DedupeKey: "esc-lead-1-1/" + kind + "/" + channel}
}

func TestDeliverEachChannel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	require.Len(t, b.h.Handlers(), 3)

	require.NoError(t, b.h.Deliver(ctx, item(t, store.KindNotifySlack, "sales")))
	require.NoError(t, b.h.Deliver(ctx, item(t, store.KindNotifyWebhook, "crm")))
	require.NoError(t, b.h.Deliver(ctx, item(t, store.KindNotifyEmail, "")))

	require.Len(t, b.slack, 1)
	require.Contains(t, b.slack[0].Text, "Ada Lovelace (Analytical Engines)")
	require.Contains(t, b.slack[0].Text, "Sam Rivera")

	require.Len(t, b.hooks, 1)
	require.NoError(t, b.hookErrs[0])
	require.Equal(t, "esc-lead-1-1", b.hooks[0].Data.Escalation.ID)
	require.Equal(t, "Sam Rivera", b.hooks[0].Data.Escalation.Rep.Name)
	require.Equal(t, "https://n.example/ack/signed-sam", b.hooks[0].Data.Escalation.AckURL)
	require.Equal(t, "demo.requested", b.hooks[0].Data.TopContributors[0].Event)

	require.Len(t, b.mails, 1)
	require.Equal(t, "sam@example.com", b.mails[0].To)
	require.Contains(t, b.mails[0].Text, "https://n.example/leads/lead-1")
}

func TestDeliverFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		item      func(t *testing.T) store.OutboxItem
		readerErr error
		wantClass outbox.Class
		wantErr   error
	}{
		{name: "unknown slack channel", item: func(t *testing.T) store.OutboxItem { return item(t, store.KindNotifySlack, "other") }, wantClass: outbox.Permanent, wantErr: notify.ErrNoChannel},
		{name: "unknown kind", item: func(t *testing.T) store.OutboxItem { return item(t, "notify.pager", "") }, wantClass: outbox.Permanent},
		{name: "bad payload", item: func(t *testing.T) store.OutboxItem {
			return store.OutboxItem{Kind: store.KindNotifySlack, Payload: []byte("{")}
		}, wantClass: outbox.Permanent},
		{name: "lead gone", item: func(t *testing.T) store.OutboxItem { return item(t, store.KindNotifySlack, "sales") }, readerErr: store.ErrNotFound, wantClass: outbox.Permanent, wantErr: store.ErrNotFound},
		{name: "store down", item: func(t *testing.T) store.OutboxItem { return item(t, store.KindNotifySlack, "sales") }, readerErr: store.ErrTransient, wantClass: outbox.Transient, wantErr: store.ErrTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.reader.err = tt.readerErr
			err := b.h.Deliver(context.Background(), tt.item(t))
			require.Equal(t, tt.wantClass, outbox.Classify(err), "err: %v", err)
			if tt.wantErr != nil {
				require.True(t, errors.Is(err, tt.wantErr), "err: %v", err)
			}
			require.Empty(t, b.slack)
		})
	}
}

func TestEmailWithoutMailerIsPermanent(t *testing.T) {
	t.Parallel()
	h := notify.New(notify.Config{Store: &reader{}})
	err := h.Deliver(context.Background(), item(t, store.KindNotifyEmail, ""))
	require.ErrorIs(t, err, notify.ErrNoChannel)
	require.ErrorIs(t, err, outbox.ErrPermanent)
}
