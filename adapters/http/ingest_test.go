package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
)

const testToken = "test-token-0123456789"

// jsPublisher publishes lead events to JetStream and waits for the ack, as
// the NATS adapter does. It is written here because adapters do not import
// each other.
type jsPublisher struct{ js jetstream.JetStream }

func (p *jsPublisher) PublishEvent(ctx context.Context, ev *engine.Event) error {
	data, err := cloudevent.Encode(ev, "test")
	if err != nil {
		return err
	}
	_, err = p.js.Publish(ctx, cloudevent.Subject("leads", ev.Type), data, jetstream.WithMsgID(ev.ID))
	return err
}

// gatePublisher holds every publish until release is closed.
type gatePublisher struct {
	next    httpapi.Publisher
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gatePublisher) PublishEvent(ctx context.Context, ev *engine.Event) error {
	g.once.Do(func() { close(g.entered) })
	<-g.release
	return g.next.PublishEvent(ctx, ev)
}

type failPublisher struct{}

func (failPublisher) PublishEvent(context.Context, *engine.Event) error {
	return errors.New("nats unavailable")
}

type bundle struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	pub    *jsPublisher
	now    time.Time
}

// setup starts an embedded JetStream server with stream LEADS.
func setup(t *testing.T) *bundle {
	t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	require.NoError(t, err)
	srv.Start()
	require.True(t, srv.ReadyForConnections(10*time.Second))
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := natsgo.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "LEADS", Subjects: []string{"leads.>"}, Duplicates: time.Hour})
	require.NoError(t, err)
	return &bundle{js: js, stream: st, pub: &jsPublisher{js: js}, now: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}
}

func (b *bundle) server(pub httpapi.Publisher, maxBody int64, tokens ...string) http.Handler {
	if tokens == nil {
		tokens = []string{"another-token-xyz", testToken}
	}
	return httpapi.New(httpapi.Config{
		MaxBody: maxBody,
		Ingest:  &httpapi.IngestConfig{Publisher: pub, Tokens: tokens, Now: func() time.Time { return b.now }},
	})
}

// streamEvents returns every event stored in LEADS, parsed, in order, with
// the Nats-Msg-Id of each.
func (b *bundle) streamEvents(t *testing.T) []*engine.Event {
	t.Helper()
	ctx := context.Background()
	info, err := b.stream.Info(ctx)
	require.NoError(t, err)
	var out []*engine.Event
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := b.stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		ev, err := cloudevent.Parse(m.Data)
		require.NoError(t, err)
		require.Equal(t, ev.ID, m.Header.Get(jetstream.MsgIDHeader), "Nats-Msg-Id is the event id")
		require.Equal(t, cloudevent.Subject("leads", ev.Type), m.Subject)
		out = append(out, ev)
	}
	return out
}

type reply struct {
	Accepted []string `json:"accepted"`
	Rejected []struct {
		Index int    `json:"index"`
		ID    string `json:"id"`
		Error string `json:"error"`
	} `json:"rejected"`
	Failed []struct {
		Index int    `json:"index"`
		ID    string `json:"id"`
		Error string `json:"error"`
	} `json:"failed"`
	Error string `json:"error"`
}

func do(t *testing.T, h http.Handler, path, contentType, body string, header ...string) (int, reply, http.Header) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+testToken)
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var r reply
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), rec.Body.String())
	return rec.Code, r, rec.Header()
}

func ce(id, typ, subject string, data string) string {
	s := `{"specversion":"1.0","id":"` + id + `","source":"crm","type":"` + typ + `","subject":"` + subject + `"`
	if data != "" {
		s += `,"data":` + data
	}
	return s + "}"
}

func TestIngestSingleEventAcceptedOnlyAfterStreamAck(t *testing.T) {
	t.Parallel()
	b := setup(t)
	gate := &gatePublisher{next: b.pub, entered: make(chan struct{}), release: make(chan struct{})}
	h := b.server(gate, 0)

	type result struct {
		code int
		r    reply
	}
	done := make(chan result, 1)
	go func() {
		code, r, _ := do(t, h, "/v1/events", "application/cloudevents+json",
			ce("e1", "trial.started", "L1", `{"email":" ana@example.com ","traits":{"plan":"pro","seats":5}}`))
		done <- result{code, r}
	}()
	<-gate.entered
	select {
	case res := <-done:
		t.Fatalf("answered %d before the publish was acknowledged", res.code)
	case <-time.After(100 * time.Millisecond):
	}
	require.Empty(t, b.streamEvents(t))
	close(gate.release)
	res := <-done
	require.Equal(t, http.StatusAccepted, res.code)
	require.Equal(t, []string{"e1"}, res.r.Accepted)

	evs := b.streamEvents(t)
	require.Len(t, evs, 1)
	require.Equal(t, &engine.Event{ID: "e1", Type: "trial.started", Lead: "L1", Time: b.now,
		Email: "ana@example.com", Traits: map[string]any{"plan": "pro", "seats": int64(5)}}, evs[0])
}

