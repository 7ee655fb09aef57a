// Package store declares the storage contract shared by the runtime and the
// HTTP surface, and the records that cross it. adapters/postgres and
// adapters/sqlite implement it; internal/store/storetest is the conformance
// suite both must pass.
//
// The database is the source of truth for lead state. A lead is one row
// holding the engine's [engine.Lead] document plus indexed columns (key,
// email, status, owner, score, next_run_at); enrollments are mirrored into
// their own table for queries. Events and timers for one lead serialize on
// that row's lock.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// Sentinel errors. Adapters translate driver errors into these (wrapped).
var (
	ErrNotFound = errors.New("not found")
	// ErrTransient marks errors worth retrying (connection lost,
	// serialization failure, deadlock, server shutting down).
	ErrTransient = errors.New("transient store error")
	// ErrSchemaBehind: the database schema is older than this binary.
	ErrSchemaBehind = errors.New("database schema is behind: run `nurture migrate`")
	// ErrInvalidData marks a value the database refuses to hold (a data
	// exception: a string it cannot store, a number out of range). Retrying
	// the same input cannot help; the runtime dead-letters the input.
	ErrInvalidData = errors.New("data the database refuses")
	// ErrStale: an outbox outcome or hand-off belongs to an attempt that
	// is no longer the item's current one (its lease expired and the item
	// was recovered or claimed again). It was not applied.
	ErrStale = errors.New("stale outbox attempt")
)

// Store is a database holding Nurture's state.
type Store interface {
	// InTx runs fn in one transaction and commits when fn returns nil.
	InTx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	Outbox
	Reader
	Admin
	Close() error
}

// Tx is what the runtime does inside one apply transaction.
type Tx interface {
	// LockLeads locks the named leads in key order (creating missing ones
	// with engine.NewLead(key, now)) and returns their state by key.
	LockLeads(ctx context.Context, keys []string, now time.Time) (map[string]*engine.Lead, error)
	// ClaimDueLeads locks up to limit leads whose NextRunAt <= now, oldest
	// first, skipping rows other transactions hold.
	ClaimDueLeads(ctx context.Context, now time.Time, limit int) ([]*engine.Lead, error)
	// MarkEvents records event ids as processed and returns those that
	// were not recorded before.
	MarkEvents(ctx context.Context, ids []string, now time.Time) (fresh map[string]bool, err error)
	// SaveLeads writes leads back (document, indexed columns, enrollments).
	SaveLeads(ctx context.Context, leads []*engine.Lead) error
	// AppendHistory adds timeline entries.
	AppendHistory(ctx context.Context, entries []History) error
	// Enqueue adds outbox items; an item whose DedupeKey exists is skipped.
	Enqueue(ctx context.Context, items []OutboxItem) error
	// DeadLetter records an input that could not be applied.
	DeadLetter(ctx context.Context, dl DeadLetter) error
	// Desk loads the routing state; lock=true locks it until commit.
	Desk(ctx context.Context, lock bool) (*engine.Desk, error)
	SaveDesk(ctx context.Context, d *engine.Desk) error
	// Suppressed returns the subset of addresses on the suppression list.
	Suppressed(ctx context.Context, emails []string) (map[string]string, error)
	// CompleteOutbox records outcomes of claimed items in this
	// transaction, fenced like Outbox.CompleteOutbox; it returns the ids
	// whose outcome was not applied (stale attempt or no such item).
	CompleteOutbox(ctx context.Context, results []OutboxResult) (notApplied []int64, err error)
}

// Outbox is the dispatcher's view of the outbox.
type Outbox interface {
	// ClaimOutbox leases up to p.Limit due items (status pending or retry,
	// NextAttemptAt <= p.Now) of p.Kinds until p.Now+p.Lease, skipping
	// items others hold, and marks them sending. Items whose lease expired
	// while sending are returned by ExpiredLeases, not here.
	ClaimOutbox(ctx context.Context, p ClaimParams) ([]OutboxItem, error)
	// CompleteOutbox records the outcomes of claimed items. A result with
	// Attempts > 0 is fenced: it applies only while the item is still on
	// that attempt (not claimed again since) and not already final
	// (sending, or settled by RecoverLeases as retry/unknown, whose truth
	// it then records); otherwise it is not applied and reported with
	// ErrStale. Unknown ids are reported with ErrNotFound.
	CompleteOutbox(ctx context.Context, results []OutboxResult) error
	// HandOff runs the last check before items leave and marks the ones
	// that pass handed off, all in one statement (the dispatcher gathers
	// the items that are about to leave at the same moment). An item whose
	// Email is on the suppression list, or whose lead's status suppresses
	// marketing mail, is not handed off (HandOffResult.Suppressed says
	// why). Every other item is marked handed off on its attempt, with its
	// lease renewed to now+lease, unless it is no longer sending on that
	// attempt (HandOffResult.Stale): then the caller must not deliver it.
	// Results are in the order of items.
	HandOff(ctx context.Context, items []HandOff, now time.Time, lease time.Duration) ([]HandOffResult, error)
	// RecoverLeases settles, in one statement, up to p.Limit items whose
	// lease ended before p.Now while sending: items of p.UnknownKinds
	// that were handed off become unknown; all others (never handed off,
	// or of other kinds) become retry due at p.Now. It returns them with
	// their new status (HandedAt tells which were handed off).
	RecoverLeases(ctx context.Context, p RecoverParams) ([]OutboxItem, error)
	// ExpiredLeases returns items stuck in sending whose lease ended before
	// now (their worker died mid hand-off), up to limit.
	ExpiredLeases(ctx context.Context, now time.Time, limit int) ([]OutboxItem, error)
	// Suppress adds an address to the suppression list (idempotent).
	Suppress(ctx context.Context, email, reason string, now time.Time) error
}

