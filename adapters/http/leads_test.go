package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/adapters/sqlite"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
)

// The leads tests run on a real store (the SQLite adapter, a file per test:
// a test-only import) and the real token signer.

const leadsToken = "leads-api-token-0123456789"

var lt0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

type recPublisher struct {
	mu     sync.Mutex
	events []*engine.Event
}

func (p *recPublisher) PublishEvent(_ context.Context, ev *engine.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
	return nil
}

func (p *recPublisher) all() []*engine.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*engine.Event(nil), p.events...)
}

type leadsBundle struct {
	srv    *httptest.Server
	st     *sqlite.Store
	signer *token.Signer
	views  *leadview.Builder
	pub    *recPublisher
	now    time.Time
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// seedLead writes an escalated lead with a realistic timeline, as the
// runtime records it (history Data = the engine's effects as JSON).
func seedLead(t *testing.T, st store.Store, key string, mutate func(*engine.Lead)) {
	t.Helper()
	ctx := context.Background()
	escID := engine.EscalationID(key, 1)
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		leads, err := tx.LockLeads(ctx, []string{key}, lt0)
		if err != nil {
			return err
		}
		l := leads[key]
		l.Email = "ada@example.com"
		l.Traits = map[string]any{"name": "Ada Lovelace", "company": "Analytical Engines", "title": `<b>CTO</b>`}
		l.Score = engine.Score{Value: 72, At: lt0.Add(2 * time.Hour)}
		l.Armed, l.Crossings, l.Owner = false, 1, "sam"
		l.Escalation = &engine.Escalation{ID: escID, Rep: "sam", At: lt0.Add(2 * time.Hour), Attempt: 1, AckDueAt: lt0.Add(3 * time.Hour)}
		l.Enrollments = []*engine.Enrollment{{
			ID: engine.EnrollmentID(key, "trial", 1), Sequence: "trial", Version: "v1", Status: engine.EnrollmentExited,
			StartedAt: lt0, EndedAt: lt0.Add(2 * time.Hour), Reason: "escalated", Sent: []string{"welcome"},
		}}
		l.UpdatedAt = lt0.Add(2 * time.Hour)
		if mutate != nil {
			mutate(l)
		}
		if err := tx.SaveLeads(ctx, []*engine.Lead{l}); err != nil {
			return err
		}
		h := func(at time.Duration, kind, ev string, data any) store.History {
			return store.History{LeadKey: key, At: lt0.Add(at), Kind: kind, EventID: ev, Data: mustJSON(t, data)}
		}
		return tx.AppendHistory(ctx, []store.History{
			h(0, "event", "e1", map[string]any{"type": "trial.started"}),
			h(0, "enrolled", "e1", engine.Enrolled{Enrollment: engine.EnrollmentID(key, "trial", 1), Sequence: "trial", Version: "v1", Trigger: "e1"}),
			h(0, "email.sent", "e1", engine.SendEmail{Template: "welcome", Sequence: "trial", Step: "welcome"}),
			h(time.Hour, "event", "e2", map[string]any{"type": "page.viewed", "properties": map[string]any{"url": "/pricing"}}),
			h(time.Hour, "score.changed", "e2", engine.ScoreChanged{Rule: "pricing", Event: "e2", Delta: 12, Score: 12}),
			h(2*time.Hour, "event", "e3", map[string]any{"type": "demo.requested"}),
			h(2*time.Hour, "score.changed", "e3", engine.ScoreChanged{Rule: "demo", Event: "e3", Delta: 60, Score: 72}),
			h(2*time.Hour, "escalated", "e3", engine.Escalated{ID: escID, Rep: "sam", Attempt: 1, Score: 72, Reason: "round-robin among 2"}),
			h(2*time.Hour, "exited", "e3", engine.Exited{Enrollment: engine.EnrollmentID(key, "trial", 1), Sequence: "trial", Reason: "escalated"}),
		})
	}))
}

