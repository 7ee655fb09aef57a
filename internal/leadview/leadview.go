package leadview

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/store"
)

// History kinds the builder understands. Other kinds appear in the timeline
// with a generic summary.
const (
	KindEvent        = "event"
	KindScoreChanged = "score.changed"
	KindEmailSent    = "email.sent"
	KindEscalated    = "escalated"
	KindAcknowledged = "acknowledged"
	KindDelivery     = "delivery" // an outbox outcome
)

// View is what a rep sees about one lead at one moment.
type View struct {
	Key     string `json:"key"`
	Name    string `json:"name"`              // best display name: traits, else email, else key
	Company string `json:"company,omitempty"` // traits.company (or company_name, organization)
	Title   string `json:"title,omitempty"`   // traits.title (or job_title)
	Email   string `json:"email,omitempty"`
	Status  string `json:"status"`
	// Score is the lead's score decayed to Now; Threshold the escalation
	// threshold (0 when unknown).
	Score     float64 `json:"score"`
	Threshold float64 `json:"threshold,omitempty"`
	Owner     *Rep    `json:"owner,omitempty"`
	// Escalation is the escalation being notified (or the lead's current
	// one on the lead page); nil when the lead was never escalated.
	Escalation *Escalation `json:"escalation,omitempty"`
	// Top are the rules that awarded the most points, highest first.
	Top []Contribution `json:"top_contributors"`
	// Recent is what the lead did lately, newest first.
	Recent []Activity `json:"recent_activity"`
	// Timeline is every history entry, oldest first (lead page only; empty
	// in notification views when Builder.FullTimeline is false).
	Timeline []Activity `json:"-"`
	// Points is the score over time, oldest first, ending at Now.
	Points []ScorePoint `json:"-"`
	// LeadURL is the lead page; AckURL the signed acknowledgement link (empty
	// when there is nothing to acknowledge or no signer is configured).
	LeadURL string         `json:"url,omitempty"`
	AckURL  string         `json:"ack_url,omitempty"`
	Traits  map[string]any `json:"traits,omitempty"`
	Now     time.Time      `json:"-"`
}

// Rep is a sales development rep as shown to people.
type Rep struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
}

