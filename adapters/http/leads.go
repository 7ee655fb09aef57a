package httpapi

// The leads area: what people and programs see about a lead, and how a rep
// takes it.
//
//	GET  /v1/leads/{key}              lead JSON: score, owner, escalation,
//	                                  enrollments, timeline (bearer token)
//	GET  /leads/{key}?t=<token>       the lead page (HTML, score chart as SVG);
//	                                  t is the signed link from a notification
//	                                  (or send the bearer token)
//	GET  /ack/{token}                 confirm page for a signed ack link
//	POST /ack/{token}                 acknowledge (publishes escalation.acknowledged)
//	POST /v1/escalations/{id}/ack     acknowledge by API, body {"rep": "…"} (bearer)
//	PUT  /v1/reps/{id}/away           body {"away": true|false} (bearer)
//
// A GET never acknowledges: mail scanners and link previews follow links.
// Acknowledgement is an event (type escalation.acknowledged, properties
// escalation and rep) published into the LEADS stream, so the engine records
// it in the lead's timeline like everything else; its id is derived from
// the escalation and the rep, so a double click is deduplicated.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/redact"
	"github.com/nurture-oss/nurture/internal/store"
)

// LeadReader loads a lead and its timeline (store.Reader satisfies it).
type LeadReader interface {
	Lead(ctx context.Context, key string) (*engine.Lead, error)
	History(ctx context.Context, leadKey string, limit int) ([]store.History, error)
}

// LinkVerifier verifies signed link tokens (*token.Signer satisfies it).
type LinkVerifier interface {
	Verify(purpose, tok string) ([]byte, error)
}

// EventPublisher publishes a lead event into LEADS and returns once it is
// stored (the ingest publisher satisfies it).
type EventPublisher interface {
	PublishEvent(ctx context.Context, ev *engine.Event) error
}

// RepAdmin marks reps away (store.Admin satisfies it).
type RepAdmin interface {
	SetRepAway(ctx context.Context, rep string, away bool) error
}

