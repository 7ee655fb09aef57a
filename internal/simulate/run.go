package simulate

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// Entry is one line of a transcript: something that happened to a lead at
// a virtual instant. Fields other than At, Lead and Action are set where
// they apply.
type Entry struct {
	At     time.Time `json:"at"`
	Lead   string    `json:"lead"`
	Action string    `json:"action"`
	// Local is At in the lead's time zone (RFC 3339 with offset).
	Local      string    `json:"local,omitempty"`
	Sequence   string    `json:"sequence,omitempty"`
	Version    string    `json:"version,omitempty"`
	Enrollment string    `json:"enrollment,omitempty"`
	Step       string    `json:"step,omitempty"`
	Template   string    `json:"template,omitempty"`
	Until      time.Time `json:"until,omitzero"`
	Score      *float64  `json:"score,omitempty"`
	Delta      *float64  `json:"delta,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Reason     string    `json:"reason,omitempty"`
	Rep        string    `json:"rep,omitempty"`
	Attempt    int       `json:"attempt,omitempty"`
	// Awaits is the event type a wait_for step waits for.
	Awaits string `json:"awaits,omitempty"`
	// Event is the type of the scripted event being applied (on the
	// "event" line and on every effect it caused; absent on effects of a
	// timer). ID is the event id on "event" lines, the send id on email
	// lines, the escalation id on escalated/acknowledged lines.
	Event string `json:"event,omitempty"`
	ID    string `json:"id,omitempty"`
	// Properties and Traits of the scripted event, on "event" lines.
	Properties map[string]any `json:"properties,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`

	// Loc is the lead's zone (for the text format).
	Loc *time.Location `json:"-"`
}

// Actions the simulator adds to the engine's effects.
const (
	ActionEvent      = "event"       // a scripted event is applied
	ActionDuplicate  = "duplicate"   // a scripted event whose id was already applied: skipped, as production would
	ActionDeadLetter = "dead_letter" // the engine rejected the input; production would dead-letter it
)

// Options tune a run.
type Options struct {
	// Progress, when set, is called each time the virtual clock passes
	// another tenth of the scenario's span, with the fraction done (0.1 …
	// 1.0). For progress output on large runs; never part of the transcript.
	Progress func(fraction float64)
	// DefaultZone shows local times of leads whose zone nothing else names
	// (the project's default time zone); nil means UTC.
	DefaultZone *time.Location
}

// Summary totals a run.
type Summary struct {
	Leads       int
	Events      int            // scripted events applied (duplicates excluded)
	Wakeups     int            // timer wake-ups (ticks) applied
	Enrolled    map[string]int // sequence -> enrollments
	Emails      map[string]int // template -> emails sent
	Suppressed  map[string]int // reason -> emails suppressed
	Escalations map[string]int // rep -> escalations
	Completed   map[string]int // sequence -> enrollments completed
	Exited      map[string]int // reason -> enrollments exited
	Duplicates  int
	DeadLetters int
}

// ErrRunaway is returned when the engine keeps asking to be woken at the
// same instant: an engine bug the simulator refuses to loop on.
var ErrRunaway = errors.New("timer does not advance")

// maxTicksPerInstant bounds wake-ups of one lead at one instant.
const maxTicksPerInstant = 64

// Run plays sc against content with the real engine and calls emit for each
// transcript entry, in time order. The *Entry passed to emit is reused: it
// is valid only during the call (copy it to keep it). It returns the totals. It stops early
// when ctx is done or emit fails. Problems with the scenario that need the
// content (an unknown rep) are returned as *ProblemsError.
func Run(ctx context.Context, content *engine.Content, sc *Scenario, opts Options, emit func(*Entry) error) (*Summary, error) {
	eng, err := engine.New(content)
	if err != nil {
		return nil, fmt.Errorf("simulate: build engine: %w", err)
	}
	desk, err := newDesk(content, sc)
	if err != nil {
		return nil, err
	}
	return run(ctx, eng, content, sc, desk, opts, emit)
}

func run(ctx context.Context, eng applier, content *engine.Content, sc *Scenario, desk *engine.Desk, opts Options, emit func(*Entry) error) (*Summary, error) {
	r := &runner{
		eng:     eng,
		content: content,
		sc:      sc,
		desk:    desk,
		emit:    emit,
		zones:   newZones(content, opts.DefaultZone),
		sum: &Summary{Leads: len(sc.Leads), Enrolled: map[string]int{}, Emails: map[string]int{}, Suppressed: map[string]int{},
			Escalations: map[string]int{}, Completed: map[string]int{}, Exited: map[string]int{}},
	}
	r.init()
	return r.sum, r.loop(ctx, opts)
}

// applier is what the runner needs from the engine.
type applier interface {
	Apply(l *engine.Lead, in engine.Input) ([]engine.Effect, error)
}

