package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
)

// trkEvents records published events.
type trkEvents struct {
	mu   sync.Mutex
	evs  []*engine.Event
	fail error
}

func (p *trkEvents) PublishEvent(_ context.Context, ev *engine.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.evs = append(p.evs, ev)
	return nil
}

func (p *trkEvents) all() []*engine.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*engine.Event(nil), p.evs...)
}

// trkState is an in-memory lead/suppression/send state.
type trkState struct {
	mu         sync.Mutex
	leads      map[string]*engine.Lead
	suppressed map[string]string
	payloads   map[string]outbox.EmailPayload
	links      map[string][]string // by template
	renders    int
}

func (s *trkState) Lead(_ context.Context, key string) (*engine.Lead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.leads[key]
	if !ok {
		return nil, fmt.Errorf("lead %s: %w", key, store.ErrNotFound)
	}
	return l, nil
}

func (s *trkState) Suppress(_ context.Context, email, reason string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.suppressed[email]; !ok {
		s.suppressed[email] = reason
	}
	return nil
}

func (s *trkState) ListOutbox(_ context.Context, f store.OutboxFilter) ([]store.OutboxItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.OutboxItem
	for id, p := range s.payloads {
		if p.Lead != f.LeadKey {
			continue
		}
		raw, _ := json.Marshal(p)
		out = append(out, store.OutboxItem{Kind: store.KindEmail, DedupeKey: id, LeadKey: p.Lead, Payload: raw})
	}
	return out, nil
}

func (s *trkState) Links(_ context.Context, p outbox.EmailPayload) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.renders++
	l, ok := s.links[p.Send.Template]
	if !ok {
		return nil, errors.New("unknown template")
	}
	return l, nil
}

type trkBundle struct {
	srv    http.Handler
	urls   token.URLs
	signer *token.Signer
	pub    *trkEvents
	state  *trkState
	now    time.Time
	ref    token.Ref
}

const trkBounceToken = "bounce-secret-token"

func trkSetup(t testing.TB) *trkBundle {
	t.Helper()
	signer, err := token.New(token.Key{ID: "k2", Secret: []byte("new-secret-0123456789")}, token.Key{ID: "k1", Secret: []byte("old-secret-0123456789")})
	require.NoError(t, err)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	b := &trkBundle{
		signer: signer, urls: token.URLs{Base: "https://t.example.com", Signer: signer}, pub: &trkEvents{}, now: now,
		state: &trkState{
			leads:      map[string]*engine.Lead{"lead-1": {Key: "lead-1", Email: "ada@customer.example"}},
			suppressed: map[string]string{},
			payloads: map[string]outbox.EmailPayload{"snd-1": {
				Send: engine.SendEmail{SendID: "snd-1", Template: "welcome", Sequence: "trial", Step: "welcome", Enrollment: "enr-1"},
				Lead: "lead-1", To: "ada@customer.example",
			}},
			links: map[string][]string{"welcome": {"https://docs.example.com/start?a=1&b=2", "https://example.com/pricing"}},
		},
		ref: token.Ref{Lead: "lead-1", Send: "snd-1", Enrollment: "enr-1", Sequence: "trial", Step: "welcome", Template: "welcome",
			SentAt: now.Add(-time.Hour).Unix()},
	}
	b.srv = httpapi.New(httpapi.Config{Tracking: &httpapi.TrackingConfig{
		Signer: signer, Publisher: b.pub, Sends: httpapi.OutboxSends{Reader: b.state}, Links: b.state,
		Suppressor: b.state, Leads: b.state, BounceTokens: []string{trkBounceToken},
		SESTopicARNs: []string{"arn:aws:sns:eu-west-1:123456789012:ses-feedback"},
		Now:          func() time.Time { return b.now },
	}})
	return b
}

func (b *trkBundle) do(t testing.TB, method, target string, body string, hdr ...string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15")
	}
	w := httptest.NewRecorder()
	b.srv.ServeHTTP(w, req)
	return w.Result()
}