func TestIngestAuth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := ce("e1", "trial.started", "L1", "")
	tests := []struct {
		name   string
		tokens []string
		auth   string
		want   int
	}{
		{name: "no header", auth: "", want: http.StatusUnauthorized},
		{name: "wrong token", auth: "Bearer nope-nope-nope", want: http.StatusUnauthorized},
		{name: "token prefix", auth: "Bearer " + testToken[:10], want: http.StatusUnauthorized},
		{name: "other scheme", auth: "Token " + testToken, want: http.StatusUnauthorized},
		{name: "bearer", auth: "Bearer " + testToken, want: http.StatusAccepted},
		{name: "bearer lower case", auth: "bearer " + testToken, want: http.StatusAccepted},
		{name: "basic write key", auth: "Basic " + basic(testToken, ""), want: http.StatusAccepted},
		{name: "closed without tokens", tokens: []string{}, auth: "Bearer " + testToken, want: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := b.server(b.pub, 0, tt.tokens...)
			if tt.tokens != nil && len(tt.tokens) == 0 {
				h = httpapi.New(httpapi.Config{Ingest: &httpapi.IngestConfig{Publisher: b.pub}})
			}
			code, r, hdr := do(t, h, "/v1/events", "application/cloudevents+json", body, "Authorization", tt.auth)
			require.Equal(t, tt.want, code, r.Error)
			switch tt.want {
			case http.StatusUnauthorized:
				require.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
				require.NotEmpty(t, r.Error)
			case http.StatusServiceUnavailable:
				require.Contains(t, r.Error, "NURTURE_API_TOKENS")
			}
		})
	}
	// Only the accepted requests reached the stream (all with id e1: one message).
	require.Len(t, b.streamEvents(t), 1)
}

func basic(user, pass string) string {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

func TestIngestOversize(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.server(b.pub, 64<<10)

	big := strings.Repeat("x", 70<<10)
	code, r, _ := do(t, h, "/v1/events", "application/cloudevents+json",
		ce("e1", "page.viewed", "L1", `{"properties":{"blob":"`+big+`"}}`))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	require.Contains(t, r.Error, "limit")

	var batch []string
	for range 3 {
		batch = append(batch, ce("e2", "page.viewed", "L1", `{"properties":{"blob":"`+strings.Repeat("y", 30<<10)+`"}}`))
	}
	code, _, _ = do(t, h, "/v1/events", "application/cloudevents-batch+json", "["+strings.Join(batch, ",")+"]")
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	// A single event over the CloudEvent size limit is refused even when the
	// body limit is higher.
	h = b.server(b.pub, 4<<20)
	code, _, _ = do(t, h, "/v1/events", "application/json",
		ce("e3", "page.viewed", "L1", `{"properties":{"blob":"`+strings.Repeat("z", cloudevent.MaxSize)+`"}}`))
	require.Equal(t, http.StatusRequestEntityTooLarge, code)

	require.Empty(t, b.streamEvents(t))
}

func TestIngestInvalid(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.server(b.pub, 0)
	tests := []struct {
		name        string
		contentType string
		body        string
		want        int
		reason      string
	}{
		{name: "malformed json", contentType: "application/cloudevents+json", body: `{"specversion":`, want: 400, reason: "not a JSON CloudEvent"},
		{name: "missing id", contentType: "application/cloudevents+json", body: ce("", "a.b", "L1", ""), want: 400, reason: "missing id"},
		{name: "missing type", contentType: "application/cloudevents+json", body: ce("e1", "", "L1", ""), want: 400, reason: "missing type"},
		{name: "missing subject", contentType: "application/json", body: ce("e1", "a.b", "", ""), want: 400, reason: "missing subject"},
		{name: "bad time", contentType: "application/json", body: `{"specversion":"1.0","id":"e1","type":"a","subject":"L","time":"yesterday"}`, want: 400, reason: "RFC 3339"},
		{name: "wrong specversion", contentType: "application/json", body: `{"specversion":"0.3","id":"e1","type":"a","subject":"L"}`, want: 400, reason: "specversion"},
		{name: "not an array", contentType: "application/cloudevents-batch+json", body: `{"id":"e1"}`, want: 400},
		{name: "empty batch", contentType: "application/cloudevents-batch+json", body: `[]`, want: 400},
		{name: "unsupported type", contentType: "text/xml", body: `<event/>`, want: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, r, _ := do(t, h, "/v1/events", tt.contentType, tt.body)
			require.Equal(t, tt.want, code)
			require.NotEmpty(t, r.Error)
			require.Empty(t, r.Accepted)
			if tt.reason != "" {
				require.Len(t, r.Rejected, 1)
				require.Contains(t, r.Rejected[0].Error, tt.reason)
			}
		})
	}
	require.Empty(t, b.streamEvents(t))
}