type runner struct {
	eng     applier
	content *engine.Content
	sc      *Scenario
	desk    *engine.Desk
	emit    func(*Entry) error
	zones   *zones
	sum     *Summary

	leads     []*engine.Lead
	index     map[string]int32
	rank      []int32     // rank[i]: position of lead i's id in sorted order
	scheduled []time.Time // the wake-up currently queued for lead i (zero: none)
	seen      []map[string]struct{}
	timers    timerHeap
	entry     Entry // reused
}

func newDesk(content *engine.Content, sc *Scenario) (*engine.Desk, error) {
	desk := &engine.Desk{Reps: map[string]*engine.RepLoad{}}
	var reps []string
	if content.Scoring != nil {
		for _, rep := range content.Scoring.Routing.Reps {
			desk.Reps[rep.ID] = &engine.RepLoad{}
			reps = append(reps, rep.ID)
		}
	}
	ps := &problems{path: sc.Path}
	for _, id := range sc.Reps.Away {
		rl, ok := desk.Reps[id]
		if !ok {
			ps.add(sc.Reps.Pos[id], "reps.away: unknown rep %q%s", id, suggest(id, reps))
			continue
		}
		rl.Away = true
	}
	ids := make([]string, 0, len(sc.Reps.Open))
	for id := range sc.Reps.Open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rl, ok := desk.Reps[id]
		if !ok {
			ps.add(sc.Reps.Pos[id], "reps.open: unknown rep %q%s", id, suggest(id, reps))
			continue
		}
		rl.Open = sc.Reps.Open[id]
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return desk, nil
}

func (r *runner) init() {
	n := len(r.sc.Leads)
	r.leads = make([]*engine.Lead, n)
	r.index = make(map[string]int32, n)
	r.scheduled = make([]time.Time, n)
	r.seen = make([]map[string]struct{}, n)
	order := make([]int32, n)
	for i, l := range r.sc.Leads {
		lead := engine.NewLead(l.ID, r.sc.Start)
		lead.Email = l.Email
		if len(l.Traits) > 0 {
			lead.Traits = cloneMap(l.Traits)
		}
		r.leads[i] = lead
		r.index[l.ID] = int32(i)
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		switch ia, ib := r.sc.Leads[a].ID, r.sc.Leads[b].ID; {
		case ia < ib:
			return -1
		case ia > ib:
			return 1
		}
		return 0
	})
	r.rank = make([]int32, n)
	for pos, i := range order {
		r.rank[i] = int32(pos)
	}
	r.timers = timerHeap{rank: r.rank}
}

func (r *runner) loop(ctx context.Context, opts Options) error {
	span := r.sc.Until.Sub(r.sc.Start)
	nextTenth := 1
	ticksAt := time.Time{}
	ticksLead := int32(-1)
	ticks := 0
	events := r.sc.Events
	for iter := 0; ; iter++ {
		if iter&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		// Drop stale wake-ups (the lead was rescheduled since).
		for len(r.timers.items) > 0 {
			top := r.timers.items[0]
			if top.at.Equal(r.scheduled[top.lead]) {
				break
			}
			heap.Pop(&r.timers)
		}
		var now time.Time
		useEvent := false
		switch {
		case len(events) > 0 && (len(r.timers.items) == 0 || !events[0].At.After(r.timers.items[0].at)):
			useEvent = true
			now = events[0].At
		case len(r.timers.items) > 0:
			now = r.timers.items[0].at
		default:
			if opts.Progress != nil {
				for ; nextTenth <= 10; nextTenth++ {
					opts.Progress(float64(nextTenth) / 10)
				}
			}
			return nil
		}
		if opts.Progress != nil && span > 0 {
			for nextTenth <= 10 && now.Sub(r.sc.Start) >= span*time.Duration(nextTenth)/10 {
				opts.Progress(float64(nextTenth) / 10)
				nextTenth++
			}
		}
		if useEvent {
			ev := &events[0]
			events = events[1:]
			if err := r.applyEvent(ev); err != nil {
				return err
			}
			continue
		}
		t := heap.Pop(&r.timers).(timer)
		r.scheduled[t.lead] = time.Time{}
		if t.lead == ticksLead && t.at.Equal(ticksAt) {
			ticks++
			if ticks > maxTicksPerInstant {
				return fmt.Errorf("simulate: lead %s: woken %d times at %s and still due: %w",
					r.leads[t.lead].Key, ticks, t.at.Format(time.RFC3339), ErrRunaway)
			}
		} else {
			ticksLead, ticksAt, ticks = t.lead, t.at, 1
		}
		r.sum.Wakeups++
		if err := r.apply(t.lead, engine.Input{Now: t.at, Desk: r.desk}, nil); err != nil {
			return err
		}
	}
}

