package demo

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

func TestCastDeterministic(t *testing.T) {
	t.Parallel()
	a, b := Cast(7, 12), Cast(7, 12)
	require.Equal(t, a, b, "same seed, same cast")
	require.NotEqual(t, a, Cast(8, 12), "another seed, another cast")

	for _, seed := range []int64{1, 2, 3, 42} {
		c := Cast(seed, 5)
		require.Equal(t, Hot, c[0].Persona, "seed %d: the first lead is hot", seed)
		require.Equal(t, "amer", c[0].Region)
		require.Equal(t, Warm, c[1].Persona)
		require.Equal(t, Cold, c[2].Persona)
		keys := map[string]bool{}
		for i, l := range c {
			require.False(t, keys[l.Key], "unique keys")
			keys[l.Key] = true
			require.True(t, strings.HasSuffix(l.Email, ".example"), "reserved domain: %s", l.Email)
			require.Contains(t, zones[l.Region], l.Timezone)
			require.True(t, l.Script[0].SignUp, "everyone starts with a sign-up")
			if i > 0 {
				require.Greater(t, l.Arrival, c[i-1].Arrival, "sign-ups trickle in")
			}
		}
	}
}

// recorder is a Publisher and an Engager that records what it is asked.
type recorder struct {
	mu     sync.Mutex
	events []*engine.Event
	did    []string
}

func (r *recorder) PublishEvent(_ context.Context, ev *engine.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) Open(_ context.Context, s Send) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.did = append(r.did, "open "+s.SendID)
	return true, nil
}

func (r *recorder) Click(_ context.Context, s Send, link int) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.did = append(r.did, "click "+s.SendID)
	return true, nil
}

func (r *recorder) Ack(_ context.Context, lead, esc, rep string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.did = append(r.did, "ack "+esc+" "+rep)
	return nil
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

func runFor(t *testing.T, d *Demo, clock *fakeClock, until time.Time) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	clock.Set(until)
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
}

func TestScriptAndEngagement(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	rec := &recorder{}
	var said []string
	var mu sync.Mutex
	d := New(Config{Seed: 1, Leads: 4, Now: clock.Now, Start: start, Publisher: rec, Engager: rec, Poll: time.Millisecond,
		Say: func(lead string, at time.Time, what string) {
			mu.Lock()
			defer mu.Unlock()
			said = append(said, lead+" "+what)
		}})

	// Day one: the sign-ups, with traits, at their scripted times.
	runFor(t, d, clock, start.Add(24*time.Hour))
	rec.mu.Lock()
	var signups []*engine.Event
	for _, ev := range rec.events {
		require.False(t, ev.Time.After(start.Add(24*time.Hour)), "nothing published before its time")
		if ev.Type == "trial.started" {
			signups = append(signups, ev)
		}
	}
	rec.mu.Unlock()
	require.Len(t, signups, 4)
	require.Equal(t, "lead-1", signups[0].Lead)
	require.Equal(t, "demo-1-lead-1-00", signups[0].ID, "ids are derived from the seed")
	require.Equal(t, "trial", signups[0].Traits["plan"])
	require.NotEmpty(t, signups[0].Traits["first_name"])
	require.NotEmpty(t, signups[0].Email)

	// An email to the first lead is always opened and clicked; escalations
	// are acknowledged or left to re-route, deterministically.
	send := engine.SendEmail{SendID: "lead-1.trial-onboarding.1.welcome", Sequence: "trial-onboarding", Step: "welcome", Template: "trial-welcome"}
	at := start.Add(25 * time.Hour)
	d.Observe("lead-1", at, []engine.Effect{send})
	d.Observe("lead-1", at, []engine.Effect{send}) // redelivered: no second reaction
	d.Observe("stranger", at, []engine.Effect{send})
	for i := 1; i <= 6; i++ {
		d.Observe("lead-1", at, []engine.Effect{engine.Escalated{ID: "lead-1.escalation-1", Rep: "ana", Attempt: i}})
	}
	runFor(t, d, clock, at.Add(12*time.Hour))
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Equal(t, 1, count(rec.did, "open "+send.SendID))
	require.Equal(t, 1, count(rec.did, "click "+send.SendID))
	acks := count(rec.did, "ack lead-1.escalation-1 ana")
	require.Greater(t, acks, 0)
	require.Less(t, acks, 6, "some escalations are left to re-route")
	mu.Lock()
	defer mu.Unlock()
	require.Contains(t, said, "lead-1 👆 clicked a link in trial-welcome  trial-onboarding/welcome")
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// mailOf is a Mail holding messages by send id.
type mailOf map[string][]byte

func (m mailOf) BySend(_ context.Context, id string) ([]byte, bool, error) {
	b, ok := m[id]
	return b, ok, nil
}

func TestHTTPEngager(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var hits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.Method+" "+r.URL.Path+" "+r.UserAgent()+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/t/c/") {
			http.Redirect(w, r, "https://lumen.example/docs", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	// Quoted-printable HTML with a soft line break inside a tracked link,
	// as go-mail writes it; the public URL differs from the server's.
	raw := strings.ReplaceAll(`From: a@lumen.example
To: b@x.example
Subject: Hi
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=BB

--BB
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Docs: https://nurture.example.com/t/c/tok1
--BB
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

<p><a href=3D"https://nurture.example.com/t/c/tok1">Docs</a> <a href=3D"https://nurture.example.com/t/c/t=
ok2">Pricing</a><img src=3D"https://nurture.example.com/t/o/pix" alt=3D""></p>
--BB--
`, "\n", "\r\n")
	e := NewHTTPEngager(mailOf{"s1": []byte(raw)}, srv.URL, "tok-123")
	ctx := t.Context()

	done, err := e.Open(ctx, Send{SendID: "missing"})
	require.NoError(t, err)
	require.False(t, done, "not delivered yet: try later")

	done, err = e.Open(ctx, Send{SendID: "s1"})
	require.NoError(t, err)
	require.True(t, done)
	done, err = e.Click(ctx, Send{SendID: "s1"}, 1)
	require.NoError(t, err)
	require.True(t, done)
	done, err = e.Click(ctx, Send{SendID: "s1"}, 2) // wraps around
	require.NoError(t, err)
	require.True(t, done)
	require.NoError(t, e.Ack(ctx, "lead-1", "lead-1.escalation-1", "ana"))

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{
		fmt.Sprintf("GET /t/o/pix %s ", UserAgent),
		fmt.Sprintf("GET /t/c/tok2 %s ", UserAgent),
		fmt.Sprintf("GET /t/c/tok1 %s ", UserAgent),
		"POST /v1/escalations/lead-1.escalation-1/ack Go-http-client/1.1 Bearer tok-123",
	}, hits)
}
