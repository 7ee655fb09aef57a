// Package demo plays a realistic stream of lead events against the example
// content for `nurture dev --demo`: trial sign-ups with CRM traits, page
// views, dashboards, webinars, invited teammates and demo requests, and,
// reacting to the emails Nurture actually sends, opens and clicks that go
// through the real tracking endpoints. Leads acknowledge nothing; reps do:
// most escalations are acknowledged through the lead API a little later,
// the rest are left to re-route.
//
// The stream is deterministic for a seed: the same leads, traits, events
// and engagement decisions, at the same offsets from the demo's start on
// the (sped-up) clock. Event ids are derived from the seed, so replaying
// the script after a restart is harmless: the store applies each id once.
package demo

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// Publisher publishes a lead event into the LEADS stream.
type Publisher interface {
	PublishEvent(ctx context.Context, ev *engine.Event) error
}

// Engager makes a lead engage with a sent email and reps acknowledge
// escalations (HTTPEngager does it over the real endpoints).
type Engager interface {
	// Open opens the email of send; Click follows its link-th tracked link
	// (modulo the number of links). done=false means "not possible yet"
	// (the email is not delivered yet): try again later.
	Open(ctx context.Context, s Send) (done bool, err error)
	Click(ctx context.Context, s Send, link int) (done bool, err error)
	// Ack acknowledges an escalation as rep.
	Ack(ctx context.Context, lead, escalation, rep string) error
}

// Send is an email the engine sent.
type Send struct {
	Lead     string
	SendID   string
	Sequence string
	Step     string
	Template string
	At       time.Time
}

// Config configures a Demo.
type Config struct {
	// Seed makes the stream deterministic (default 1).
	Seed int64
	// Leads is how many leads sign up (default 12).
	Leads int
	// Now is the clock the runner uses (the sped-up one).
	Now func() time.Time
	// Start is the demo's time zero on that clock (the first run's start;
	// keep it across restarts so the script continues).
	Start     time.Time
	Publisher Publisher
	// Engager performs opens, clicks and acknowledgements; nil: publish
	// email.opened / email.clicked events directly (no tracking links).
	Engager Engager
	// Out receives the demo's own notices (nil: discard).
	Out io.Writer
	// Say is told each thing a demo lead or rep does (opened, clicked,
	// acknowledged), for the console; nil: nothing is said.
	Say    func(lead string, at time.Time, what string)
	Logger *slog.Logger
	// Poll is how often (wall time) due actions run (default 100ms).
	Poll time.Duration
}

// Demo is a running demo stream.
type Demo struct {
	cfg   Config
	leads []Lead

	mu      sync.Mutex
	queue   actions
	reacted map[string]bool // send ids and escalation ids already reacted to
	sent    map[string]int  // emails seen per lead
	seq     int
}

