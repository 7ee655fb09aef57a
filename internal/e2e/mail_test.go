package e2e_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/nats/natstest"
	"github.com/nurture-oss/nurture/adapters/postgres"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/testdb"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
)

// testDatabase creates a migrated database for tb (internal/testdb) and
// drops it at the end.
func testDatabase(tb testing.TB) string {
	tb.Helper()
	u := testdb.New(tb)
	ctx := context.Background()
	st, err := postgres.Open(ctx, u)
	require.NoError(tb, err)
	defer st.Close()
	require.NoError(tb, st.Migrate(ctx))
	return u
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func bodyParts(t *testing.T, raw []byte) (*mail.Message, string, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	mr := multipart.NewReader(m.Body, params["boundary"])
	var text, html string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(quotedprintable.NewReader(p))
		require.NoError(t, err)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			html = string(b)
		} else {
			text = string(b)
		}
	}
	return m, text, html
}

// TestMailEndToEnd: a lead event on NATS → the sequence's first email at a
// real SMTP server → a GET of its tracked link → email.clicked applied to
// the lead → a one-click unsubscribe POST → no further email.
func TestMailEndToEnd(t *testing.T) {
	t.Parallel()
	t.Run("unsubscribe stops the sequence", func(t *testing.T) {
		t.Parallel()
		mailEndToEnd(t, true)
	})
	// The control: without the unsubscribe the same run sends more email,
	// so "no further email" above is not an accident of the timeline.
	t.Run("control without unsubscribe", func(t *testing.T) {
		t.Parallel()
		mailEndToEnd(t, false)
	})
}

