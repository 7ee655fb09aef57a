package engine

import "time"

// Content is a compiled content directory: every version of every sequence
// the engine may meet, the scoring model, and global send limits. It is
// immutable once built and safe for concurrent use.
type Content struct {
	// Sequences holds every known version of every sequence, sorted by
	// (ID, Version). Several versions of one sequence may be present: leads
	// stay pinned to the version they enrolled on.
	Sequences []*Sequence
	// Current maps a sequence id to the version hash new enrollments use.
	// A sequence id missing from Current is retired: no new enrollments.
	Current map[string]string
	Scoring *Scoring
	// Limits are per-lead limits across all sequences.
	Limits Limits
	// Templates lists the known template ids (for reference; rendering
	// happens outside the engine).
	Templates []string
}

// Limits caps how much mail one lead receives across all sequences.
type Limits struct {
	// MaxEmails per Period (0 = unlimited). An email over the cap waits until
	// the cap allows it; it is never dropped.
	MaxEmails int
	Period    time.Duration
}

// Sequence is one compiled version of a nurture sequence.
type Sequence struct {
	ID      string
	Version string // content hash of the source; stable across loads
	Name    string
	// Enroll says which events start an enrollment.
	Enroll Enroll
	// Exit goals end an active enrollment early.
	Exit Exit
	// Window restricts when email steps may send. Nil means any time.
	Window *Window
	// Steps in file order. Step ids are unique within a sequence.
	Steps []*Step
	// InFlight says what happens to enrollments on older versions of this
	// sequence once this version is current.
	InFlight InFlightPolicy
	// From/ReplyTo defaults for email steps (templates may override).
	From    string
	ReplyTo string
	// Marketing emails count toward Content.Limits; transactional ones do not.
	Transactional bool
}

// InFlightPolicy is what a new version does to leads enrolled on an older one.
type InFlightPolicy string

const (
	InFlightContinue InFlightPolicy = "continue" // stay on the pinned version (default)
	InFlightMigrate  InFlightPolicy = "migrate"  // move to the new version, same step id
	InFlightExit     InFlightPolicy = "exit"     // end the enrollment
)

// Enroll describes enrollment triggers.
type Enroll struct {
	On        []string  // event types
	Condition Condition // optional; evaluated with the triggering event
	Reenroll  Reenroll
}

// Reenroll is the re-enrollment rule for a lead that was enrolled before.
type Reenroll struct {
	Mode  ReenrollMode
	After time.Duration // for ReenrollAfter: since the previous enrollment started
}

type ReenrollMode string

const (
	ReenrollNever  ReenrollMode = "never"  // at most one enrollment per lead, ever
	ReenrollAlways ReenrollMode = "always" // a new enrollment whenever the previous one ended
	ReenrollAfter  ReenrollMode = "after"  // once the previous one ended and After has passed since it started
)

// Exit lists the goals that end an enrollment early.
type Exit struct {
	On        []string  // event types
	Condition Condition // evaluated after every event applied to the lead
	// OnEscalation: what an escalation of the lead does to this enrollment
	// when set; empty means Scoring.OnEscalate decides.
	OnEscalation EscalationAction
}

// Window is a send window: the minutes in which email steps may send.
type Window struct {
	At Schedule // matches allowed minutes; evaluated in the lead's zone
	// TimezoneTrait names the lead trait holding an IANA zone name.
	TimezoneTrait string
	// DefaultZone is used when the trait is missing or not a valid zone.
	DefaultZone *time.Location
	// Holidays are local dates (in the lead's zone) on which nothing sends.
	Holidays Calendar
}

// Calendar is a set of local dates.
type Calendar interface {
	// Holiday reports whether the date (year, month, day in the lead's zone)
	// is a holiday.
	Holiday(y int, m time.Month, d int) bool
}

// Schedule is a compiled cron spec. Next returns the first matching time
// strictly after t, in t's location, or the zero time if there is none.
type Schedule interface {
	Next(t time.Time) time.Time
}

// Condition is a compiled, type-checked boolean expression.
type Condition interface {
	Eval(env *Env) (bool, error)
}

