package engine

import "time"

// Lead is the engine's whole view of one lead. Stores persist it as one
// document (JSON) keyed by Key; every field must round-trip through
// encoding/json.
type Lead struct {
	Key    string         `json:"key"`
	Email  string         `json:"email,omitempty"`
	Traits map[string]any `json:"traits,omitempty"`
	Status LeadStatus     `json:"status"`
	// Owner is the rep the lead is escalated to, if any.
	Owner string `json:"owner,omitempty"`

	Score Score `json:"score"`
	// Escalation state (hysteresis): Armed is true while a crossing of the
	// threshold would escalate. Crossings counts escalations so far; the
	// n-th escalation's id is EscalationID(Key, n).
	Armed      bool        `json:"armed"`
	Crossings  int         `json:"crossings,omitempty"`
	Escalation *Escalation `json:"escalation,omitempty"`

	// Enrollments, active and ended, in the order they started.
	Enrollments []*Enrollment `json:"enrollments,omitempty"`
	// RuleUse tracks points awarded per capped rule in the current period.
	RuleUse []RuleUse `json:"rule_use,omitempty"`
	// Sends are the times of recent marketing emails (for Limits), oldest
	// first, trimmed to the limit period.
	Sends []time.Time `json:"sends,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// NextRunAt is the earliest time any timer of this lead is due (an
	// enrollment's NextRunAt, the escalation's AckDueAt, or the minute the
	// decaying score of an escalated lead falls below Rearm); zero when none.
	// Stores index it; the runtime sends a Tick when it is due.
	NextRunAt time.Time `json:"next_run_at,omitzero"`
	// RecentEvents holds the ids of the last events applied (at most 8, a
	// ring whose next slot is RecentNext): an immediate redelivery is
	// ignored even if the runtime's own dedupe missed it.
	RecentEvents []string `json:"recent_events,omitempty"`
	RecentNext   int      `json:"recent_next,omitempty"`
	// TickFailures counts the runtime's consecutive failed ticks of this
	// lead, so it backs off between retries. The engine ignores it.
	TickFailures int `json:"tick_failures,omitempty"`
}

// LeadStatus is the lead's mailing status.
type LeadStatus string

const (
	LeadActive       LeadStatus = "active"
	LeadUnsubscribed LeadStatus = "unsubscribed" // never mailed again
	LeadBounced      LeadStatus = "bounced"      // hard bounce: suppressed
	LeadComplained   LeadStatus = "complained"   // spam complaint: suppressed
)

// Suppressed reports whether marketing email to the lead is suppressed.
func (s LeadStatus) Suppressed() bool { return s != "" && s != LeadActive }

// Score is a decaying score: Value as of At.
type Score struct {
	Value float64   `json:"value"`
	At    time.Time `json:"at,omitzero"`
}

// Escalation is the lead's current escalation.
type Escalation struct {
	ID       string    `json:"id"`
	Rep      string    `json:"rep"`
	At       time.Time `json:"at"`
	Attempt  int       `json:"attempt"`            // 1 for the first routing, +1 per re-route
	Tried    []string  `json:"tried,omitempty"`    // reps already given this escalation
	AckedBy  string    `json:"acked_by,omitempty"` // rep that acknowledged
	AckedAt  time.Time `json:"acked_at,omitzero"`
	AckDueAt time.Time `json:"ack_due_at,omitzero"` // zero when acked or no SLA
}

// RuleUse is how many points a capped rule awarded in its current period.
type RuleUse struct {
	Rule        string    `json:"rule"`
	PeriodStart time.Time `json:"period_start"`
	Points      float64   `json:"points"`
}

// Enrollment is one lead's run through one version of one sequence.
type Enrollment struct {
	ID       string           `json:"id"` // stable: see EnrollmentID
	Sequence string           `json:"sequence"`
	Version  string           `json:"version"`
	Step     string           `json:"step"` // current step id ("" once ended)
	Status   EnrollmentStatus `json:"status"`
	// NextRunAt is when the current step is due (zero when not waiting on a
	// timer, e.g. paused).
	NextRunAt time.Time `json:"next_run_at,omitzero"`
	// WaitingFor is the event type a wait_for step awaits.
	WaitingFor string    `json:"waiting_for,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	Reason     string    `json:"reason,omitempty"` // why it ended or paused
	// Sent, Opened and Clicked are step ids (in order of occurrence) whose
	// email was sent / opened / clicked in this enrollment.
	Sent    []string `json:"sent,omitempty"`
	Opened  []string `json:"opened,omitempty"`
	Clicked []string `json:"clicked,omitempty"`
	// SentAt[i] is when Sent[i] was sent (to ignore opens that follow the
	// send too closely: privacy proxies prefetch images on delivery).
	SentAt []time.Time `json:"sent_at,omitempty"`
	// PausedLeft is, while paused, how long the paused wait or wait_for
	// step had left; zero means the step is entered afresh on resume.
	PausedLeft time.Duration `json:"paused_left,omitempty"`
}

// EnrollmentStatus is the state of an enrollment.
type EnrollmentStatus string

const (
	EnrollmentActive    EnrollmentStatus = "active"
	EnrollmentPaused    EnrollmentStatus = "paused"
	EnrollmentCompleted EnrollmentStatus = "completed"
	EnrollmentExited    EnrollmentStatus = "exited"
)

// Ended reports whether the enrollment is over.
func (s EnrollmentStatus) Ended() bool {
	return s == EnrollmentCompleted || s == EnrollmentExited
}

// Event is a lead event, already parsed from its envelope.
type Event struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	Lead       string         `json:"lead"` // the lead key (CloudEvents subject)
	Time       time.Time      `json:"time"` // when it happened upstream
	Email      string         `json:"email,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
	// Machine is true for engagement that is likely machine traffic (mail
	// privacy proxies, link scanners).
	Machine bool `json:"machine,omitempty"`
}

// Well-known event types the engine itself understands.
const (
	EventEmailSent         = "email.sent"
	EventEmailOpened       = "email.opened"
	EventEmailClicked      = "email.clicked"
	EventEmailBounced      = "email.bounced" // properties.kind: "hard" | "soft"
	EventEmailComplained   = "email.complained"
	EventEmailUnsubscribed = "email.unsubscribed"
	EventLeadEscalated     = "lead.escalated"
	// EventEscalationAcked acknowledges an escalation:
	// properties.escalation (id) and properties.rep.
	EventEscalationAcked = "escalation.acknowledged"
)

// Input is one thing that happens to a lead.
type Input struct {
	Now time.Time
	// Event is the event to apply; nil for a Tick (fire whatever timers of
	// the lead are due at Now).
	Event *Event
	// Desk is the shared routing state (reps' load and away flags). The
	// engine reads it to route an escalation and updates it in place. May be
	// nil when the content has no reps.
	Desk *Desk
}

// Desk is routing state shared by all leads: per rep, open escalations,
// total assignments and away flags set at run time.
type Desk struct {
	Reps map[string]*RepLoad `json:"reps"`
}

// RepLoad is one rep's routing state.
type RepLoad struct {
	Open     int       `json:"open"`     // open (unacknowledged or acked but not closed) escalations
	Assigned int64     `json:"assigned"` // total assignments, for round-robin
	LastAt   time.Time `json:"last_at,omitzero"`
	Away     bool      `json:"away"` // set by API; ORed with Rep.Away from config
}