func (r *runner) applyEvent(se *Event) error {
	i := r.index[se.Lead]
	lead := r.leads[i]
	seen := r.seen[i]
	if seen == nil {
		seen = map[string]struct{}{}
		r.seen[i] = seen
	}
	if _, dup := seen[se.ID]; dup {
		r.sum.Duplicates++
		e := r.eventEntry(lead, se, ActionDuplicate)
		e.Reason = "event id already applied; skipped as production would"
		return r.emit(e)
	}
	seen[se.ID] = struct{}{}
	r.sum.Events++
	ev := &engine.Event{
		ID: se.ID, Type: se.Type, Lead: se.Lead, Time: se.At, Email: se.Email,
		Traits: cloneMap(se.Traits), Properties: cloneMap(se.Properties), Machine: se.Machine,
	}
	return r.apply(i, engine.Input{Now: se.At, Event: ev, Desk: r.desk}, se)
}

// eventEntry is the line of a scripted event (built after it was applied,
// so that the lead's zone reflects the event's traits and enrollments).
func (r *runner) eventEntry(lead *engine.Lead, se *Event, action string) *Entry {
	e := r.newEntry(lead, se.At, action, "")
	e.Event, e.ID, e.Properties, e.Traits = se.Type, se.ID, se.Properties, se.Traits
	if se.Machine {
		e.Reason = "machine traffic"
	}
	return e
}

func (r *runner) apply(i int32, in engine.Input, se *Event) error {
	lead := r.leads[i]
	effects, err := r.eng.Apply(lead, in)
	if se != nil {
		if err := r.emit(r.eventEntry(lead, se, ActionEvent)); err != nil {
			return err
		}
	}
	if err != nil {
		r.sum.DeadLetters++
		e := r.newEntry(lead, in.Now, ActionDeadLetter, "")
		e.Reason = err.Error()
		if se != nil {
			e.Event, e.ID = se.Type, se.ID
		}
		if err := r.emit(e); err != nil {
			return err
		}
	}
	for _, eff := range effects {
		if err := r.emit(r.effectEntry(lead, in.Now, eff, se)); err != nil {
			return err
		}
	}
	r.schedule(i, in.Now)
	return nil
}

// schedule queues the lead's next wake-up if it is due before Until.
func (r *runner) schedule(i int32, now time.Time) {
	next := r.leads[i].NextRunAt
	if next.IsZero() || !next.Before(r.sc.Until) {
		r.scheduled[i] = time.Time{}
		return
	}
	if next.Before(now) {
		next = now // overdue: wake as soon as possible, never in the past
	}
	if next.Equal(r.scheduled[i]) {
		return
	}
	r.scheduled[i] = next
	heap.Push(&r.timers, timer{at: next, lead: i})
}

func (r *runner) newEntry(lead *engine.Lead, at time.Time, action, sequence string) *Entry {
	r.entry = Entry{At: at, Lead: lead.Key, Action: action, Sequence: sequence}
	loc := r.zones.of(lead, sequence)
	r.entry.Loc = loc
	r.entry.Local = at.In(loc).Format(time.RFC3339)
	return &r.entry
}

func (r *runner) effectEntry(lead *engine.Lead, now time.Time, eff engine.Effect, se *Event) *Entry {
	var e *Entry
	switch f := eff.(type) {
	case engine.Enrolled:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Version, e.Enrollment = f.Version, f.Enrollment
		r.sum.Enrolled[f.Sequence]++
	case engine.SendEmail:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Version, e.Enrollment, e.Step, e.Template, e.ID = f.Version, f.Enrollment, f.Step, f.Template, f.SendID
		r.sum.Emails[f.Template]++
	case engine.EmailSuppressed:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment, e.Step, e.Template, e.Reason, e.ID = f.Enrollment, f.Step, f.Template, f.Reason, f.SendID
		r.sum.Suppressed[f.Reason]++
	case engine.Waiting:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment, e.Step, e.Until, e.Reason, e.Awaits = f.Enrollment, f.Step, f.Until.UTC(), f.Reason, f.Event
	case engine.Exited:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment, e.Step, e.Reason = f.Enrollment, f.Step, f.Reason
		r.sum.Exited[f.Reason]++
	case engine.Completed:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment = f.Enrollment
		r.sum.Completed[f.Sequence]++
	case engine.Paused:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment, e.Step, e.Reason = f.Enrollment, f.Step, f.Reason
	case engine.Resumed:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment, e.Step = f.Enrollment, f.Step
	case engine.ScoreChanged:
		e = r.newEntry(lead, now, f.Action(), "")
		e.Rule, e.Score, e.Delta = f.Rule, num(f.Score), num(f.Delta)
		if f.Capped {
			e.Reason = "capped"
		}
	case engine.Escalated:
		e = r.newEntry(lead, now, f.Action(), "")
		e.ID, e.Rep, e.Attempt, e.Score, e.Reason = f.ID, f.Rep, f.Attempt, num(f.Score), f.Reason
		r.sum.Escalations[f.Rep]++
	case engine.Acknowledged:
		e = r.newEntry(lead, now, f.Action(), "")
		e.ID, e.Rep = f.ID, f.Rep
	case engine.Ignored:
		e = r.newEntry(lead, now, f.Action(), "")
		e.Reason = f.Reason
	case engine.Migrated:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Enrollment, e.Step, e.Version = f.Enrollment, f.Step, f.To
		e.Reason = "from version " + short(f.From)
	case engine.ConditionFailed:
		e = r.newEntry(lead, now, f.Action(), f.Sequence)
		e.Step, e.Rule = f.Step, f.Rule
		e.Reason = f.Where + ": " + f.Error
	case engine.StatusChanged:
		e = r.newEntry(lead, now, f.Action(), "")
		e.Reason = fmt.Sprintf("%s -> %s", f.From, f.To)
	default:
		e = r.newEntry(lead, now, eff.Action(), "")
		e.Reason = fmt.Sprintf("%+v", eff)
	}
	if e.Version == "" && e.Enrollment != "" {
		e.Version = enrollmentVersion(lead, e.Enrollment)
	}
	if se != nil && e.Event == "" {
		e.Event = se.Type
	}
	return e
}

