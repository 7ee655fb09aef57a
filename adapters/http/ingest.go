package httpapi

// The ingest area: lead events in over HTTP.
//
//	POST /v1/events    one CloudEvent (application/cloudevents+json or
//	                   application/json) or a batch
//	                   (application/cloudevents-batch+json, or a JSON array
//	                   sent as application/json)
//	POST /v1/track     Segment-compatible track call
//	POST /v1/identify  Segment-compatible identify call
//	POST /v1/page      Segment-compatible page call (type "page.viewed")
//	POST /v1/batch     Segment-compatible batch ({"batch": [calls…]})
//
// Every route needs a token from IngestConfig.Tokens, sent as
// "Authorization: Bearer <token>" or, as Segment and RudderStack do, as the
// user name of HTTP Basic auth (the write key). With no tokens configured the
// ingest API is closed and answers 503.
//
// 202 Accepted means every event of the request was acknowledged by
// JetStream (it is durable and will be applied). Invalid events are never
// published; the answer is 400 with one reason per invalid item. A batch
// publishes its valid events and reports the invalid ones in the same 400
// answer, so a client that resends the whole batch after fixing it does no
// harm: event ids are deduplicated. A publish failure answers 503 with the
// events that did and did not make it; resending is safe for the same reason.
//
// Response body (JSON):
//
//	{"accepted": ["evt-1", "evt-3"],
//	 "rejected": [{"index": 1, "id": "evt-2", "error": "invalid event: missing type"}],
//	 "failed":   [{"index": 2, "id": "evt-4", "error": "publish: …"}],
//	 "error":    "…"}

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
	"github.com/nurture-oss/nurture/internal/redact"
)

// Publisher publishes one lead event and returns once JetStream has
// acknowledged it (the event is stored in the stream).
type Publisher interface {
	PublishEvent(ctx context.Context, ev *engine.Event) error
}

// IngestConfig holds the dependencies of the ingest area.
type IngestConfig struct {
	// Publisher receives every valid event.
	Publisher Publisher
	// Tokens are the accepted bearer tokens. None: the ingest API is closed.
	Tokens []string
	// MaxBatch is the largest number of events in one request (default 1000).
	MaxBatch int
	// Now is the clock used for events without a time (default time.Now).
	Now func() time.Time
	// Registerer, when set, receives the ingest metrics.
	Registerer prometheus.Registerer
}

// Segment source name written into CloudEvents built from Segment calls.
const segmentSource = "segment"

type ingest struct {
	pub      Publisher
	tokens   [][32]byte
	maxBatch int
	maxBody  int64
	now      func() time.Time
	events   *prometheus.CounterVec
	s        *Server
}

func (s *Server) routeIngest(c *IngestConfig) {
	in := &ingest{pub: c.Publisher, maxBatch: c.MaxBatch, maxBody: s.cfg.MaxBody, now: c.Now, s: s}
	if in.maxBatch <= 0 {
		in.maxBatch = 1000
	}
	if in.now == nil {
		in.now = time.Now
	}
	for _, t := range c.Tokens {
		if t = strings.TrimSpace(t); t != "" {
			in.tokens = append(in.tokens, sha256.Sum256([]byte(t)))
		}
	}
	in.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nurture_ingest_events_total",
		Help: "Events received over HTTP by outcome: accepted (acknowledged by JetStream), rejected (invalid), failed (publish error).",
	}, []string{"outcome"})
	if c.Registerer != nil {
		if err := c.Registerer.Register(in.events); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				in.events = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	s.mux.HandleFunc("POST /v1/events", in.auth(in.handleEvents))
	s.mux.HandleFunc("POST /v1/track", in.auth(in.segment("track")))
	s.mux.HandleFunc("POST /v1/identify", in.auth(in.segment("identify")))
	s.mux.HandleFunc("POST /v1/page", in.auth(in.segment("page")))
	s.mux.HandleFunc("POST /v1/batch", in.auth(in.segment("batch")))
}

// ingestReply is the JSON answer of every ingest route.
type ingestReply struct {
	Accepted []string     `json:"accepted"`
	Rejected []itemReason `json:"rejected,omitempty"`
	Failed   []itemReason `json:"failed,omitempty"`
	Error    string       `json:"error,omitempty"`
}

type itemReason struct {
	Index int    `json:"index"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func replyError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ingestReply{Accepted: []string{}, Error: msg})
}

// auth checks the request's token against the configured ones in constant
// time (every token is compared; digests hide the lengths).
func (in *ingest) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(in.tokens) == 0 {
			replyError(w, http.StatusServiceUnavailable,
				"ingest API closed: no API tokens configured (set NURTURE_API_TOKENS)")
			return
		}
		tok, ok := requestToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nurture"`)
			replyError(w, http.StatusUnauthorized, "missing token: send Authorization: Bearer <token>")
			return
		}
		sum := sha256.Sum256([]byte(tok))
		match := 0
		for i := range in.tokens {
			match |= subtle.ConstantTimeCompare(sum[:], in.tokens[i][:])
		}
		if match != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nurture", error="invalid_token"`)
			replyError(w, http.StatusUnauthorized, "invalid token")
			return
		}
		next(w, r)
	}
}