// Env is what a condition can see.
type Env struct {
	Lead  *Lead
	Event *Event // nil outside event-driven evaluation
	// Enrollment is the enrollment being evaluated (branch steps, exit
	// conditions); nil for enrollment triggers and scoring rules.
	Enrollment *Enrollment
	Now        time.Time
	Score      float64 // decayed score at Now
}

// StepKind enumerates step types.
type StepKind string

const (
	StepEmail     StepKind = "email"      // send a template
	StepWait      StepKind = "wait"       // wait a duration (or business days)
	StepWaitUntil StepKind = "wait_until" // wait until a cron spec next matches
	StepWaitFor   StepKind = "wait_for"   // wait for an event, with a timeout
	StepBranch    StepKind = "branch"     // conditional jump
	StepGoto      StepKind = "goto"       // unconditional jump
	StepEnd       StepKind = "end"        // complete the enrollment
)

// Step is one compiled step. Which fields matter depends on Kind.
type Step struct {
	ID   string
	Kind StepKind

	// StepEmail
	Template string

	// StepWait: a plain duration, or BusinessDays (Mon–Fri, skipping the
	// window's holidays, in the lead's zone; the wait ends at the same local
	// time of day).
	Wait         time.Duration
	BusinessDays int

	// StepWaitUntil: the next time At matches, in the lead's zone.
	At Schedule

	// StepWaitFor
	Event     string    // event type to wait for
	Match     Condition // optional condition on the awaited event
	Timeout   time.Duration
	OnTimeout string // step id to go to on timeout; "" = the next step

	// StepBranch: the first case whose condition holds wins; otherwise Else
	// ("" = the next step).
	Cases []BranchCase
	Else  string

	// Then is where to go after this step finishes ("" = the next step in
	// file order; the special id "end" completes the enrollment). For
	// StepGoto it is the target.
	Then string
}

// BranchCase is one arm of a branch step.
type BranchCase struct {
	If   Condition
	Goto string
}

// StepEndID is the reserved step id meaning "complete the enrollment".
const StepEndID = "end"

// Scoring is the compiled scoring and escalation model.
type Scoring struct {
	Rules []*Rule
	// HalfLife of the score; 0 means no decay.
	HalfLife time.Duration
	// IgnoreMachine drops engagement flagged as machine traffic.
	IgnoreMachine bool
	// IgnoreOpensWithin drops email.opened events that arrive this soon
	// after the send (privacy proxies prefetch images on delivery).
	IgnoreOpensWithin time.Duration
	// Threshold escalates the lead when the score reaches it while armed;
	// the lead re-arms once the score falls below Rearm.
	Threshold float64
	Rearm     float64
	// OnEscalate is what escalation does to the lead's active enrollments.
	OnEscalate EscalationAction
	Routing    Routing
	// AckTimeout: if no rep acknowledges within this time the lead is
	// re-routed to the next eligible rep of its routing tiers (territory
	// reps, then catch-all reps); once none is left the SLA stops. 0
	// disables.
	AckTimeout time.Duration
}

// EscalationAction is what escalation does to enrollments.
type EscalationAction string

const (
	EscalationExit     EscalationAction = "exit"
	EscalationPause    EscalationAction = "pause"
	EscalationContinue EscalationAction = "continue"
)

// Rule awards points for an event.
type Rule struct {
	ID        string
	Event     string    // event type
	Condition Condition // optional
	Points    float64   // may be negative
	// Cap: at most CapPoints (absolute) from this rule per CapPeriod.
	CapPoints float64
	CapPeriod time.Duration
}

// Routing chooses the rep who gets an escalated lead.
type Routing struct {
	Strategy RoutingStrategy
	// TerritoryTrait names the lead trait matched against Rep.Territories.
	TerritoryTrait string
	Reps           []Rep // in config order; ties break by this order
}

type RoutingStrategy string

const (
	RouteRoundRobin RoutingStrategy = "round_robin"
	RouteTerritory  RoutingStrategy = "territory" // territory first, then round-robin among matches
)

// Rep is a sales development rep.
type Rep struct {
	ID          string
	Name        string
	Email       string
	Territories []string // empty = any territory (a catch-all rep)
	Capacity    int      // max open escalations; 0 = unlimited
	Away        bool     // out of office in config
}
