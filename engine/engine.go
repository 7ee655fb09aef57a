package engine

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrInvalidEvent is returned (wrapped) by Apply for an event that can never
// apply: missing id, type or lead. The runtime dead-letters such events.
var ErrInvalidEvent = errors.New("invalid event")

// ErrInvalidInput is returned (wrapped) by Apply for an input that is not an
// event problem: a nil lead, a lead without a key, or a zero Input.Now.
var ErrInvalidInput = errors.New("invalid input")

// ErrInvalidContent is returned (wrapped) by New for content the engine
// cannot run: duplicate versions, dangling step references, a Current entry
// naming an unknown version, and the like.
var ErrInvalidContent = errors.New("invalid content")

// maxStepsPerRun caps how many steps one enrollment executes in one run
// without waiting. A goto cycle with no wait in it hits the cap and the
// enrollment exits with reason "loop".
const maxStepsPerRun = 256

// Engine applies inputs to leads using one compiled Content. Apart from an
// internal cache of loaded time zones it holds no mutable state, and it is
// safe for concurrent use.
type Engine struct {
	content  *Content
	byKey    map[seqKey]*seqInfo
	current  map[string]*seqInfo   // sequence id → current version
	enrollOn map[string][]*seqInfo // event type → current sequences, by id
	rules    map[string][]*Rule    // event type → rules, config order
	reps     map[string]int        // rep id → index in Routing.Reps
	zones    zoneCache
}

type seqKey struct{ id, version string }

type seqInfo struct {
	seq   *Sequence
	steps map[string]int
}

// New returns an engine for c. c must not be modified afterwards. It
// checks what the engine relies on and returns every problem found,
// wrapped with ErrInvalidContent.
func New(c *Content) (*Engine, error) {
	if c == nil {
		return nil, fmt.Errorf("new engine: %w: nil content", ErrInvalidContent)
	}
	e := &Engine{
		content:  c,
		byKey:    make(map[seqKey]*seqInfo, len(c.Sequences)),
		current:  make(map[string]*seqInfo, len(c.Current)),
		enrollOn: make(map[string][]*seqInfo),
		rules:    make(map[string][]*Rule),
		reps:     make(map[string]int),
	}
	e.zones.maxBad = 4096
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidContent}, args...)...))
	}
	for i, s := range c.Sequences {
		if s == nil || s.ID == "" {
			bad("sequence #%d: missing or without id", i)
			continue
		}
		k := seqKey{s.ID, s.Version}
		if _, dup := e.byKey[k]; dup {
			bad("sequence %s version %q: defined twice", s.ID, s.Version)
			continue
		}
		si := &seqInfo{seq: s, steps: make(map[string]int, len(s.Steps))}
		for j, st := range s.Steps {
			switch {
			case st == nil || st.ID == "":
				bad("sequence %s: step #%d: missing or without id", s.ID, j)
				continue
			case st.ID == StepEndID:
				bad("sequence %s: step id %q is reserved", s.ID, StepEndID)
			}
			if _, dup := si.steps[st.ID]; dup {
				bad("sequence %s: step %s: defined twice", s.ID, st.ID)
			}
			si.steps[st.ID] = j
		}
		for _, st := range s.Steps {
			if st == nil || st.ID == "" {
				continue
			}
			target := func(what, id string) {
				if id == "" || id == StepEndID {
					return
				}
				if _, ok := si.steps[id]; !ok {
					bad("sequence %s: step %s: %s %q does not exist", s.ID, st.ID, what, id)
				}
			}
			target("then", st.Then)
			switch st.Kind {
			case StepEmail, StepWait, StepEnd:
			case StepWaitUntil:
				if st.At == nil {
					bad("sequence %s: step %s: wait_until without a schedule", s.ID, st.ID)
				}
			case StepWaitFor:
				if st.Event == "" {
					bad("sequence %s: step %s: wait_for without an event type", s.ID, st.ID)
				}
				target("on_timeout", st.OnTimeout)
			case StepBranch:
				for _, bc := range st.Cases {
					if bc.If == nil {
						bad("sequence %s: step %s: branch case without a condition", s.ID, st.ID)
					}
					target("goto", bc.Goto)
				}
				target("else", st.Else)
			case StepGoto:
				if st.Then == "" {
					bad("sequence %s: step %s: goto without a target", s.ID, st.ID)
				}
			default:
				bad("sequence %s: step %s: unknown kind %q", s.ID, st.ID, st.Kind)
			}
		}
		e.byKey[k] = si
	}
	ids := make([]string, 0, len(c.Current))
	for id := range c.Current {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		si := e.byKey[seqKey{id, c.Current[id]}]
		if si == nil {
			bad("current version %q of sequence %s: not among the sequences", c.Current[id], id)
			continue
		}
		e.current[id] = si
		for _, typ := range si.seq.Enroll.On {
			if !slices.Contains(e.enrollOn[typ], si) {
				e.enrollOn[typ] = append(e.enrollOn[typ], si)
			}
		}
	}
	if sc := c.Scoring; sc != nil {
		for i, r := range sc.Rules {
			if r == nil || r.ID == "" || r.Event == "" {
				bad("scoring rule #%d: missing, or without id or event", i)
				continue
			}
			e.rules[r.Event] = append(e.rules[r.Event], r)
		}
		for i, r := range sc.Routing.Reps {
			if r.ID == "" {
				bad("rep #%d: without id", i)
				continue
			}
			if _, dup := e.reps[r.ID]; dup {
				bad("rep %s: defined twice", r.ID)
				continue
			}
			e.reps[r.ID] = i
		}
		if sc.HalfLife < 0 {
			bad("scoring: negative half-life")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new engine: %w", err)
	}
	return e, nil
}

// Content returns the content the engine runs.
func (e *Engine) Content() *Content { return e.content }

// NewLead returns the initial state of a lead first seen at now.
func NewLead(key string, now time.Time) *Lead {
	return &Lead{Key: key, Status: LeadActive, Armed: true, CreatedAt: now, UpdatedAt: now}
}

// Apply applies one input to l, mutating it in place, and returns the
// effects in the order they happened. On error l is left unchanged: every
// error is detected before anything is touched, and nothing after that
// point can fail (a condition that errors at run time counts as false and
// is reported as a ConditionFailed effect).
func (e *Engine) Apply(l *Lead, in Input) ([]Effect, error) {
	if err := validate(l, in); err != nil {
		return nil, err
	}
	a := applier{e: e, l: l, now: in.Now, ev: in.Event, desk: in.Desk}
	a.run()
	return a.out, nil
}

func validate(l *Lead, in Input) error {
	switch {
	case l == nil:
		return fmt.Errorf("apply: %w: nil lead", ErrInvalidInput)
	case l.Key == "":
		return fmt.Errorf("apply: %w: lead without key", ErrInvalidInput)
	case in.Now.IsZero():
		return fmt.Errorf("apply to lead %s: %w: zero Now", l.Key, ErrInvalidInput)
	}
	ev := in.Event
	if ev == nil {
		return nil
	}
	switch {
	case ev.ID == "":
		return fmt.Errorf("apply event to lead %s: %w: missing id", l.Key, ErrInvalidEvent)
	case ev.Type == "":
		return fmt.Errorf("apply event %s: %w: missing type", ev.ID, ErrInvalidEvent)
	case ev.Lead == "":
		return fmt.Errorf("apply event %s: %w: missing lead", ev.ID, ErrInvalidEvent)
	case ev.Lead != l.Key:
		return fmt.Errorf("apply event %s: %w: event is for lead %q, not %q", ev.ID, ErrInvalidEvent, ev.Lead, l.Key)
	}
	return nil
}