// requestToken returns the bearer token, or the Basic auth user name (the
// Segment write key) or, when the user name is empty, the password.
func requestToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok = strings.TrimSpace(tok)
		return tok, tok != ""
	}
	if user, pass, ok := r.BasicAuth(); ok {
		if user != "" {
			return user, true
		}
		return pass, pass != ""
	}
	return "", false
}

// readBody reads at most limit bytes; ok=false means an answer was written.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			replyError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over the %d byte limit", limit))
			return nil, false
		}
		replyError(w, http.StatusBadRequest, "reading request body: "+err.Error())
		return nil, false
	}
	return body, true
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

func (in *ingest) handleEvents(w http.ResponseWriter, r *http.Request) {
	var batch bool
	switch mediaType(r) {
	case cloudevent.ContentType:
	case cloudevent.BatchContentType:
		batch = true
	case "application/json":
		// A JSON array sent as plain JSON is read as a batch.
	default:
		replyError(w, http.StatusUnsupportedMediaType, fmt.Sprintf(
			"content type %q: want %s, %s or application/json",
			r.Header.Get("Content-Type"), cloudevent.ContentType, cloudevent.BatchContentType))
		return
	}
	body, ok := readBody(w, r, in.maxBody)
	if !ok {
		return
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if !batch && len(trimmed) > 0 && trimmed[0] == '[' && mediaType(r) == "application/json" {
		batch = true
	}
	if !batch {
		if len(body) > cloudevent.MaxSize {
			replyError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("event is %d bytes, over the %d byte limit", len(body), cloudevent.MaxSize))
			return
		}
		ev, err := cloudevent.Parse(body)
		in.publish(w, r, []item{{ev: ev, err: err, id: rawID(body)}})
		return
	}
	results, err := cloudevent.ParseBatch(body)
	if err != nil {
		replyError(w, http.StatusBadRequest, err.Error())
		return
	}
	items := make([]item, len(results))
	for i, res := range results {
		items[i] = item{ev: res.Event, err: res.Err, id: rawID(res.Raw)}
	}
	in.publish(w, r, items)
}

// item is one event of a request: parsed, or the reason it is invalid.
type item struct {
	ev  *engine.Event
	err error
	id  string // the id, when one could be read, for reporting
}

// rawID extracts "id" from a raw event for error reports.
func rawID(b []byte) string {
	var v struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(b, &v) != nil {
		return ""
	}
	if s, ok := v.ID.(string); ok && len(s) <= 256 {
		return s
	}
	return ""
}

// publish publishes the valid items in order and answers the request.
func (in *ingest) publish(w http.ResponseWriter, r *http.Request, items []item) {
	if len(items) == 0 {
		replyError(w, http.StatusBadRequest, "empty batch")
		return
	}
	if len(items) > in.maxBatch {
		replyError(w, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("batch of %d events, over the limit of %d", len(items), in.maxBatch))
		return
	}
	rep := ingestReply{Accepted: make([]string, 0, len(items))}
	var pubErr error
	for i, it := range items {
		if it.err != nil {
			rep.Rejected = append(rep.Rejected, itemReason{Index: i, ID: it.id, Error: it.err.Error()})
			continue
		}
		if pubErr != nil {
			rep.Failed = append(rep.Failed, itemReason{Index: i, ID: it.ev.ID, Error: "not attempted after an earlier publish failure"})
			continue
		}
		if it.ev.Time.IsZero() {
			it.ev.Time = in.now().UTC()
		}
		if err := in.pub.PublishEvent(r.Context(), it.ev); err != nil {
			pubErr = err
			in.s.log.Warn("ingest publish failed", "event_id", redact.Email(it.ev.ID), "error", redact.Error(err))
			rep.Failed = append(rep.Failed, itemReason{Index: i, ID: it.ev.ID, Error: "publish: " + err.Error()})
			continue
		}
		rep.Accepted = append(rep.Accepted, it.ev.ID)
	}
	in.events.WithLabelValues("accepted").Add(float64(len(rep.Accepted)))
	in.events.WithLabelValues("rejected").Add(float64(len(rep.Rejected)))
	in.events.WithLabelValues("failed").Add(float64(len(rep.Failed)))
	switch {
	case pubErr != nil:
		rep.Error = "publishing to NATS failed; resending the request is safe (event ids are deduplicated)"
		writeJSON(w, http.StatusServiceUnavailable, rep)
	case len(rep.Rejected) > 0:
		if len(rep.Accepted) > 0 {
			rep.Error = fmt.Sprintf("%d of %d events invalid; the others were accepted", len(rep.Rejected), len(items))
		} else {
			rep.Error = "invalid event"
			if len(items) > 1 {
				rep.Error = "every event is invalid"
			}
		}
		writeJSON(w, http.StatusBadRequest, rep)
	default:
		writeJSON(w, http.StatusAccepted, rep)
	}
}