// LeadsConfig holds the dependencies of the leads area.
type LeadsConfig struct {
	Store LeadReader
	// Views builds what the page and the API show (public URL, decay,
	// reps, link signing).
	Views *leadview.Builder
	// Tokens are the accepted API bearer tokens (NURTURE_API_TOKENS). None:
	// the /v1 routes of this area answer 503.
	Tokens []string
	// Links verifies lead page and ack link tokens. Nil: ack links are not
	// served and lead pages need a bearer token (or OpenPages).
	Links LinkVerifier
	// Publisher receives acknowledgement events. Nil: acknowledgement
	// answers 503.
	Publisher EventPublisher
	// Reps marks reps away. Nil: the away route answers 503.
	Reps RepAdmin
	// OpenPages serves lead pages without a token (nurture dev on
	// localhost only: lead pages show personal data).
	OpenPages bool
	// HistoryLimit bounds the timeline (default 1000 entries).
	HistoryLimit int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

type leads struct {
	c      LeadsConfig
	tokens [][32]byte
	s      *Server
}

func (s *Server) routeLeads(c *LeadsConfig) {
	l := &leads{c: *c, s: s}
	if l.c.Views == nil {
		l.c.Views = &leadview.Builder{PublicURL: s.cfg.PublicURL}
	}
	if l.c.HistoryLimit <= 0 {
		l.c.HistoryLimit = 1000
	}
	if l.c.Now == nil {
		l.c.Now = time.Now
	}
	for _, t := range c.Tokens {
		if t = strings.TrimSpace(t); t != "" {
			l.tokens = append(l.tokens, sha256.Sum256([]byte(t)))
		}
	}
	s.mux.HandleFunc("GET /v1/leads/{key}", l.api(l.getLead))
	s.mux.HandleFunc("POST /v1/escalations/{id}/ack", l.api(l.apiAck))
	s.mux.HandleFunc("PUT /v1/reps/{id}/away", l.api(l.repAway))
	s.mux.HandleFunc("GET /leads/{key}", l.page)
	s.mux.HandleFunc("GET /ack/{token}", l.ackPage)
	s.mux.HandleFunc("POST /ack/{token}", l.ackPost)
}

// --- API -------------------------------------------------------------------

type apiError struct {
	Error string `json:"error"`
}

func leadsJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func leadsError(w http.ResponseWriter, status int, msg string) {
	leadsJSON(w, status, apiError{Error: msg})
}

// bearer reports whether r carries a configured API token (constant time).
func (l *leads) bearer(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || len(l.tokens) == 0 {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	match := 0
	for i := range l.tokens {
		match |= subtle.ConstantTimeCompare(sum[:], l.tokens[i][:])
	}
	return match == 1
}

func (l *leads) api(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if len(l.tokens) == 0 {
			leadsError(w, http.StatusServiceUnavailable, "API closed: no API tokens configured (set NURTURE_API_TOKENS)")
			return
		}
		if !l.bearer(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nurture"`)
			leadsError(w, http.StatusUnauthorized, "missing or invalid token: send Authorization: Bearer <token>")
			return
		}
		next(w, r)
	}
}

// LeadDoc is the JSON of GET /v1/leads/{key}.
type LeadDoc struct {
	Lead struct {
		Key       string         `json:"key"`
		Name      string         `json:"name"`
		Company   string         `json:"company,omitempty"`
		Title     string         `json:"title,omitempty"`
		Email     string         `json:"email,omitempty"`
		Traits    map[string]any `json:"traits,omitempty"`
		URL       string         `json:"url,omitempty"`
		CreatedAt time.Time      `json:"created_at"`
		UpdatedAt time.Time      `json:"updated_at"`
	} `json:"lead"`
	Status string   `json:"status"`
	Score  ScoreDoc `json:"score"`
	// Owner is the rep who owns the lead (null when nobody does).
	Owner       *leadview.Rep           `json:"owner"`
	Escalation  *leadview.Escalation    `json:"escalation"`
	Enrollments []*engine.Enrollment    `json:"enrollments"`
	Top         []leadview.Contribution `json:"top_contributors"`
	Timeline    []TimelineEntry         `json:"timeline"`
}

// ScoreDoc is the lead's score.
type ScoreDoc struct {
	Value     float64   `json:"value"` // decayed to At
	At        time.Time `json:"at"`
	Threshold float64   `json:"threshold,omitempty"`
	// Armed: a crossing of the threshold would escalate. Crossings counts
	// escalations so far.
	Armed     bool                  `json:"armed"`
	Crossings int                   `json:"crossings"`
	History   []leadview.ScorePoint `json:"history"`
}

// TimelineEntry is one entry of the lead's timeline: an applied event, a
// score change with its rule, an email, an escalation, an
// acknowledgement… Data is the recorded entry as JSON.
type TimelineEntry struct {
	At      time.Time       `json:"at"`
	Kind    string          `json:"kind"`
	Type    string          `json:"type,omitempty"`
	EventID string          `json:"event_id,omitempty"`
	Rule    string          `json:"rule,omitempty"`
	Points  float64         `json:"points,omitempty"`
	Summary string          `json:"summary"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// load builds the view of key, writing the error answer when it fails.
func (l *leads) load(ctx context.Context, key string) (*engine.Lead, leadview.View, error) {
	lead, err := l.c.Store.Lead(ctx, key)
	if err != nil {
		return nil, leadview.View{}, fmt.Errorf("load lead %s: %w", key, err)
	}
	hist, err := l.c.Store.History(ctx, key, l.c.HistoryLimit)
	if err != nil {
		return nil, leadview.View{}, fmt.Errorf("load history of lead %s: %w", key, err)
	}
	v, err := l.c.Views.Build(leadview.Input{Lead: lead, History: hist, Now: l.c.Now()})
	if err != nil {
		return nil, leadview.View{}, err
	}
	return lead, v, nil
}

func (l *leads) loadError(w http.ResponseWriter, key string, err error) {
	if errors.Is(err, store.ErrNotFound) {
		leadsError(w, http.StatusNotFound, "no lead "+key)
		return
	}
	l.s.log.Error("lead api", "lead_id", redact.Email(key), "error", redact.Error(err))
	leadsError(w, http.StatusInternalServerError, "could not load the lead")
}

func (l *leads) getLead(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	lead, v, err := l.load(r.Context(), key)
	if err != nil {
		l.loadError(w, key, err)
		return
	}
	leadsJSON(w, http.StatusOK, leadDoc(lead, v))
}

func leadDoc(lead *engine.Lead, v leadview.View) LeadDoc {
	var d LeadDoc
	d.Lead.Key, d.Lead.Name, d.Lead.Company, d.Lead.Title = v.Key, v.Name, v.Company, v.Title
	d.Lead.Email, d.Lead.Traits, d.Lead.URL = v.Email, v.Traits, v.LeadURL
	d.Lead.CreatedAt, d.Lead.UpdatedAt = lead.CreatedAt, lead.UpdatedAt
	d.Status = v.Status
	d.Score = ScoreDoc{Value: v.Score, At: v.Now, Threshold: v.Threshold, Armed: lead.Armed, Crossings: lead.Crossings, History: v.Points}
	if d.Score.History == nil {
		d.Score.History = []leadview.ScorePoint{}
	}
	d.Owner, d.Escalation = v.Owner, v.Escalation
	d.Enrollments = lead.Enrollments
	if d.Enrollments == nil {
		d.Enrollments = []*engine.Enrollment{}
	}
	d.Top = v.Top
	if d.Top == nil {
		d.Top = []leadview.Contribution{}
	}
	d.Timeline = make([]TimelineEntry, 0, len(v.Timeline))
	for _, a := range v.Timeline {
		e := TimelineEntry{At: a.At, Kind: a.Kind, Type: a.Type, EventID: a.EventID, Rule: a.Rule, Points: a.Points, Summary: a.Summary}
		if json.Valid(a.Data) {
			e.Data = a.Data
		}
		d.Timeline = append(d.Timeline, e)
	}
	return d
}

// ackRequest is the body of POST /v1/escalations/{id}/ack.
type ackRequest struct {
	// Rep acknowledging; default: the rep the escalation is routed to.
	Rep string `json:"rep"`
	// Lead key; default: taken from the escalation id.
	Lead string `json:"lead"`
}

// ackReply answers an acknowledgement.
type ackReply struct {
	Status     string `json:"status"` // "accepted" or "already_acknowledged"
	Escalation string `json:"escalation"`
	Lead       string `json:"lead"`
	Rep        string `json:"rep"`
	EventID    string `json:"event_id,omitempty"`
}

func (l *leads) apiAck(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req ackRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		leadsError(w, http.StatusRequestEntityTooLarge, "body too large")
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			leadsError(w, http.StatusBadRequest, "body: want {\"rep\": \"…\"}: "+err.Error())
			return
		}
	}
	if req.Lead == "" {
		req.Lead, err = LeadOfEscalation(id)
		if err != nil {
			leadsError(w, http.StatusBadRequest, err.Error()+`; send {"lead": "…"}`)
			return
		}
	}
	status, reply, msg := l.acknowledge(r.Context(), leadview.AckClaim{Lead: req.Lead, Escalation: id, Rep: req.Rep}, "api")
	if msg != "" {
		leadsError(w, status, msg)
		return
	}
	leadsJSON(w, status, reply)
}

// acknowledge publishes the acknowledgement of claim after checking it
// against the lead's state. An empty claim.Rep means the current rep.
// It returns the HTTP status and either a reply or an error message.
func (l *leads) acknowledge(ctx context.Context, c leadview.AckClaim, via string) (int, ackReply, string) {
	if l.c.Publisher == nil {
		return http.StatusServiceUnavailable, ackReply{}, "acknowledgement unavailable: no event publisher"
	}
	lead, err := l.c.Store.Lead(ctx, c.Lead)
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusNotFound, ackReply{}, "no lead " + c.Lead
	}
	if err != nil {
		l.s.log.Error("acknowledge: load lead", "lead_id", redact.Email(c.Lead), "error", redact.Error(err))
		return http.StatusInternalServerError, ackReply{}, "could not load the lead"
	}
	e := lead.Escalation
	if e == nil || e.ID != c.Escalation {
		return http.StatusConflict, ackReply{}, fmt.Sprintf("escalation %s is not the lead's current escalation", c.Escalation)
	}
	if c.Rep == "" {
		c.Rep = e.Rep
	}
	if len(l.c.Views.Reps) > 0 && !knownRep(l.c.Views.Reps, c.Rep) {
		return http.StatusBadRequest, ackReply{}, "unknown rep " + c.Rep
	}
	reply := ackReply{Escalation: e.ID, Lead: c.Lead, Rep: c.Rep}
	if e.AckedBy != "" {
		reply.Status, reply.Rep = "already_acknowledged", e.AckedBy
		return http.StatusOK, reply, ""
	}
	ev := &engine.Event{
		ID:   AckEventID(c.Escalation, c.Rep),
		Type: engine.EventEscalationAcked,
		Lead: c.Lead,
		Time: l.c.Now().UTC(),
		Properties: map[string]any{
			"escalation": c.Escalation,
			"rep":        c.Rep,
			"via":        via,
		},
	}
	if err := l.c.Publisher.PublishEvent(ctx, ev); err != nil {
		l.s.log.Error("acknowledge: publish", "lead_id", redact.Email(c.Lead), "escalation", redact.Email(c.Escalation), "error", redact.Error(err))
		return http.StatusServiceUnavailable, ackReply{}, "could not record the acknowledgement; try again"
	}
	l.s.log.Info("escalation acknowledged", "lead_id", redact.Email(c.Lead), "escalation", redact.Email(c.Escalation), "rep", c.Rep, "via", via)
	reply.Status, reply.EventID = "accepted", ev.ID
	return http.StatusAccepted, reply, ""
}

func knownRep(reps []engine.Rep, id string) bool {
	for _, r := range reps {
		if r.ID == id {
			return true
		}
	}
	return false
}

// AckEventID is the id of the acknowledgement event of escalation by rep:
// the same for every click and API call, so duplicates are dropped.
func AckEventID(escalation, rep string) string {
	return escalation + ".ack." + url.PathEscape(rep)
}

// LeadOfEscalation recovers the lead key from an escalation id written by
// engine.EscalationID ("<escaped key>.escalation-<n>").
func LeadOfEscalation(id string) (string, error) {
	i := strings.LastIndex(id, ".escalation-")
	if i <= 0 {
		return "", fmt.Errorf("escalation id %q does not name its lead", id)
	}
	key, err := url.PathUnescape(id[:i])
	if err != nil {
		return "", fmt.Errorf("escalation id %q: %v", id, err)
	}
	return key, nil
}

type awayRequest struct {
	Away *bool `json:"away"`
}

func (l *leads) repAway(w http.ResponseWriter, r *http.Request) {
	rep := r.PathValue("id")
	if l.c.Reps == nil {
		leadsError(w, http.StatusServiceUnavailable, "rep admin unavailable")
		return
	}
	var req awayRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Away == nil {
		leadsError(w, http.StatusBadRequest, `body: want {"away": true} or {"away": false}`)
		return
	}
	if len(l.c.Views.Reps) > 0 && !knownRep(l.c.Views.Reps, rep) {
		leadsError(w, http.StatusNotFound, "unknown rep "+rep)
		return
	}
	if err := l.c.Reps.SetRepAway(r.Context(), rep, *req.Away); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			leadsError(w, http.StatusNotFound, "unknown rep "+rep)
			return
		}
		l.s.log.Error("set rep away", "rep", rep, "error", redact.Error(err))
		leadsError(w, http.StatusInternalServerError, "could not update the rep")
		return
	}
	l.s.log.Info("rep away changed", "rep", rep, "away", *req.Away)
	leadsJSON(w, http.StatusOK, map[string]any{"rep": rep, "away": *req.Away})
}