func TestIngestBatchPartial(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.server(b.pub, 0)
	body := "[" + strings.Join([]string{
		ce("b1", "trial.started", "L1", `{"email":"a@example.com"}`),
		ce("b2", "", "L1", ""),
		`{"specversion":"1.0","id":"b3","type":"page.viewed","subject":"L2","time":"2026-03-01T10:00:00+01:00"}`,
		`"not an object"`,
		ce("b1", "trial.started", "L1", `{"email":"a@example.com"}`), // duplicate id: harmless
	}, ",") + "]"
	code, r, _ := do(t, h, "/v1/events", "application/cloudevents-batch+json", body)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, []string{"b1", "b3", "b1"}, r.Accepted)
	require.Len(t, r.Rejected, 2)
	require.Equal(t, 1, r.Rejected[0].Index)
	require.Equal(t, "b2", r.Rejected[0].ID)
	require.Contains(t, r.Rejected[0].Error, "missing type")
	require.Equal(t, 3, r.Rejected[1].Index)
	require.Contains(t, r.Error, "2 of 5")

	evs := b.streamEvents(t)
	require.Len(t, evs, 2, "the duplicate id is dropped by the stream")
	require.Equal(t, "b1", evs[0].ID)
	require.Equal(t, "b3", evs[1].ID)
	require.Equal(t, time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), evs[1].Time)

	// A JSON array sent as application/json is a batch too; all valid → 202.
	code, r, _ = do(t, h, "/v1/events", "application/json", "["+ce("b4", "x.y", "L3", "")+"]")
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, []string{"b4"}, r.Accepted)
}

func TestIngestPublishFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.server(failPublisher{}, 0)
	body := "[" + ce("f1", "a.b", "L1", "") + "," + ce("f2", "a.b", "L1", "") + "]"
	code, r, _ := do(t, h, "/v1/events", "application/cloudevents-batch+json", body)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Empty(t, r.Accepted)
	require.Len(t, r.Failed, 2)
	require.Contains(t, r.Error, "safe")

	// A real publish that JetStream refuses (no stream captures the subject)
	// is not acknowledged either.
	require.NoError(t, b.js.DeleteStream(context.Background(), "LEADS"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/events", strings.NewReader(ce("f3", "a.b", "L1", "")))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	rec := httptest.NewRecorder()
	b.server(b.pub, 0).ServeHTTP(rec, req)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
}

func TestIngestSegment(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := b.server(b.pub, 0)
	tests := []struct {
		name string
		path string
		body string
		want *engine.Event
	}{
		{
			name: "track",
			path: "/v1/track",
			body: `{"type":"track","userId":"u-1","anonymousId":"anon-9","event":"Demo Requested","messageId":"m-1",
			        "timestamp":"2026-03-01T12:00:00.5Z","properties":{"plan":"pro","seats":3},
			        "context":{"traits":{"email":"bo@example.com","name":"Bo"}}}`,
			want: &engine.Event{ID: "m-1", Type: "Demo Requested", Lead: "u-1", Time: time.Date(2026, 3, 1, 12, 0, 0, 5e8, time.UTC),
				Email: "bo@example.com", Traits: map[string]any{"email": "bo@example.com", "name": "Bo"},
				Properties: map[string]any{"plan": "pro", "seats": int64(3)}},
		},
		{
			name: "identify",
			path: "/v1/identify",
			body: `{"userId":42,"messageId":"m-2","traits":{"email":"cy@example.com","company":"Acme","employees":250}}`,
			want: &engine.Event{ID: "m-2", Type: "identify", Lead: "42", Time: b.now,
				Email: "cy@example.com", Traits: map[string]any{"email": "cy@example.com", "company": "Acme", "employees": int64(250)}},
		},
		{
			name: "anonymous track with original timestamp",
			path: "/v1/track",
			body: `{"anonymousId":"anon-7","event":"pricing.viewed","messageId":"m-3","originalTimestamp":"2026-02-28T08:00:00+02:00"}`,
			want: &engine.Event{ID: "m-3", Type: "pricing.viewed", Lead: "anon-7", Time: time.Date(2026, 2, 28, 6, 0, 0, 0, time.UTC)},
		},
		{
			name: "page",
			path: "/v1/page",
			body: `{"userId":"u-1","messageId":"m-4","name":"Pricing","properties":{"path":"/pricing"}}`,
			want: &engine.Event{ID: "m-4", Type: "page.viewed", Lead: "u-1", Time: b.now,
				Properties: map[string]any{"path": "/pricing", "name": "Pricing"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, r, _ := do(t, h, tt.path, "application/json", tt.body)
			require.Equal(t, http.StatusAccepted, code, r.Error)
			require.Equal(t, []string{tt.want.ID}, r.Accepted)
		})
	}
	evs := b.streamEvents(t)
	require.Len(t, evs, len(tests))
	for i, tt := range tests {
		require.Equal(t, tt.want, evs[i], tt.name)
	}

	t.Run("invalid", func(t *testing.T) {
		for _, c := range []struct{ path, body, reason string }{
			{"/v1/track", `{"userId":"u","messageId":"x1"}`, "without event"},
			{"/v1/identify", `{"messageId":"x2","traits":{}}`, "neither userId nor anonymousId"},
			{"/v1/track", `{"userId":"u","event":"e","timestamp":"soon"}`, "RFC 3339"},
			{"/v1/track", `[1,2]`, "not a JSON Segment call"},
		} {
			code, r, _ := do(t, h, c.path, "application/json", c.body)
			require.Equal(t, http.StatusBadRequest, code, c.body)
			require.Len(t, r.Rejected, 1)
			require.Contains(t, r.Rejected[0].Error, c.reason)
		}
	})

	t.Run("batch with write key", func(t *testing.T) {
		body := `{"batch":[
			{"type":"identify","userId":"u-9","messageId":"m-10","traits":{"email":"di@example.com"}},
			{"type":"track","userId":"u-9","event":"trial.started","messageId":"m-11"},
			{"type":"alias","userId":"u-9","previousId":"anon","messageId":"m-12"},
			{"type":"track","userId":"u-9","event":"signed.up"}
		]}`
		code, r, _ := do(t, h, "/v1/batch", "application/json", body, "Authorization", "Basic "+basic(testToken, ""))
		require.Equal(t, http.StatusBadRequest, code)
		require.Len(t, r.Accepted, 3)
		require.Equal(t, []string{"m-10", "m-11"}, r.Accepted[:2])
		require.NotEmpty(t, r.Accepted[2], "a call without messageId gets a random id")
		require.Len(t, r.Rejected, 1)
		require.Equal(t, 2, r.Rejected[0].Index)
		require.Contains(t, r.Rejected[0].Error, `"alias" is not supported`)
		evs := b.streamEvents(t)
		require.Len(t, evs, len(tests)+3)
		require.Equal(t, "di@example.com", evs[len(tests)].Email)
		require.Equal(t, "signed.up", evs[len(tests)+2].Type)
	})
}

func TestHealth(t *testing.T) {
	t.Parallel()
	var ready error = errors.New("nats: disconnected")
	var mu sync.Mutex
	h := httpapi.New(httpapi.Config{
		Ready:   func() error { mu.Lock(); defer mu.Unlock(); return ready },
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("m 1\n")) }),
	})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, _ := get("/livez")
	require.Equal(t, 200, code)
	code, body := get("/readyz")
	require.Equal(t, 503, code)
	require.Contains(t, body, "disconnected")
	mu.Lock()
	ready = nil
	mu.Unlock()
	code, _ = get("/readyz")
	require.Equal(t, 200, code)
	code, body = get("/metrics")
	require.Equal(t, 200, code)
	require.Equal(t, "m 1\n", body)
	// Without an ingest config, the ingest routes do not exist.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/events", bytes.NewReader(nil)))
	require.Equal(t, http.StatusNotFound, rec.Code)
}