// segmentCall is the subset of a Segment spec call that Nurture reads.
type segmentCall struct {
	Type        string         `json:"type"`
	UserID      any            `json:"userId"`
	AnonymousID any            `json:"anonymousId"`
	Event       string         `json:"event"`
	Name        string         `json:"name"`
	Properties  map[string]any `json:"properties"`
	Traits      map[string]any `json:"traits"`
	Context     struct {
		Traits map[string]any `json:"traits"`
	} `json:"context"`
	MessageID         any    `json:"messageId"`
	Timestamp         string `json:"timestamp"`
	OriginalTimestamp string `json:"originalTimestamp"`
}

// segment handles one Segment route; kind is "track", "identify", "page" or
// "batch".
func (in *ingest) segment(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if mt := mediaType(r); mt != "application/json" && mt != "text/plain" && mt != "" {
			replyError(w, http.StatusUnsupportedMediaType,
				fmt.Sprintf("content type %q: want application/json", r.Header.Get("Content-Type")))
			return
		}
		body, ok := readBody(w, r, in.maxBody)
		if !ok {
			return
		}
		var raws []json.RawMessage
		if kind == "batch" {
			var b struct {
				Batch []json.RawMessage `json:"batch"`
			}
			if err := json.Unmarshal(body, &b); err != nil {
				replyError(w, http.StatusBadRequest, "not a Segment batch ({\"batch\": [...]}): "+err.Error())
				return
			}
			raws = b.Batch
		} else {
			if len(body) > cloudevent.MaxSize {
				replyError(w, http.StatusRequestEntityTooLarge,
					fmt.Sprintf("call is %d bytes, over the %d byte limit", len(body), cloudevent.MaxSize))
				return
			}
			raws = []json.RawMessage{body}
		}
		items := make([]item, len(raws))
		for i, raw := range raws {
			ev, id, err := fromSegment(raw, kind)
			items[i] = item{ev: ev, err: err, id: id}
		}
		in.publish(w, r, items)
	}
}

// fromSegment maps one Segment call to a lead event through the CloudEvent
// envelope, so it meets exactly the checks of /v1/events:
//
//	userId, else anonymousId → subject (the lead key)
//	event (track) / "identify" / "page.viewed" → type
//	messageId → id (a random id when absent: no deduplication then)
//	timestamp, else originalTimestamp → time (else: received now)
//	traits (identify) or context.traits → traits; traits.email → email
//	properties → properties (page: name is added as properties.name)
func fromSegment(raw []byte, route string) (*engine.Event, string, error) {
	var c segmentCall
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return nil, "", fmt.Errorf("%w: not a JSON Segment call: %v", cloudevent.ErrInvalid, err)
	}
	kind := route
	if route == "batch" {
		kind = strings.ToLower(c.Type)
	}
	id := scalarString(c.MessageID)
	var typ string
	traits := c.Traits
	switch kind {
	case "track":
		typ = c.Event
		if typ == "" {
			return nil, id, fmt.Errorf("%w: track call without event", cloudevent.ErrInvalid)
		}
		if traits == nil {
			traits = c.Context.Traits
		}
	case "identify":
		typ = "identify"
		if traits == nil {
			traits = c.Context.Traits
		}
	case "page":
		typ = "page.viewed"
		if traits == nil {
			traits = c.Context.Traits
		}
		if c.Name != "" {
			if c.Properties == nil {
				c.Properties = map[string]any{}
			}
			if _, ok := c.Properties["name"]; !ok {
				c.Properties["name"] = c.Name
			}
		}
	default:
		return nil, id, fmt.Errorf("%w: Segment call type %q is not supported (track, identify, page)", cloudevent.ErrInvalid, c.Type)
	}
	subject := scalarString(c.UserID)
	if subject == "" {
		subject = scalarString(c.AnonymousID)
	}
	if subject == "" {
		return nil, id, fmt.Errorf("%w: neither userId nor anonymousId", cloudevent.ErrInvalid)
	}
	if id == "" {
		id = randomID()
	}
	data := cloudevent.Data{Traits: traits, Properties: c.Properties}
	if e, ok := traits["email"].(string); ok {
		data.Email = e
	}
	dataJSON, err := json.Marshal(data)
	if err != nil {
		return nil, id, fmt.Errorf("%w: data: %v", cloudevent.ErrInvalid, err)
	}
	ts := c.Timestamp
	if ts == "" {
		ts = c.OriginalTimestamp
	}
	env := cloudevent.Envelope{SpecVersion: "1.0", ID: id, Source: segmentSource, Type: typ,
		Subject: subject, Time: ts, DataContentType: "application/json", Data: dataJSON}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, id, fmt.Errorf("%w: %v", cloudevent.ErrInvalid, err)
	}
	ev, err := cloudevent.Parse(b)
	return ev, id, err
}

// scalarString renders a JSON string or number id; anything else is "".
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	}
	return ""
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