func enrollmentVersion(lead *engine.Lead, id string) string {
	for i := len(lead.Enrollments) - 1; i >= 0; i-- {
		if en := lead.Enrollments[i]; en.ID == id {
			return en.Version
		}
	}
	return ""
}

// num rounds a score for the transcript (2 decimals) and returns a pointer,
// so that 0 is printed.
func num(f float64) *float64 {
	v := math.Round(f*100) / 100
	if v == 0 {
		v = 0 // no -0
	}
	return &v
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// timer is a queued wake-up.
type timer struct {
	at   time.Time
	lead int32
}

// timerHeap orders wake-ups by time, then by lead id (via rank).
type timerHeap struct {
	items []timer
	rank  []int32
}

func (h *timerHeap) Len() int { return len(h.items) }
func (h *timerHeap) Less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	return h.rank[a.lead] < h.rank[b.lead]
}
func (h *timerHeap) Swap(i, j int) { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *timerHeap) Push(x any)    { h.items = append(h.items, x.(timer)) }
func (h *timerHeap) Pop() any {
	n := len(h.items) - 1
	t := h.items[n]
	h.items = h.items[:n]
	return t
}

// zones resolves the zone a lead's lines are shown in, the way the engine
// resolves it for sends.
type zones struct {
	seqs     map[string]*engine.Window // sequence id -> window of its current (or any) version
	fallback *time.Location
	cache    map[string]*time.Location
}

func newZones(c *engine.Content, fallback *time.Location) *zones {
	if fallback == nil {
		fallback = time.UTC
	}
	z := &zones{seqs: map[string]*engine.Window{}, cache: map[string]*time.Location{}, fallback: fallback}
	for _, s := range c.Sequences {
		if s.Window == nil {
			continue
		}
		if _, ok := z.seqs[s.ID]; !ok || c.Current[s.ID] == s.Version {
			z.seqs[s.ID] = s.Window
		}
	}
	return z
}

// of returns the lead's zone for a line about sequence. With a send window:
// the zone named by the window's trait, else the window's default zone
// (what the engine uses). Without a window: the "timezone" trait, else the
// fallback. Lines about no sequence (events, scores, escalations) use the
// lead's latest enrollment's sequence, so one lead's lines agree.
func (z *zones) of(l *engine.Lead, sequence string) *time.Location {
	if sequence == "" && len(l.Enrollments) > 0 {
		if en := l.Enrollments[len(l.Enrollments)-1]; en != nil {
			sequence = en.Sequence
		}
	}
	w := z.seqs[sequence]
	trait := engine.DefaultTimezoneTrait
	def := z.fallback
	if w != nil {
		trait = strings.TrimPrefix(w.TimezoneTrait, "traits.")
		if w.DefaultZone != nil {
			def = w.DefaultZone
		}
	}
	if name, ok := l.Traits[trait].(string); ok && name != "" {
		if loc := z.load(name); loc != nil {
			return loc
		}
	}
	return def
}

func (z *zones) load(name string) *time.Location {
	if loc, ok := z.cache[name]; ok {
		return loc
	}
	if name == "Local" {
		return nil // never the machine's zone: transcripts must not depend on it
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		loc = nil
	}
	z.cache[name] = loc
	return loc
}