func pathOf(u string) string {
	p, _ := url.Parse(u)
	return p.Path
}

func TestOpenPixel(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	res := b.do(t, "GET", pathOf(b.urls.Open(b.ref)), "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "image/gif", res.Header.Get("Content-Type"))
	require.Contains(t, res.Header.Get("Cache-Control"), "no-store")
	body, _ := io.ReadAll(res.Body)
	require.True(t, strings.HasPrefix(string(body), "GIF89a"))
	evs := b.pub.all()
	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, engine.EventEmailOpened, ev.Type)
	require.Equal(t, "lead-1", ev.Lead)
	require.False(t, ev.Machine)
	require.Equal(t, map[string]any{"send": "snd-1", "sequence": "trial", "step": "welcome", "enrollment": "enr-1", "template": "welcome"}, ev.Properties)

	// A second open is a second event with its own id.
	b.do(t, "GET", pathOf(b.urls.Open(b.ref)), "")
	evs = b.pub.all()
	require.Len(t, evs, 2)
	require.NotEqual(t, evs[0].ID, evs[1].ID)
}

func TestMachineFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		method  string
		ua      string
		sentAgo time.Duration
		want    bool
		why     string
	}{
		{"person", "GET", "Mozilla/5.0 (Windows NT 10.0) Chrome/120", time.Hour, false, ""},
		{"head request", "HEAD", "Mozilla/5.0", time.Hour, true, "head_request"},
		{"gmail image proxy", "GET", "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", time.Hour, true, "user_agent"},
		{"outlook safelinks", "GET", "Microsoft SafeLinks scanner", time.Hour, true, "user_agent"},
		{"barracuda", "GET", "Barracuda Sentinel (EE)", time.Hour, true, "user_agent"},
		{"mimecast", "GET", "Mimecast URL Protect", time.Hour, true, "user_agent"},
		{"proofpoint", "GET", "Proofpoint URL Defense", time.Hour, true, "user_agent"},
		{"no user agent", "GET", "-", time.Hour, true, "no_user_agent"},
		{"right after delivery (privacy proxy prefetch)", "GET", "Mozilla/5.0", 2 * time.Second, true, "soon_after_send"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := trkSetup(t)
			ref := b.ref
			ref.SentAt = b.now.Add(-tc.sentAgo).Unix()
			ua := tc.ua
			if ua == "-" {
				ua = ""
			}
			req := httptest.NewRequest(tc.method, pathOf(b.urls.Click(ref, 1, "https://example.com/pricing")), nil)
			req.Header.Set("User-Agent", ua)
			if ua == "" {
				req.Header.Del("User-Agent")
			}
			w := httptest.NewRecorder()
			b.srv.ServeHTTP(w, req)
			require.Equal(t, http.StatusFound, w.Code)
			evs := b.pub.all()
			require.Len(t, evs, 1)
			require.Equal(t, tc.want, evs[0].Machine)
			if tc.why != "" {
				require.Equal(t, tc.why, evs[0].Properties["machine_reason"])
			}
		})
	}
}

func TestClickRedirectsToRenderedLink(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	for pos, want := range []string{"https://docs.example.com/start?a=1&b=2", "https://example.com/pricing"} {
		res := b.do(t, "GET", pathOf(b.urls.Click(b.ref, pos, want)), "")
		require.Equal(t, http.StatusFound, res.StatusCode)
		require.Equal(t, want, res.Header.Get("Location"))
	}
	evs := b.pub.all()
	require.Len(t, evs, 2)
	require.Equal(t, engine.EventEmailClicked, evs[1].Type)
	require.Equal(t, 1, evs[1].Properties["link"])
	require.Equal(t, "https://example.com/pricing", evs[1].Properties["url"])
	require.Equal(t, "snd-1", evs[1].Properties["send"])
	require.Equal(t, 1, b.state.renders, "links are cached per send")

	// Punctuation glued to a link in a text part is ignored.
	res := b.do(t, "GET", pathOf(b.urls.Click(b.ref, 1, "https://example.com/pricing"))+".", "")
	require.Equal(t, http.StatusFound, res.StatusCode)

	// HEAD: redirect, flagged as machine.
	res = b.do(t, "HEAD", pathOf(b.urls.Click(b.ref, 0, "https://docs.example.com/start?a=1&b=2")), "")
	require.Equal(t, http.StatusFound, res.StatusCode)
	evs = b.pub.all()
	require.True(t, evs[len(evs)-1].Machine)
}