func setupLeads(t *testing.T, open bool) *leadsBundle {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "nurture.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	require.NoError(t, st.Migrate(t.Context()))
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	require.NoError(t, err)

	b := &leadsBundle{st: st, signer: signer, pub: &recPublisher{}, now: lt0.Add(2*time.Hour + 30*time.Minute)}
	mux := http.NewServeMux()
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	b.views = &leadview.Builder{
		PublicURL: b.srv.URL,
		HalfLife:  24 * time.Hour,
		Threshold: 70,
		Reps:      []engine.Rep{{ID: "sam", Name: "Sam Rivera", Email: "sam@example.com"}, {ID: "kim", Name: "Kim Lee"}},
		Rules:     []*engine.Rule{{ID: "pricing", Event: "page.viewed"}, {ID: "demo", Event: "demo.requested"}},
		AckToken: func(c leadview.AckClaim) (string, error) {
			return signer.Sign(leadview.AckPurpose, c.Encode()), nil
		},
		LeadToken: func(key string) (string, error) { return signer.Sign(leadview.PagePurpose, []byte(key)), nil },
	}
	srv := httpapi.New(httpapi.Config{PublicURL: b.srv.URL, Leads: &httpapi.LeadsConfig{
		Store: st, Views: b.views, Tokens: []string{leadsToken}, Links: signer,
		Publisher: b.pub, Reps: st, OpenPages: open,
		Now: func() time.Time { return b.now },
	}})
	mux.Handle("/", srv)
	seedLead(t, st, "lead-1", nil)
	return b
}

func (b *leadsBundle) do(t *testing.T, method, path, body string, auth bool) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if auth {
		req.Header.Set("Authorization", "Bearer "+leadsToken)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(out)
}

func TestLeadAPI(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)

	resp, _ := b.do(t, "GET", "/v1/leads/lead-1", "", false)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = b.do(t, "GET", "/v1/leads/nobody", "", true)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, body := b.do(t, "GET", "/v1/leads/lead-1", "", true)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var doc httpapi.LeadDoc
	require.NoError(t, json.Unmarshal([]byte(body), &doc))

	require.Equal(t, "lead-1", doc.Lead.Key)
	require.Equal(t, "Ada Lovelace", doc.Lead.Name)
	require.Equal(t, "Analytical Engines", doc.Lead.Company)
	require.Equal(t, "active", doc.Status)
	// 72 at 10:00, 30 minutes of a 24h half-life later.
	require.InDelta(t, 72*0.98566, doc.Score.Value, 0.01)
	require.Equal(t, 70.0, doc.Score.Threshold)
	require.False(t, doc.Score.Armed)
	require.Equal(t, 1, doc.Score.Crossings)
	require.NotEmpty(t, doc.Score.History)
	require.Equal(t, "sam", doc.Owner.ID)
	require.Equal(t, "Sam Rivera", doc.Owner.Name)
	require.Equal(t, "lead-1.escalation-1", doc.Escalation.ID)
	require.False(t, doc.Escalation.Acked())
	require.Len(t, doc.Enrollments, 1)
	require.Equal(t, engine.EnrollmentExited, doc.Enrollments[0].Status)
	require.Equal(t, []leadview.Contribution{
		{Rule: "demo", Event: "demo.requested", Points: 60, Count: 1},
		{Rule: "pricing", Event: "page.viewed", Points: 12, Count: 1},
	}, doc.Top)

	kinds := map[string]int{}
	for _, e := range doc.Timeline {
		kinds[e.Kind]++
		require.True(t, json.Valid(e.Data), "timeline data is JSON")
		if e.Kind == "score.changed" && e.EventID == "e3" {
			require.Equal(t, "demo", e.Rule)
			require.Equal(t, 60.0, e.Points)
			require.Equal(t, "demo.requested", e.Type)
		}
	}
	require.Equal(t, map[string]int{"event": 3, "enrolled": 1, "email.sent": 1, "score.changed": 2, "escalated": 1, "exited": 1}, kinds)
	require.True(t, strings.HasPrefix(doc.Lead.URL, b.srv.URL+"/leads/lead-1?t="), doc.Lead.URL)
}

func TestLeadPageAccess(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)
	v, err := b.views.Build(leadview.Input{Lead: &engine.Lead{Key: "lead-1"}, Now: b.now})
	require.NoError(t, err)
	u, err := url.Parse(v.LeadURL)
	require.NoError(t, err)

	tests := []struct {
		name string
		path string
		auth bool
		want int
	}{
		{"signed link", u.RequestURI(), false, http.StatusOK},
		{"bearer", "/leads/lead-1", true, http.StatusOK},
		{"no token", "/leads/lead-1", false, http.StatusForbidden},
		{"forged token", "/leads/lead-1?t=k1.bGVhZC0x.AAAAAAAAAAAAAAAAAAAAAA", false, http.StatusForbidden},
		{"another lead's token", "/leads/lead-2?" + u.RawQuery, false, http.StatusForbidden},
		{"ack token is not a page token", "/leads/lead-1?t=" + url.QueryEscape(b.signer.Sign(leadview.AckPurpose, []byte("lead-1"))), false, http.StatusForbidden},
		{"unknown lead", "/leads/nobody", true, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.do(t, "GET", tt.path, "", tt.auth)
			require.Equal(t, tt.want, resp.StatusCode, body)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
			if tt.want != http.StatusOK {
				require.NotContains(t, body, "Ada Lovelace")
			}
		})
	}
}