// Display is the rep's name, or id when the name is unknown.
func (r *Rep) Display() string {
	if r == nil {
		return ""
	}
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

// Escalation is one escalation of the lead.
type Escalation struct {
	ID      string    `json:"id"`
	Attempt int       `json:"attempt"` // 1, then +1 per re-route
	Rep     string    `json:"rep"`
	Score   float64   `json:"score"`            // score at the crossing
	Reason  string    `json:"reason,omitempty"` // why this rep
	At      time.Time `json:"at,omitzero"`
	AckedBy string    `json:"acked_by,omitempty"`
	AckedAt time.Time `json:"acked_at,omitzero"`
	// AckDueAt is when the lead is re-routed if nobody acknowledges.
	AckDueAt time.Time `json:"ack_due_at,omitzero"`
}

// Acked reports whether the escalation was acknowledged.
func (e *Escalation) Acked() bool { return e != nil && e.AckedBy != "" }

// Contribution is the points one scoring rule awarded the lead.
type Contribution struct {
	Rule   string  `json:"rule"`
	Event  string  `json:"event"`  // event type the rule scores
	Points float64 `json:"points"` // sum of awarded deltas (before decay)
	Count  int     `json:"count"`  // how many times it fired
}

// Activity is one timeline entry, readable by a person.
type Activity struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`               // history kind
	Type    string    `json:"type,omitempty"`     // event type for events
	Summary string    `json:"summary"`            // one line
	EventID string    `json:"event_id,omitempty"` // the event, if any
	// Points awarded by this event (events) or the delta (score changes).
	Points float64 `json:"points,omitempty"`
	Rule   string  `json:"rule,omitempty"`
	// Data is the entry's raw JSON (lead API only).
	Data json.RawMessage `json:"-"`
}

// ScorePoint is the score at one moment. Change is true where a rule
// changed it; other points trace decay.
type ScorePoint struct {
	At     time.Time `json:"at"`
	Score  float64   `json:"score"`
	Change bool      `json:"change,omitempty"`
}

// Builder builds views. Its fields are configuration; a zero Builder works
// (no links, no decay, no rep names).
type Builder struct {
	// PublicURL is the base of the lead page and ack links
	// (e.g. "https://nurture.example.com").
	PublicURL string
	// HalfLife of the score (Scoring.HalfLife); 0 = no decay.
	HalfLife time.Duration
	// Threshold is shown next to the score.
	Threshold float64
	// Reps is the rep directory (Scoring.Routing.Reps).
	Reps []engine.Rep
	// Rules maps scoring rule ids to the event type they score
	// (Scoring.Rules); used to label contributions.
	Rules []*engine.Rule
	// AckToken signs an acknowledgement claim into a URL-safe token (the
	// token package with purpose AckPurpose). Nil: no ack links.
	AckToken func(c AckClaim) (string, error)
	// LeadToken signs a lead key into a URL-safe token (purpose
	// PagePurpose) that opens the lead page without an API token. Nil:
	// lead links carry no token (the page must be open or behind a proxy).
	LeadToken func(key string) (string, error)
	// TopN and RecentN bound Top and Recent (defaults 5 and 8).
	TopN, RecentN int
}

// NewBuilder returns a builder for the scoring model s (may be nil).
func NewBuilder(publicURL string, s *engine.Scoring) *Builder {
	b := &Builder{PublicURL: publicURL}
	if s != nil {
		b.HalfLife = s.HalfLife
		b.Threshold = s.Threshold
		b.Reps = s.Routing.Reps
		b.Rules = s.Rules
	}
	return b
}

// Input is what one view is built from.
type Input struct {
	Lead *engine.Lead
	// History is the lead's timeline in any order (it is sorted by time,
	// stable for equal times).
	History []store.History
	// Escalation is the escalation a notification is about; nil means the
	// lead's current escalation.
	Escalation *engine.Escalated
	Now        time.Time
}

// Build builds the view of in.Lead at in.Now.
func (b *Builder) Build(in Input) (View, error) {
	l := in.Lead
	if l == nil {
		return View{}, fmt.Errorf("build lead view: no lead")
	}
	now := in.Now
	if now.IsZero() {
		now = l.UpdatedAt
	}
	v := View{
		Key:       l.Key,
		Email:     l.Email,
		Status:    string(l.Status),
		Score:     round(Decay(l.Score.Value, l.Score.At, now, b.HalfLife)),
		Threshold: b.Threshold,
		Traits:    l.Traits,
		Now:       now,
	}
	var err error
	if v.LeadURL, err = b.LeadURL(l.Key); err != nil {
		return View{}, err
	}
	v.Name, v.Company, v.Title = identity(l)

	v.Escalation = escalation(l, in.Escalation)
	owner := l.Owner
	if v.Escalation != nil && v.Escalation.Rep != "" {
		owner = v.Escalation.Rep
	}
	if owner != "" {
		v.Owner = b.rep(owner)
	}
	if v.Escalation != nil && !v.Escalation.Acked() && b.AckToken != nil && b.PublicURL != "" {
		tok, err := b.AckToken(AckClaim{Lead: l.Key, Escalation: v.Escalation.ID, Rep: v.Escalation.Rep})
		if err != nil {
			return View{}, fmt.Errorf("build lead view %s: sign ack link: %w", l.Key, err)
		}
		v.AckURL = strings.TrimRight(b.PublicURL, "/") + "/ack/" + url.PathEscape(tok)
	}

	hist := slices.Clone(in.History)
	slices.SortStableFunc(hist, func(a, b store.History) int { return a.At.Compare(b.At) })
	v.Timeline, v.Top, v.Points = b.timeline(l, hist, now)
	v.Recent = b.recent(v.Timeline)
	if e := v.Escalation; e != nil && e.Reason == "" && e.Score == 0 {
		// The lead's state does not keep the crossing's score and the
		// routing reason; the timeline does.
		for i := len(hist) - 1; i >= 0; i-- {
			if hist[i].Kind != KindEscalated {
				continue
			}
			var x engine.Escalated
			if json.Unmarshal(hist[i].Data, &x) == nil && x.ID == e.ID && x.Attempt == e.Attempt {
				e.Score, e.Reason = round(x.Score), x.Reason
				break
			}
		}
	}
	return v, nil
}

// LeadURL is the lead page of key, signed when LeadToken is set ("" without
// a PublicURL).
func (b *Builder) LeadURL(key string) (string, error) {
	if b.PublicURL == "" {
		return "", nil
	}
	u := strings.TrimRight(b.PublicURL, "/") + "/leads/" + url.PathEscape(key)
	if b.LeadToken != nil {
		tok, err := b.LeadToken(key)
		if err != nil {
			return "", fmt.Errorf("sign lead link %s: %w", key, err)
		}
		u += "?t=" + url.QueryEscape(tok)
	}
	return u, nil
}

// Rep resolves a rep id against the directory.
func (b *Builder) rep(id string) *Rep {
	for _, r := range b.Reps {
		if r.ID == id {
			return &Rep{ID: r.ID, Name: r.Name, Email: r.Email}
		}
	}
	return &Rep{ID: id}
}

// Rep resolves a rep id against the directory (nil for "").
func (b *Builder) Rep(id string) *Rep {
	if id == "" {
		return nil
	}
	return b.rep(id)
}

// Decay is the value v recorded at `at` decayed to now with the half-life
// hl (no decay when hl is 0, at is zero or now is not after at).
func Decay(v float64, at, now time.Time, hl time.Duration) float64 {
	if hl <= 0 || at.IsZero() || !now.After(at) {
		return v
	}
	return v * math.Exp2(-float64(now.Sub(at))/float64(hl))
}

func round(f float64) float64 { return math.Round(f*100) / 100 }

func escalation(l *engine.Lead, e *engine.Escalated) *Escalation {
	cur := l.Escalation
	if e == nil {
		if cur == nil {
			return nil
		}
		return &Escalation{
			ID: cur.ID, Attempt: cur.Attempt, Rep: cur.Rep, At: cur.At,
			AckedBy: cur.AckedBy, AckedAt: cur.AckedAt, AckDueAt: cur.AckDueAt,
		}
	}
	out := &Escalation{ID: e.ID, Attempt: e.Attempt, Rep: e.Rep, Score: round(e.Score), Reason: e.Reason}
	if cur != nil && cur.ID == e.ID {
		out.At = cur.At
		out.AckedBy, out.AckedAt = cur.AckedBy, cur.AckedAt
		if cur.Attempt == e.Attempt {
			out.AckDueAt = cur.AckDueAt
		}
	}
	return out
}

// identity picks the display name, company and title from traits.
func identity(l *engine.Lead) (name, company, title string) {
	t := l.Traits
	name = firstTrait(t, "name", "full_name", "fullName")
	if name == "" {
		name = strings.TrimSpace(firstTrait(t, "first_name", "firstName") + " " + firstTrait(t, "last_name", "lastName"))
	}
	if name == "" {
		name = l.Email
	}
	if name == "" {
		name = l.Key
	}
	company = firstTrait(t, "company", "company_name", "companyName", "organization")
	title = firstTrait(t, "title", "job_title", "jobTitle")
	return name, company, title
}

func firstTrait(t map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := t[k].(string); ok && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// timeline turns history into activities, sums contributions and traces
// the score over time.
func (b *Builder) timeline(l *engine.Lead, hist []store.History, now time.Time) ([]Activity, []Contribution, []ScorePoint) {
	ruleEvent := map[string]string{}
	for _, r := range b.Rules {
		if r != nil {
			ruleEvent[r.ID] = r.Event
		}
	}
	eventType := map[string]string{} // event id → type
	pointsByEvent := map[string]float64{}
	for _, h := range hist {
		switch h.Kind {
		case KindEvent:
			var ev engine.Event
			if json.Unmarshal(h.Data, &ev) == nil {
				if id := cmp.Or(h.EventID, ev.ID); id != "" {
					eventType[id] = ev.Type
				}
			}
		case KindScoreChanged:
			var sc engine.ScoreChanged
			if json.Unmarshal(h.Data, &sc) == nil {
				if id := cmp.Or(sc.Event, h.EventID); id != "" {
					pointsByEvent[id] += sc.Delta
				}
			}
		}
	}

	var acts []Activity
	contrib := map[string]*Contribution{}
	var points []ScorePoint
	start := l.CreatedAt
	if !start.IsZero() {
		points = append(points, ScorePoint{At: start, Score: 0})
	}
	for _, h := range hist {
		a := Activity{At: h.At, Kind: h.Kind, EventID: h.EventID, Data: h.Data}
		switch h.Kind {
		case KindEvent:
			var ev engine.Event
			_ = json.Unmarshal(h.Data, &ev)
			ev.ID = cmp.Or(h.EventID, ev.ID)
			a.EventID, a.Type = ev.ID, ev.Type
			a.Summary = eventSummary(ev)
			a.Points = round(pointsByEvent[ev.ID])
		case KindScoreChanged:
			var sc engine.ScoreChanged
			_ = json.Unmarshal(h.Data, &sc)
			a.Rule, a.Points = sc.Rule, round(sc.Delta)
			a.EventID = cmp.Or(sc.Event, h.EventID)
			et := cmp.Or(ruleEvent[sc.Rule], eventType[a.EventID])
			a.Type = et
			a.Summary = fmt.Sprintf("%s %s (rule %s) → score %s", signed(sc.Delta), label(et, "points"), orDash(sc.Rule), num(sc.Score))
			if sc.Capped {
				a.Summary += ", capped"
			}
			if sc.Rule != "" && sc.Delta != 0 {
				c := contrib[sc.Rule]
				if c == nil {
					c = &Contribution{Rule: sc.Rule, Event: et}
					contrib[sc.Rule] = c
				}
				c.Points += sc.Delta
				c.Count++
			}
			points = b.trace(points, h.At, sc.Score)
		case KindEmailSent:
			var se engine.SendEmail
			_ = json.Unmarshal(h.Data, &se)
			a.Summary = "Email sent: " + label(se.Template, "template") + " (" + label(se.Sequence, "sequence") + " / " + label(se.Step, "step") + ")"
		case KindEscalated:
			var e engine.Escalated
			_ = json.Unmarshal(h.Data, &e)
			verb := "Escalated to "
			if e.Attempt > 1 {
				verb = fmt.Sprintf("Re-routed (attempt %d) to ", e.Attempt)
			}
			a.Summary = verb + b.rep(e.Rep).Display() + " at score " + num(e.Score)
			if e.Reason != "" {
				a.Summary += ": " + e.Reason
			}
		case KindAcknowledged:
			var e engine.Acknowledged
			_ = json.Unmarshal(h.Data, &e)
			a.Summary = "Acknowledged by " + b.rep(e.Rep).Display()
		case KindDelivery:
			a.Summary = deliverySummary(h.Data)
		default:
			a.Summary = genericSummary(h.Kind, h.Data)
		}
		acts = append(acts, a)
	}
	if len(points) > 0 || l.Score.Value != 0 {
		points = b.trace(points, now, Decay(l.Score.Value, l.Score.At, now, b.HalfLife))
		points[len(points)-1].Change = false
	}

	top := make([]Contribution, 0, len(contrib))
	for _, c := range contrib {
		c.Points = round(c.Points)
		if c.Points > 0 {
			top = append(top, *c)
		}
	}
	slices.SortFunc(top, func(a, b Contribution) int {
		if c := cmp.Compare(b.Points, a.Points); c != 0 {
			return c
		}
		return strings.Compare(a.Rule, b.Rule)
	})
	if n := cmp.Or(b.TopN, 5); len(top) > n {
		top = top[:n]
	}
	return acts, top, points
}

// trace appends the score s at t, with decay samples between the previous
// point and t when the score decays.
func (b *Builder) trace(points []ScorePoint, t time.Time, s float64) []ScorePoint {
	if len(points) > 0 {
		prev := points[len(points)-1]
		gap := t.Sub(prev.At)
		if gap > 0 && prev.Score != 0 && b.HalfLife > 0 {
			const samples = 8
			for i := 1; i < samples; i++ {
				at := prev.At.Add(gap * time.Duration(i) / samples)
				points = append(points, ScorePoint{At: at, Score: round(Decay(prev.Score, prev.At, at, b.HalfLife))})
			}
		}
		// The score holds (decaying) until the change, then steps.
		if before := round(Decay(prev.Score, prev.At, t, b.HalfLife)); gap > 0 && before != round(s) {
			points = append(points, ScorePoint{At: t, Score: before})
		}
	}
	return append(points, ScorePoint{At: t, Score: round(s), Change: true})
}

// recent is the SDR's "what did they do lately": events and emails, newest
// first.
func (b *Builder) recent(acts []Activity) []Activity {
	n := cmp.Or(b.RecentN, 8)
	var out []Activity
	for i := len(acts) - 1; i >= 0 && len(out) < n; i-- {
		switch acts[i].Kind {
		case KindEvent, KindEmailSent:
			if acts[i].Type == engine.EventEscalationAcked || acts[i].Type == engine.EventLeadEscalated {
				continue
			}
			out = append(out, acts[i])
		}
	}
	return out
}

// eventSummary says what an event was, with the property a rep cares about.
func eventSummary(ev engine.Event) string {
	s := label(ev.Type, "event")
	for _, k := range []string{"url", "page", "path", "title", "name", "plan", "template", "step"} {
		if v, ok := ev.Properties[k]; ok {
			if str := fmt.Sprint(v); str != "" {
				s += " · " + truncate(str, 80)
				break
			}
		}
	}
	if ev.Machine {
		s += " (machine traffic)"
	}
	return s
}

// deliverySummary describes an outbox outcome recorded by the runtime.
func deliverySummary(data json.RawMessage) string {
	var d struct {
		Kind    string `json:"kind"`
		Outcome string `json:"outcome"`
		Attempt int    `json:"attempt"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(data, &d) != nil || d.Kind == "" {
		return "delivery"
	}
	what := map[string]string{
		store.KindEmail: "Email", store.KindNotifySlack: "Slack notification",
		store.KindNotifyWebhook: "Webhook notification", store.KindNotifyEmail: "Rep email",
		store.KindEvent: "Event",
	}[d.Kind]
	s := cmp.Or(what, d.Kind) + ": " + cmp.Or(d.Outcome, "done")
	if d.Attempt > 1 {
		s += fmt.Sprintf(" (attempt %d)", d.Attempt)
	}
	if d.Error != "" {
		s += ": " + truncate(d.Error, 120)
	}
	return s
}

func genericSummary(kind string, data json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil || len(m) == 0 {
		return kind
	}
	var parts []string
	for _, k := range []string{"Sequence", "sequence", "Step", "step", "Reason", "reason", "Template", "template", "From", "To", "Status", "status", "Error", "error"} {
		if v, ok := m[k]; ok {
			if s := fmt.Sprint(v); s != "" {
				parts = append(parts, strings.ToLower(k)+" "+truncate(s, 60))
			}
		}
	}
	if len(parts) == 0 {
		return kind
	}
	return kind + ": " + strings.Join(parts, ", ")
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func label(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func orDash(s string) string { return label(s, "–") }

func num(f float64) string {
	return strconv.FormatFloat(round(f), 'f', -1, 64)
}

func signed(f float64) string {
	if f >= 0 {
		return "+" + num(f)
	}
	return num(f)
}

// Num formats a score for people (at most two decimals).
func Num(f float64) string { return num(f) }

// Signed formats points with their sign (+10, -5).
func Signed(f float64) string { return signed(f) }