func mailEndToEnd(t *testing.T, unsubscribe bool) {
	ctx := context.Background()
	dbURL := testDatabase(t)
	st, err := postgres.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	ns := natstest.Start(t)
	conn := natstest.Connect(t, ns.URL, nats.Options{AckWait: 5 * time.Second, FetchWait: 100 * time.Millisecond})
	pub := conn.Publisher("nurture")
	cons, err := conn.Consumer(ctx)
	require.NoError(t, err)

	bundle, err := sequences.Load("../../examples")
	require.NoError(t, err)

	// Monday 2 March 2026, 10:00 in New York: inside the send window.
	clk := &clock{t: time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC)}
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("e2e-secret-0123456789")})
	require.NoError(t, err)

	// The HTTP server comes first: its URL is the public URL in emails.
	var handler http.Handler
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(web.Close)

	composer, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: web.URL, Signer: signer, Now: clk.Now,
		Renderer:      smtp.BundleRenderer(func() *sequences.Bundle { return bundle }),
		PostalAddress: "Lumen Analytics, 100 Main St, Boston MA",
	})
	require.NoError(t, err)
	sink := smtptest.Start(t)
	dial, err := smtp.ParseURL(sink.URL())
	require.NoError(t, err)
	mailer, err := smtp.New(smtp.Config{Dial: dial, Pool: 2, Timeout: 5 * time.Second}, composer)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mailer.Close() })

	handler = httpapi.New(httpapi.Config{PublicURL: web.URL, Tracking: &httpapi.TrackingConfig{
		Signer: signer, Publisher: pub, Sends: httpapi.OutboxSends{Reader: st}, Links: composer,
		Suppressor: st, Leads: st, Now: clk.Now,
	}})

	r, err := runner.New(runner.Config{
		Store: st, Content: bundle.Content,
		Consumer:   runner.AdaptConsumer[*nats.Msg](cons),
		Publisher:  pub,
		Handlers:   map[string]outbox.Handler{store.KindEmail: mailer},
		Registerer: prometheus.NewRegistry(),
		Now:        clk.Now,
		Jitter:     func() float64 { return 0.5 },
	})
	require.NoError(t, err)

	// ingest runs the ingest loop until the lead's history shows event id.
	ingest := func(eventID string) {
		t.Helper()
		require.Eventually(t, func() bool {
			_, err := r.IngestOnce(ctx)
			require.NoError(t, err)
			hist, err := st.History(ctx, "lead-e2e", 1000)
			require.NoError(t, err)
			return slices.ContainsFunc(hist, func(h store.History) bool { return h.EventID == eventID })
		}, 15*time.Second, 10*time.Millisecond, "event %s applied", eventID)
	}

	// 1. A lead event on NATS.
	require.NoError(t, pub.PublishEvent(ctx, &engine.Event{
		ID: "evt-trial-1", Type: "trial.started", Lead: "lead-e2e", Time: clk.Now(),
		Email: "ada@customer.example",
		Traits: map[string]any{"first_name": "Ada <b>", "company": "Lovelace & Co", "plan": "trial",
			"timezone": "America/New_York"},
	}))
	ingest("evt-trial-1")

	// 2. The first email arrives at the SMTP server.
	_, err = r.DispatchOnce(ctx, clk.Now())
	require.NoError(t, err)
	msgs := sink.Wait(1, 10*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"ada@customer.example"}, msgs[0].To)
	m, text, html := bodyParts(t, msgs[0].Data)
	require.Contains(t, m.Header.Get("List-Unsubscribe"), web.URL+"/u/")
	require.Equal(t, "List-Unsubscribe=One-Click", m.Header.Get("List-Unsubscribe-Post"))
	require.Regexp(t, `^<.+@.+>$`, m.Header.Get("Message-Id"))
	require.Contains(t, html, "Ada &lt;b&gt;", "personalised and escaped")
	require.Contains(t, text, "Ada <b>")

	// 3. A person clicks the tracked link a few minutes later.
	clk.Advance(5 * time.Minute)
	link := regexp.MustCompile(`href="(` + regexp.QuoteMeta(web.URL) + `/t/c/[^"]+)"`).FindStringSubmatch(html)
	require.NotNil(t, link, "a tracked link in the HTML")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest("GET", link[1], nil)
	require.NoError(t, err)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh) Safari/605.1.15")
	res, err := client.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusFound, res.StatusCode)
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	require.NotEqual(t, "127.0.0.1", loc.Hostname(), "redirects to the template's link, not to us")
	require.Equal(t, "https", loc.Scheme)

	// 4. email.clicked is applied to the lead.
	var clickID string
	require.Eventually(t, func() bool {
		_, err := r.IngestOnce(ctx)
		require.NoError(t, err)
		lead, err := st.Lead(ctx, "lead-e2e")
		require.NoError(t, err)
		for _, en := range lead.Enrollments {
			if slices.Contains(en.Clicked, "welcome") {
				return true
			}
		}
		return false
	}, 15*time.Second, 10*time.Millisecond, "the click is recorded on the enrollment")
	hist, err := st.History(ctx, "lead-e2e", 1000)
	require.NoError(t, err)
	for _, h := range hist {
		if strings.HasPrefix(h.EventID, "clicked:") {
			clickID = h.EventID
		}
	}
	require.NotEmpty(t, clickID, "email.clicked is in the lead's history")

	if !unsubscribe {
		for range 30 {
			clk.Advance(12 * time.Hour)
			_, err := r.IngestOnce(ctx)
			require.NoError(t, err)
			_, err = r.SweepOnce(ctx, clk.Now())
			require.NoError(t, err)
			_, err = r.DispatchOnce(ctx, clk.Now())
			require.NoError(t, err)
		}
		require.Greater(t, len(sink.Messages()), 1, "the sequence goes on without the unsubscribe")
		return
	}

	// 5. One-click unsubscribe (RFC 8058).
	unsub := strings.Trim(strings.Split(m.Header.Get("List-Unsubscribe"), ",")[0], "<> ")
	res, err = http.Post(unsub, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	// Suppressed synchronously, before any event was consumed.
	require.NoError(t, st.InTx(ctx, func(ctx context.Context, tx store.Tx) error {
		sup, err := tx.Suppressed(ctx, []string{"ada@customer.example"})
		require.NoError(t, err)
		require.Contains(t, sup, "ada@customer.example")
		return nil
	}))

	// 6. No further email, however long we wait.
	for range 30 {
		clk.Advance(12 * time.Hour)
		_, err := r.IngestOnce(ctx)
		require.NoError(t, err)
		_, err = r.SweepOnce(ctx, clk.Now())
		require.NoError(t, err)
		_, err = r.DispatchOnce(ctx, clk.Now())
		require.NoError(t, err)
	}
	require.Len(t, sink.Messages(), 1, "no email after the unsubscribe")
	lead, err := st.Lead(ctx, "lead-e2e")
	require.NoError(t, err)
	require.Equal(t, engine.LeadUnsubscribed, lead.Status)
	for _, en := range lead.Enrollments {
		require.True(t, en.Status.Ended(), "enrollment %s ended (%s)", en.ID, en.Status)
	}
}
