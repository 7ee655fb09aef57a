package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/store"
)

// fakeMailbox holds captured messages in memory.
type fakeMailbox struct {
	msgs []httpapi.MailMessage
	raw  map[string]string
}

func (f *fakeMailbox) Messages(_ context.Context, limit int) ([]httpapi.MailMessage, error) {
	if limit > 0 && len(f.msgs) > limit {
		return f.msgs[:limit], nil
	}
	return f.msgs, nil
}

func (f *fakeMailbox) Raw(_ context.Context, id string) ([]byte, error) {
	r, ok := f.raw[id]
	if !ok {
		return nil, fmt.Errorf("read %s: %w", id, httpapi.ErrNoMessage)
	}
	return []byte(r), nil
}

// fakeLeads lists and loads leads.
type fakeLeads []*engine.Lead

func (f fakeLeads) RecentLeads(_ context.Context, limit int) ([]*engine.Lead, error) { return f, nil }

func (f fakeLeads) Lead(_ context.Context, key string) (*engine.Lead, error) {
	for _, l := range f {
		if l.Key == key {
			return l, nil
		}
	}
	return nil, store.ErrNotFound
}

const sampleMessage = "From: \"Maya\" <maya@lumen.example>\r\n" +
	"To: <ana@x.example>\r\n" +
	"Subject: =?UTF-8?q?Welcome_<b>Ana</b>?=\r\n" +
	"Message-ID: <lead-1.trial.1.welcome@lumen.example>\r\n" +
	"List-Unsubscribe: <https://n.example/u/tok>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
	"Hello Ana, caf=C3=A9 <script>x</script>\r\n" +
	"--XX\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	"PGh0bWw+PGhlYWQ+PC9oZWFkPjxib2R5PjxwPkhlbGxvIDxhIGhyZWY9Imh0dHBzOi8vbi5leGFt\r\ncGxlL3QvYy94Ij5kb2NzPC9hPjwvcD48L2JvZHk+PC9odG1sPg==\r\n" +
	"--XX--\r\n"

func setupMailbox(t *testing.T) *httptest.Server {
	t.Helper()
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	mb := &fakeMailbox{
		msgs: []httpapi.MailMessage{{ID: "aaaaaaaaaaaaaaaaaaaaaaaa", Lead: "lead-1", Send: "lead-1.trial.1.welcome", Sequence: "trial", Step: "welcome",
			Template: "trial-welcome", To: "ana@x.example", Subject: "Welcome <b>Ana</b>", At: now}},
		raw: map[string]string{"aaaaaaaaaaaaaaaaaaaaaaaa": sampleMessage},
	}
	leads := fakeLeads{{
		Key: "lead-1", Email: "ana@x.example", Status: engine.LeadActive, Owner: "ana",
		Traits: map[string]any{"first_name": "Ana", "last_name": "Souza", "company": "Acme <Corp>"},
		Score:  engine.Score{Value: 120, At: now}, UpdatedAt: now,
		Enrollments: []*engine.Enrollment{
			{ID: "lead-1.trial.1", Sequence: "trial", Step: "await", Status: engine.EnrollmentActive,
				Sent: []string{"welcome"}, Opened: []string{"welcome"}, Clicked: []string{"welcome"}},
			{ID: "e2", Sequence: "old", Status: engine.EnrollmentCompleted},
		},
	}}
	views := &leadview.Builder{Threshold: 100, Reps: []engine.Rep{{ID: "ana", Name: "Ana Souza"}}}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Mailbox: &httpapi.MailboxConfig{
		Mail: mb, Leads: leads, Views: views, Now: func() time.Time { return now }, Banner: "dev banner",
	}}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestMailboxPages(t *testing.T) {
	t.Parallel()
	srv := setupMailbox(t)
	tests := []struct {
		name, path string
		status     int
		want       []string
		notWant    []string
	}{
		{"index", "/", 200, []string{`href="/mail"`, `href="/leads"`, "dev banner", "Captured mail</a> (1)", "/livez"}, nil},
		{"mail list", "/mail", 200,
			[]string{`href="/mail/aaaaaaaaaaaaaaaaaaaaaaaa"`, "Welcome &lt;b&gt;Ana&lt;/b&gt;", "trial/welcome", `href="/leads/lead-1"`, "(Ana Souza)", `<span class="badge ok">clicked</span>`, "score 120", "owner <b>Ana Souza</b>"},
			[]string{"<b>Ana</b>"}},
		{"message", "/mail/aaaaaaaaaaaaaaaaaaaaaaaa", 200,
			[]string{"List-Unsubscribe", "lead-1.trial.1.welcome@lumen.example", `sandbox="allow-popups allow-popups-to-escape-sandbox"`,
				`src="/mail/aaaaaaaaaaaaaaaaaaaaaaaa/html"`, "Hello Ana, café &lt;script&gt;", "multipart/alternative, text/plain, text/html"},
			[]string{"<script>x"}},
		{"unknown message", "/mail/bbbbbbbbbbbbbbbbbbbbbbbb", 404, []string{"No such email"}, nil},
		{"leads", "/leads", 200,
			[]string{`href="/leads/lead-1"`, "Ana Souza", "Acme &lt;Corp&gt;", "120", "hot", "trial/await"},
			[]string{"old"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, srv.URL+tc.path)
			require.Equal(t, tc.status, resp.StatusCode, body)
			require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
			require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
			for _, w := range tc.want {
				require.Contains(t, body, w)
			}
			for _, w := range tc.notWant {
				require.NotContains(t, body, w)
			}
		})
	}
}

func TestMailboxPreview(t *testing.T) {
	t.Parallel()
	srv := setupMailbox(t)
	resp, body := get(t, srv.URL+"/mail/aaaaaaaaaaaaaaaaaaaaaaaa/html")
	require.Equal(t, 200, resp.StatusCode)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, w := range []string{"default-src 'none'", "sandbox allow-popups", "form-action 'none'", "frame-ancestors 'self'"} {
		require.Contains(t, csp, w)
	}
	require.NotContains(t, csp, "script-src")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.True(t, strings.HasPrefix(body, `<html><head><base target="_blank"></head>`), body)
	require.Contains(t, body, `<a href="https://n.example/t/c/x">docs</a>`, "the base64 HTML part, decoded")

	resp, _ = get(t, srv.URL+"/mail/bbbbbbbbbbbbbbbbbbbbbbbb/html")
	require.Equal(t, 404, resp.StatusCode)
}

func TestMailboxNotMounted(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Mailbox: &httpapi.MailboxConfig{}}))
	defer srv.Close()
	resp, body := get(t, srv.URL+"/")
	require.Equal(t, 200, resp.StatusCode)
	require.Contains(t, body, "Mail is sent over SMTP, not captured.")
	resp, _ = get(t, srv.URL+"/mail")
	require.Equal(t, 404, resp.StatusCode)
	resp, _ = get(t, srv.URL+"/leads")
	require.Equal(t, 404, resp.StatusCode)
}