func TestClickContentChanged(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	tok := pathOf(b.urls.Click(b.ref, 0, "https://docs.example.com/start?a=1&b=2"))
	// The template changed: the link moved to position 1.
	b.state.links["welcome"] = []string{"https://example.com/new", "https://docs.example.com/start?a=1&b=2"}
	res := b.do(t, "GET", tok, "")
	require.Equal(t, http.StatusFound, res.StatusCode)
	require.Equal(t, "https://docs.example.com/start?a=1&b=2", res.Header.Get("Location"))

	// A link that is gone: 410, no redirect anywhere.
	b2 := trkSetup(t)
	b2.state.links["welcome"] = []string{"https://example.com/other"}
	res = b2.do(t, "GET", pathOf(b2.urls.Click(b2.ref, 0, "https://docs.example.com/start?a=1&b=2")), "")
	require.Equal(t, http.StatusGone, res.StatusCode)
	require.Empty(t, res.Header.Get("Location"))
}

func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	click := b.urls.Click(b.ref, 0, "https://docs.example.com/start?a=1&b=2")
	tok := strings.TrimPrefix(pathOf(click), token.ClickPrefix)
	kid, rest, _ := strings.Cut(tok, ".")
	payload, mac, _ := strings.Cut(rest, ".")
	otherKey, err := token.New(token.Key{ID: "k2", Secret: []byte("attacker-secret-0123")})
	require.NoError(t, err)
	evilRef := b.ref
	evilRef.LinkHash = token.LinkHash("https://evil.example")
	flipped := []byte(mac)
	flipped[0] ^= 1
	if flipped[0] == '.' {
		flipped[0] = 'A'
	}

	bad := map[string]string{
		"truncated":             tok[:len(tok)-3],
		"no signature":          kid + "." + payload,
		"flipped signature":     kid + "." + payload + "." + string(flipped),
		"unknown key":           "k9." + payload + "." + mac,
		"forged with other key": otherKey.SignRef(token.PurposeClick, evilRef),
		"open token as click":   strings.TrimPrefix(pathOf(b.urls.Open(b.ref)), token.OpenPrefix),
		"unsubscribe as click":  strings.TrimPrefix(pathOf(b.urls.Unsubscribe(b.ref)), token.UnsubscribePrefix),
		"empty":                 "x",
		"payload swapped":       kid + "." + strings.TrimPrefix(strings.Split(otherKey.SignRef(token.PurposeClick, evilRef), ".")[1], "") + "." + mac,
		"huge":                  strings.Repeat("A", 5000),
	}
	for name, tk := range bad {
		res := b.do(t, "GET", token.ClickPrefix+url.PathEscape(tk), "")
		require.Equal(t, http.StatusNotFound, res.StatusCode, name)
		require.Empty(t, res.Header.Get("Location"), name)
		if name != "open token as click" {
			res = b.do(t, "GET", token.OpenPrefix+url.PathEscape(tk), "")
			require.Equal(t, http.StatusNotFound, res.StatusCode, name)
		}
	}
	require.Empty(t, b.pub.all(), "no event for an invalid token")

	// An old key still verifies (rotation).
	old, err := token.New(token.Key{ID: "k1", Secret: []byte("old-secret-0123456789")})
	require.NoError(t, err)
	res := b.do(t, "GET", token.ClickPrefix+old.SignRef(token.PurposeClick, token.Ref{
		Lead: "lead-1", Send: "snd-1", Template: "welcome", Link: 1, LinkHash: token.LinkHash("https://example.com/pricing")}), "")
	require.Equal(t, http.StatusFound, res.StatusCode)
}