// Reader serves the HTTP surface: lead pages, the timeline, captured mail.
type Reader interface {
	Lead(ctx context.Context, key string) (*engine.Lead, error)
	History(ctx context.Context, leadKey string, limit int) ([]History, error)
	ListOutbox(ctx context.Context, f OutboxFilter) ([]OutboxItem, error)
	DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error)
	// RecentLeads returns up to limit leads (default 100), most recently
	// updated first, ties by key (the lead list of `nurture dev`).
	RecentLeads(ctx context.Context, limit int) ([]*engine.Lead, error)
}

// Admin covers migrations, content versions and reps.
type Admin interface {
	// Migrate applies pending migrations.
	Migrate(ctx context.Context) error
	// CheckSchema returns ErrSchemaBehind (wrapped, with versions) when
	// migrations are pending.
	CheckSchema(ctx context.Context) error
	// PublishVersions records compiled sequence versions (idempotent by
	// (sequence, version)); Versions returns all recorded ones.
	PublishVersions(ctx context.Context, vs []SequenceVersion) error
	Versions(ctx context.Context) ([]SequenceVersion, error)
	// SetRepAway marks a rep away (out of office) or back.
	SetRepAway(ctx context.Context, rep string, away bool) error
	// PruneProcessed forgets processed event ids recorded before before and
	// returns how many it deleted. Run it periodically with a horizon well
	// beyond the JetStream duplicate window and the longest redelivery
	// delay: an id pruned too early lets a redelivered event apply twice.
	PruneProcessed(ctx context.Context, before time.Time) (int64, error)
}

// History is one entry of a lead's timeline.
type History struct {
	LeadKey string
	At      time.Time
	// Kind is an engine effect's Action ("email.sent", "score.changed", …),
	// "event" for an applied event, or an outbox outcome ("delivery").
	Kind    string
	EventID string
	Data    json.RawMessage
}

// Outbox item kinds.
const (
	KindEmail         = "email"          // a marketing email (payload: engine.SendEmail + rendering data)
	KindNotifySlack   = "notify.slack"   // escalation to Slack
	KindNotifyWebhook = "notify.webhook" // escalation to a signed webhook
	KindNotifyEmail   = "notify.email"   // escalation email to the rep
	KindEvent         = "event"          // a nurture.> event to publish
)

// Outbox statuses.
const (
	StatusPending    = "pending"
	StatusSending    = "sending"
	StatusRetry      = "retry"
	StatusSent       = "sent"
	StatusFailed     = "failed"     // permanent failure or gave up
	StatusUnknown    = "unknown"    // hand-off outcome unknown; not resent by default
	StatusSuppressed = "suppressed" // address suppressed when claimed
)

// OutboxItem is one unit of outgoing work.
type OutboxItem struct {
	ID            int64
	Kind          string
	DedupeKey     string // unique: the send id, escalation id + channel, event id
	LeadKey       string
	Payload       json.RawMessage
	Status        string
	Attempts      int
	NextAttemptAt time.Time
	LeaseUntil    time.Time
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// HandedAt is when the current attempt was handed off (zero: not yet).
	HandedAt time.Time
	// Deferred is the total time throttles deferred the item (not counted
	// towards giving up).
	Deferred time.Duration
}

// RecoverParams selects expired leases to settle.
type RecoverParams struct {
	Now          time.Time
	Limit        int
	UnknownKinds []string // handed-off items of these kinds become unknown
}

// ClaimParams selects outbox items to lease.
type ClaimParams struct {
	Now   time.Time
	Limit int
	Lease time.Duration
	Kinds []string // empty = all kinds
}

// HandOff is one claimed item about to leave (Outbox.HandOff).
type HandOff struct {
	ID       int64
	Attempts int
	// Email, when not empty, is looked up on the suppression list
	// (trimmed and lower-cased, like Suppress).
	Email string
	// LeadKey, when not empty, names the lead whose status is checked: a
	// status other than active (unsubscribed, bounced, complained…)
	// stops the item. Empty for transactional mail and other kinds.
	LeadKey string
}

// HandOffResult is what became of one HandOff.
type HandOffResult struct {
	// Suppressed is why the item must not leave (the address's reason on
	// the suppression list, or the lead's status); it was not handed off.
	Suppressed string
	// Stale: the item is no longer sending on that attempt (its lease was
	// lost and it may be claimed again); it was not handed off.
	Stale bool
}

// OutboxResult is the outcome of one claimed item.
type OutboxResult struct {
	ID     int64
	Status string    // StatusSent, StatusRetry, StatusFailed, StatusUnknown, StatusSuppressed
	Error  string    // reason for failure / retry
	NextAt time.Time // for StatusRetry
	At     time.Time // when the outcome was recorded
	// Attempts is the claimed item's Attempts: it fences the completion
	// to that attempt (0: not fenced).
	Attempts int
	// Deferred (with StatusRetry): a throttle deferred the item before
	// any hand-off: the attempt is not counted and NextAt-At is added to
	// the item's Deferred time.
	Deferred bool
}

// OutboxFilter narrows ListOutbox.
type OutboxFilter struct {
	Kind    string
	LeadKey string
	Limit   int
}

// DeadLetter is an input that could not be applied.
type DeadLetter struct {
	ID      int64
	At      time.Time
	Subject string // NATS subject or source
	EventID string // if known
	Reason  string
	Payload []byte // raw input, truncated to a sane size by the caller
}

// SequenceVersion is one published version of a sequence.
type SequenceVersion struct {
	Sequence    string
	Version     string
	Source      []byte // the YAML as loaded
	PublishedAt time.Time
}