// New builds the demo script. It does not publish until Run.
func New(cfg Config) *Demo {
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Leads <= 0 {
		cfg.Leads = 12
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Start.IsZero() {
		cfg.Start = cfg.Now()
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	d := &Demo{cfg: cfg, reacted: map[string]bool{}, sent: map[string]int{}}
	d.leads = Cast(cfg.Seed, cfg.Leads)
	for _, l := range d.leads {
		for i, st := range l.Script {
			ev := st.Event(l, cfg.Start)
			ev.ID = fmt.Sprintf("demo-%d-%s-%02d", cfg.Seed, l.Key, i)
			d.push(action{at: ev.Time, kind: actEvent, ev: ev, lead: l.Key})
		}
	}
	return d
}

// SetEngager sets the engager (before Run; the HTTP engager needs the
// server's address, known once it listens).
func (d *Demo) SetEngager(e Engager) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cfg.Engager = e
}

// Leads returns the demo's cast.
func (d *Demo) Leads() []Lead { return d.leads }

// Name returns the first name of a demo lead ("" if unknown).
func (d *Demo) Name(key string) string {
	for _, l := range d.leads {
		if l.Key == key {
			return l.FirstName
		}
	}
	return ""
}

// Observe is a runner observer: it schedules engagement with each email
// sent to a demo lead and the acknowledgement of escalations.
func (d *Demo) Observe(lead string, at time.Time, effects []engine.Effect) {
	l := d.lead(lead)
	if l == nil {
		return
	}
	for _, ef := range effects {
		switch e := ef.(type) {
		case engine.SendEmail:
			d.onSend(l, Send{Lead: lead, SendID: e.SendID, Sequence: e.Sequence, Step: e.Step, Template: e.Template, At: at})
		case *engine.SendEmail:
			d.onSend(l, Send{Lead: lead, SendID: e.SendID, Sequence: e.Sequence, Step: e.Step, Template: e.Template, At: at})
		case engine.Escalated:
			d.onEscalated(l, e, at)
		case *engine.Escalated:
			d.onEscalated(l, *e, at)
		}
	}
}

func (d *Demo) lead(key string) *Lead {
	for i := range d.leads {
		if d.leads[i].Key == key {
			return &d.leads[i]
		}
	}
	return nil
}

// rng is a generator seeded by the demo seed and a key, so decisions do not
// depend on the order things happen in.
func (d *Demo) rng(key string) *rand.Rand {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return rand.New(rand.NewPCG(uint64(d.cfg.Seed), h.Sum64()))
}

func (d *Demo) onSend(l *Lead, s Send) {
	d.mu.Lock()
	seen := d.reacted[s.SendID]
	d.reacted[s.SendID] = true
	d.mu.Unlock()
	if seen {
		return
	}
	d.mu.Lock()
	n := d.sent[l.Key]
	d.sent[l.Key] = n + 1
	d.mu.Unlock()
	r := d.rng(s.SendID)
	p := l.Persona.engagement()
	// The first lead always reads and clicks its first email, so every
	// demo shows a click within its first virtual day.
	first := l.Index == 0 && n == 0
	if !first && r.Float64() >= p.open {
		return
	}
	openAt := s.At.Add(time.Duration(15+r.IntN(4*60)) * time.Minute)
	d.push(action{at: openAt, kind: actOpen, send: s, lead: l.Key})
	if first || r.Float64() < p.click {
		clickAt := openAt.Add(time.Duration(1+r.IntN(20)) * time.Minute)
		d.push(action{at: clickAt, kind: actClick, send: s, lead: l.Key, link: r.IntN(3)})
	}
}

func (d *Demo) onEscalated(l *Lead, e engine.Escalated, at time.Time) {
	key := fmt.Sprintf("%s/%d", e.ID, e.Attempt)
	d.mu.Lock()
	seen := d.reacted[key]
	d.reacted[key] = true
	d.mu.Unlock()
	if seen {
		return
	}
	r := d.rng(key)
	// Two in three reps acknowledge within the hour or two; the others
	// let the acknowledgement timeout re-route the lead.
	if r.IntN(3) == 2 {
		return
	}
	d.push(action{at: at.Add(time.Duration(20+r.IntN(100)) * time.Minute), kind: actAck, lead: l.Key,
		escalation: e.ID, rep: e.Rep})
}

// Run publishes the script and performs engagement as their times come on
// the clock, until ctx ends.
func (d *Demo) Run(ctx context.Context) error {
	fmt.Fprintf(d.cfg.Out, "demo: %d leads sign up over the next virtual days (seed %d)\n", len(d.leads), d.cfg.Seed)
	t := time.NewTicker(d.cfg.Poll)
	defer t.Stop()
	announced := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := d.cfg.Now()
		for _, a := range d.due(now) {
			if ctx.Err() != nil {
				return nil
			}
			d.do(ctx, a, now)
		}
		if !announced && d.scriptDone() {
			announced = true
			fmt.Fprintln(d.cfg.Out, "demo: every scripted event is published; engagement continues as emails go out (Ctrl-C to stop)")
		}
	}
}