func TestNoOpenRedirect(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	good := pathOf(b.urls.Click(b.ref, 0, "https://docs.example.com/start?a=1&b=2"))
	for _, evil := range []string{
		"//evil.example", "https:evil.example", "https://evil.example", "/\\evil.example",
		"%2F%2Fevil.example", "https%3A%2F%2Fevil.example", "javascript:alert(1)", "\thttps://evil.example",
	} {
		for _, target := range []string{
			good + "?url=" + url.QueryEscape(evil),
			good + "?next=" + evil + "&redirect=" + evil,
			good + "/" + url.PathEscape(evil),
			token.ClickPrefix + url.PathEscape(evil),
		} {
			req := httptest.NewRequest("GET", "/", nil)
			req.URL, _ = url.Parse(target)
			if req.URL == nil {
				continue
			}
			req.Header.Set("User-Agent", "Mozilla/5.0")
			w := httptest.NewRecorder()
			b.srv.ServeHTTP(w, req)
			loc := w.Header().Get("Location")
			require.True(t, loc == "" || loc == "https://docs.example.com/start?a=1&b=2", "target %q redirected to %q", target, loc)
		}
	}
	// A validly signed click whose hash names an outside URL still cannot
	// leave our rendering: there is no such link, so 410.
	ref := b.ref
	res := b.do(t, "GET", pathOf(b.urls.Click(ref, 0, "https://evil.example")), "")
	require.Equal(t, http.StatusGone, res.StatusCode)
	require.Empty(t, res.Header.Get("Location"))
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	u := pathOf(b.urls.Unsubscribe(b.ref))

	// GET shows a form and never unsubscribes.
	for range 3 {
		res := b.do(t, "GET", u, "")
		require.Equal(t, http.StatusOK, res.StatusCode)
		body, _ := io.ReadAll(res.Body)
		require.Contains(t, string(body), `<form method="post"`)
	}
	res := b.do(t, "HEAD", u, "")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, b.state.suppressed)
	require.Empty(t, b.pub.all())

	// RFC 8058 one-click POST.
	res = b.do(t, "POST", u, "List-Unsubscribe=One-Click", "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]string{"ada@customer.example": "unsubscribed"}, b.state.suppressed)
	evs := b.pub.all()
	require.Len(t, evs, 1)
	require.Equal(t, engine.EventEmailUnsubscribed, evs[0].Type)
	require.Equal(t, "lead-1", evs[0].Lead)
	require.Equal(t, "one_click", evs[0].Properties["method"])

	// The form POST again: idempotent (same event id, same suppression).
	res = b.do(t, "POST", u, "confirm=yes", "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, _ := io.ReadAll(res.Body)
	require.Contains(t, string(body), "You are unsubscribed")
	evs = b.pub.all()
	require.Len(t, evs, 2)
	require.Equal(t, evs[0].ID, evs[1].ID)
	require.Len(t, b.state.suppressed, 1)

	// Invalid or cross-purpose tokens: 404, nothing happens.
	for _, bad := range []string{pathOf(b.urls.Open(b.ref)), "/u/k2.e30.AAAAAAAAAAAAAAAAAAAAAA"} {
		bad = token.UnsubscribePrefix + strings.TrimPrefix(strings.TrimPrefix(bad, token.OpenPrefix), token.UnsubscribePrefix)
		res = b.do(t, "POST", bad, "List-Unsubscribe=One-Click")
		require.Equal(t, http.StatusNotFound, res.StatusCode)
	}
	require.Len(t, b.pub.all(), 2)
}

func TestUnsubscribePublishFailureKeepsSuppression(t *testing.T) {
	t.Parallel()
	b := trkSetup(t)
	b.pub.fail = errors.New("nats down")
	res := b.do(t, "POST", pathOf(b.urls.Unsubscribe(b.ref)), "List-Unsubscribe=One-Click")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Contains(t, b.state.suppressed, "ada@customer.example", "suppression is written before the event")
}
