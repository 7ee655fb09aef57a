package engine

import "time"

// Effect is something the outside world must do or record because of an
// Apply. Effects are returned in the order they happened.
type Effect interface {
	// Action is the effect's stable name, as used in transcripts and
	// history: "enrolled", "email.sent", "waiting", …
	Action() string
}

// Enrolled: the lead started a sequence.
type Enrolled struct {
	Enrollment string
	Sequence   string
	Version    string
	Trigger    string // event id that enrolled the lead
}

// SendEmail: send a template to the lead. SendID is stable per
// (enrollment, step), so a redelivered input can never send twice.
type SendEmail struct {
	SendID        string // SendID(enrollment, step)
	Enrollment    string
	Sequence      string
	Version       string
	Step          string
	Template      string
	To            string
	From          string // sequence default; template may override
	ReplyTo       string
	Transactional bool
}

// EmailSuppressed: an email step was reached but not sent.
type EmailSuppressed struct {
	SendID     string
	Enrollment string
	Sequence   string
	Step       string
	Template   string
	Reason     string // "unsubscribed", "bounced", "complained", "no_email"
}

// Waiting: the enrollment waits until Until (a wait step, a send window, a
// frequency cap, a cron spec, or a wait_for timeout).
type Waiting struct {
	Enrollment string
	Sequence   string
	Step       string
	Until      time.Time
	Reason     string // "wait", "business_days", "wait_until", "wait_for", "send_window", "frequency_cap"
	Event      string // for wait_for: the awaited event type
}

// Exited: the enrollment ended early.
type Exited struct {
	Enrollment string
	Sequence   string
	Step       string
	Reason     string // "goal:<event type>", "goal:condition", "escalated", "unsubscribed", "version", …
}

// Completed: the enrollment reached its end.
type Completed struct {
	Enrollment string
	Sequence   string
}

// Paused / Resumed: escalation paused the enrollment (resumed when the lead
// re-arms; a resumed wait is followed by its Waiting effect).
type Paused struct {
	Enrollment string
	Sequence   string
	Step       string
	Reason     string
}

type Resumed struct {
	Enrollment string
	Sequence   string
	Step       string
}

// ScoreChanged: the score moved by Delta because of Rule (or decay).
type ScoreChanged struct {
	Rule   string  // rule id
	Event  string  // event id
	Delta  float64 // points awarded (after caps)
	Score  float64 // score after the change (decayed to now)
	Capped bool    // the rule's cap reduced the points
}

// Escalated: the lead crossed the threshold (or was re-routed) and belongs
// to Rep now. ID is stable per crossing; Attempt > 1 means a re-route.
type Escalated struct {
	ID      string
	Rep     string
	Attempt int
	Score   float64
	Reason  string // why this rep: "territory emea, round-robin among 2", …
}

// Acknowledged: a rep acknowledged the escalation.
type Acknowledged struct {
	ID  string
	Rep string
}

// Ignored: an event was applied but deliberately had no effect (machine
// traffic, an early open, a wait_for match that failed, …). Recorded so the
// timeline can say why nothing happened.
type Ignored struct {
	Event  string
	Reason string
}

// StatusChanged: the lead's mailing status changed (unsubscribed, bounced…).
type StatusChanged struct {
	From, To LeadStatus
	Event    string
}

// Migrated: a new version of the sequence with InFlight "migrate" became
// current and the enrollment moved to it, on the same step id.
type Migrated struct {
	Enrollment string
	Sequence   string
	From, To   string // versions
	Step       string
}

// ConditionFailed: a condition returned an error at run time. The engine
// treated it as false and carried on; the content should be fixed.
type ConditionFailed struct {
	Where    string // "enroll", "exit", "branch", "wait_for", "rule"
	Sequence string
	Step     string
	Rule     string
	Event    string // event id, when an event was being applied
	Error    string
}

func (Enrolled) Action() string        { return "enrolled" }
func (SendEmail) Action() string       { return "email.sent" }
func (EmailSuppressed) Action() string { return "email.suppressed" }
func (Waiting) Action() string         { return "waiting" }
func (Exited) Action() string          { return "exited" }
func (Completed) Action() string       { return "completed" }
func (Paused) Action() string          { return "paused" }
func (Resumed) Action() string         { return "resumed" }
func (ScoreChanged) Action() string    { return "score.changed" }
func (Escalated) Action() string       { return "escalated" }
func (Acknowledged) Action() string    { return "acknowledged" }
func (Ignored) Action() string         { return "ignored" }
func (StatusChanged) Action() string   { return "status.changed" }
func (Migrated) Action() string        { return "migrated" }
func (ConditionFailed) Action() string { return "condition.failed" }