func (d *Demo) do(ctx context.Context, a action, now time.Time) {
	switch a.kind {
	case actEvent:
		if err := d.cfg.Publisher.PublishEvent(ctx, a.ev); err != nil {
			d.cfg.Logger.Warn("demo: publish failed, retrying", "event_id", a.ev.ID, "err", err)
			a.at = now.Add(time.Minute)
			d.retry(a)
		}
	case actOpen, actClick:
		done, err := d.engage(ctx, a)
		if err != nil {
			d.cfg.Logger.Warn("demo: engagement failed", "lead_id", a.lead, "send_id", a.send.SendID, "err", err)
		}
		if done && err == nil {
			verb := "👁 opened"
			if a.kind == actClick {
				verb = "👆 clicked a link in"
			}
			d.say(a.lead, now, fmt.Sprintf("%s %s  %s/%s", verb, a.send.Template, a.send.Sequence, a.send.Step))
		}
		if !done && err == nil && a.tries < 200 {
			a.tries++
			a.at = now.Add(10 * time.Minute)
			d.retry(a)
		}
	case actAck:
		if d.cfg.Engager == nil {
			ev := &engine.Event{
				ID: "demo-ack-" + a.escalation + "-" + a.rep, Type: engine.EventEscalationAcked, Lead: a.lead, Time: now,
				Properties: map[string]any{"escalation": a.escalation, "rep": a.rep},
			}
			if err := d.cfg.Publisher.PublishEvent(ctx, ev); err != nil {
				d.cfg.Logger.Warn("demo: acknowledge failed", "lead_id", a.lead, "err", err)
			}
			return
		}
		if err := d.cfg.Engager.Ack(ctx, a.lead, a.escalation, a.rep); err != nil {
			d.cfg.Logger.Warn("demo: acknowledge failed", "lead_id", a.lead, "err", err)
			return
		}
		d.say(a.lead, now, "rep "+a.rep+" acknowledges the escalation (lead API)")
	}
}

func (d *Demo) engage(ctx context.Context, a action) (bool, error) {
	if d.cfg.Engager != nil {
		if a.kind == actOpen {
			return d.cfg.Engager.Open(ctx, a.send)
		}
		return d.cfg.Engager.Click(ctx, a.send, a.link)
	}
	typ := engine.EventEmailOpened
	if a.kind == actClick {
		typ = engine.EventEmailClicked
	}
	ev := &engine.Event{
		ID: fmt.Sprintf("demo-%s-%s", typ, a.send.SendID), Type: typ, Lead: a.lead, Time: d.cfg.Now(),
		Properties: map[string]any{"send": a.send.SendID, "sequence": a.send.Sequence, "step": a.send.Step},
	}
	return true, d.cfg.Publisher.PublishEvent(ctx, ev)
}

func (d *Demo) say(lead string, at time.Time, what string) {
	if d.cfg.Say != nil {
		d.cfg.Say(lead, at, what)
	}
}

// --- the action queue --------------------------------------------------------

type actKind int

const (
	actEvent actKind = iota
	actOpen
	actClick
	actAck
)

type action struct {
	at         time.Time
	order      int
	kind       actKind
	lead       string
	ev         *engine.Event
	send       Send
	link       int
	escalation string
	rep        string
	tries      int
}

type actions []action

func (d *Demo) push(a action) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seq++
	a.order = d.seq
	d.queue = append(d.queue, a)
}

func (d *Demo) retry(a action) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.queue = append(d.queue, a)
}

// due removes and returns the actions due at now, in time order.
func (d *Demo) due(now time.Time) []action {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out, keep []action
	for _, a := range d.queue {
		if !a.at.After(now) {
			out = append(out, a)
		} else {
			keep = append(keep, a)
		}
	}
	d.queue = keep
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].order < out[j].order
	})
	return out
}

func (d *Demo) scriptDone() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.queue {
		if a.kind == actEvent {
			return false
		}
	}
	return true
}