func TestLeadPageContent(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, true)
	resp, body := b.do(t, "GET", "/leads/lead-1", "", false)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{
		`<h1 id="lead-name">Ada Lovelace</h1>`,
		`&lt;b&gt;CTO&lt;/b&gt;, Analytical Engines`, // traits are escaped
		`<b id="score">70.97</b>`,
		`Sam Rivera`,
		`lead-1.escalation-1`,
		`<svg id="score-chart"`,
		`<polyline points="`,
		`threshold 70`,
		`Escalated to Sam Rivera at score 72: round-robin among 2`,
		`&#43;60 demo.requested (rule demo) → score 72`,
		`page.viewed · /pricing`,
		`Email sent: welcome (trial / welcome)`,
		`<td>trial</td><td>exited</td>`,
		`href="` + b.srv.URL + `/ack/`,
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "<b>CTO</b>")
	require.NotContains(t, body, "<script")
}

func TestAckLink(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)
	claim := leadview.AckClaim{Lead: "lead-1", Escalation: "lead-1.escalation-1", Rep: "sam"}
	path := "/ack/" + b.signer.Sign(leadview.AckPurpose, claim.Encode())

	// GET shows the confirmation and never acknowledges.
	resp, body := b.do(t, "GET", path, "", false)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `<form method="post" action="`+path+`">`)
	require.Contains(t, body, "Acknowledge as <strong>Sam Rivera</strong>")
	require.Empty(t, b.pub.all(), "a GET must not acknowledge")

	resp, body = b.do(t, "POST", path, "", false)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, "the lead is yours")
	evs := b.pub.all()
	require.Len(t, evs, 1)
	require.Equal(t, engine.EventEscalationAcked, evs[0].Type)
	require.Equal(t, "lead-1", evs[0].Lead)
	require.Equal(t, "lead-1.escalation-1.ack.sam", evs[0].ID)
	require.Equal(t, "lead-1.escalation-1", evs[0].Properties["escalation"])
	require.Equal(t, "sam", evs[0].Properties["rep"])
	require.Equal(t, b.now, evs[0].Time)

	// A second click publishes the same event id (deduplicated downstream).
	_, _ = b.do(t, "POST", path, "", false)
	require.Equal(t, evs[0].ID, b.pub.all()[1].ID)

	for _, bad := range []string{"/ack/nope", "/ack/" + b.signer.Sign(leadview.PagePurpose, claim.Encode())} {
		resp, _ = b.do(t, "GET", bad, "", false)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		resp, _ = b.do(t, "POST", bad, "", false)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
	}
	require.Len(t, b.pub.all(), 2)
}

func TestAckLinkAfterAckOrReroute(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)
	seedLead(t, b.st, "lead-2", func(l *engine.Lead) {
		l.Escalation.AckedBy, l.Escalation.AckedAt = "kim", lt0.Add(150*time.Minute)
	})
	seedLead(t, b.st, "lead-3", func(l *engine.Lead) {
		l.Escalation.Attempt, l.Escalation.Rep, l.Escalation.Tried, l.Owner = 2, "kim", []string{"sam"}, "kim"
	})

	acked := "/ack/" + b.signer.Sign(leadview.AckPurpose, leadview.AckClaim{Lead: "lead-2", Escalation: "lead-2.escalation-1", Rep: "sam"}.Encode())
	_, body := b.do(t, "GET", acked, "", false)
	require.Contains(t, body, "Already acknowledged by Kim Lee")
	require.NotContains(t, body, "<form")
	_, body = b.do(t, "POST", acked, "", false)
	require.Contains(t, body, "Already acknowledged by Kim Lee")
	require.Empty(t, b.pub.all())

	rerouted := "/ack/" + b.signer.Sign(leadview.AckPurpose, leadview.AckClaim{Lead: "lead-3", Escalation: "lead-3.escalation-1", Rep: "sam"}.Encode())
	_, body = b.do(t, "GET", rerouted, "", false)
	require.Contains(t, body, "re-routed to Kim Lee")

	stale := "/ack/" + b.signer.Sign(leadview.AckPurpose, leadview.AckClaim{Lead: "lead-1", Escalation: "lead-1.escalation-0", Rep: "sam"}.Encode())
	_, body = b.do(t, "GET", stale, "", false)
	require.Contains(t, body, "This escalation is over")
	resp, _ := b.do(t, "POST", stale, "", false)
	require.Equal(t, http.StatusConflict, resp.StatusCode)
	require.Empty(t, b.pub.all())
}

func TestAckAPI(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)
	tests := []struct {
		name    string
		id      string
		body    string
		auth    bool
		want    int
		wantRep string
	}{
		{name: "no token", id: "lead-1.escalation-1", want: http.StatusUnauthorized},
		{name: "stale escalation", id: "lead-1.escalation-7", auth: true, want: http.StatusConflict},
		{name: "unknown lead", id: "nobody.escalation-1", auth: true, want: http.StatusNotFound},
		{name: "not an escalation id", id: "whatever", auth: true, want: http.StatusBadRequest},
		{name: "unknown rep", id: "lead-1.escalation-1", body: `{"rep":"zed"}`, auth: true, want: http.StatusBadRequest},
		{name: "bad body", id: "lead-1.escalation-1", body: `{"rep":`, auth: true, want: http.StatusBadRequest},
		{name: "current rep by default", id: "lead-1.escalation-1", auth: true, want: http.StatusAccepted, wantRep: "sam"},
		{name: "named rep", id: "lead-1.escalation-1", body: `{"rep":"kim"}`, auth: true, want: http.StatusAccepted, wantRep: "kim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(b.pub.all())
			resp, body := b.do(t, "POST", "/v1/escalations/"+tt.id+"/ack", tt.body, tt.auth)
			require.Equal(t, tt.want, resp.StatusCode, body)
			if tt.wantRep == "" {
				require.Len(t, b.pub.all(), before)
				return
			}
			var reply map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &reply))
			require.Equal(t, "accepted", reply["status"])
			evs := b.pub.all()
			require.Len(t, evs, before+1)
			ev := evs[len(evs)-1]
			require.Equal(t, reply["event_id"], ev.ID)
			require.Equal(t, tt.wantRep, ev.Properties["rep"])
			require.Equal(t, "api", ev.Properties["via"])
		})
	}
}

func TestLeadOfEscalation(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"lead-1", "ana@x.io", "a b.c/d", "x.escalation-3"} {
		got, err := httpapi.LeadOfEscalation(engine.EscalationID(key, 2))
		require.NoError(t, err)
		require.Equal(t, key, got)
	}
	_, err := httpapi.LeadOfEscalation("nope")
	require.Error(t, err)
}

func TestRepAway(t *testing.T) {
	t.Parallel()
	b := setupLeads(t, false)
	tests := []struct {
		name string
		rep  string
		body string
		auth bool
		want int
	}{
		{"no token", "sam", `{"away":true}`, false, http.StatusUnauthorized},
		{"missing field", "sam", `{}`, true, http.StatusBadRequest},
		{"not json", "sam", `yes`, true, http.StatusBadRequest},
		{"unknown rep", "zed", `{"away":true}`, true, http.StatusNotFound},
		{"away", "sam", `{"away":true}`, true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := b.do(t, "PUT", "/v1/reps/"+tt.rep+"/away", tt.body, tt.auth)
			require.Equal(t, tt.want, resp.StatusCode, body)
		})
	}
	away := func() bool {
		var d *engine.Desk
		require.NoError(t, b.st.InTx(context.Background(), func(ctx context.Context, tx store.Tx) (err error) {
			d, err = tx.Desk(ctx, false)
			return err
		}))
		return d.Reps["sam"] != nil && d.Reps["sam"].Away
	}
	require.True(t, away(), "the store records the rep as away")
	resp, _ := b.do(t, "PUT", "/v1/reps/sam/away", `{"away":false}`, true)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, away())
}

// FuzzLeadOfEscalation: every escalation id the engine writes names its
// lead; anything else is an error, never a panic.
func FuzzLeadOfEscalation(f *testing.F) {
	f.Add("lead-1", 1)
	f.Add("ana@x.io", 3)
	f.Add("a.escalation-2", 2)
	f.Fuzz(func(t *testing.T, key string, n int) {
		got, err := httpapi.LeadOfEscalation(engine.EscalationID(key, n))
		if key != "" {
			require.NoError(t, err)
			require.Equal(t, key, got)
		}
		_, _ = httpapi.LeadOfEscalation(key)
	})
}
