// Package notify delivers escalation notifications from the outbox: for an
// item of kind notify.slack, notify.webhook or notify.email it loads the
// lead and its timeline, builds the rep's view of the lead (package
// leadview) and hands it to the configured channel.
//
// The channels (adapters/slack, adapters/webhook, the rep mailer) reach this
// package through the small interfaces below; internal/app builds them from
// the content's notification config and wires them in.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
)

// Reader loads what a notification shows (store.Reader satisfies it).
type Reader interface {
	Lead(ctx context.Context, key string) (*engine.Lead, error)
	History(ctx context.Context, leadKey string, limit int) ([]store.History, error)
}

// Notifier sends a view to one channel (a Slack webhook, a signed webhook
// endpoint).
type Notifier interface {
	Notify(ctx context.Context, v leadview.View) error
}

// Mailer sends the rendered rep email. Errors follow the outbox classes.
type Mailer interface {
	SendRepEmail(ctx context.Context, m leadview.Email) error
}

// MailerFunc adapts a function to Mailer.
type MailerFunc func(ctx context.Context, m leadview.Email) error

func (f MailerFunc) SendRepEmail(ctx context.Context, m leadview.Email) error { return f(ctx, m) }

// ErrNoChannel: the item names a channel that is not configured (any more).
var ErrNoChannel = errors.New("notification channel not configured")

// Config wires the handler.
type Config struct {
	Store Reader
	Views *leadview.Builder
	// Slack and Webhooks are the configured channels by name (the
	// NotifyPayload.Channel of an item).
	Slack    map[string]Notifier
	Webhooks map[string]Notifier
	// Mailer sends rep emails; nil fails notify.email items permanently.
	Mailer Mailer
	// HistoryLimit bounds the timeline loaded per notification (default 500).
	HistoryLimit int
	Now          func() time.Time
	Logger       *slog.Logger
}

// Handler delivers the three notification kinds. It implements
// outbox.Handler; register it for each kind in Kinds.
type Handler struct {
	cfg Config
}

// Kinds are the outbox kinds Handler delivers.
var Kinds = []string{store.KindNotifySlack, store.KindNotifyWebhook, store.KindNotifyEmail}

// New returns the handler.
func New(cfg Config) *Handler {
	if cfg.Views == nil {
		cfg.Views = &leadview.Builder{}
	}
	if cfg.HistoryLimit <= 0 {
		cfg.HistoryLimit = 500
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg}
}

// Handlers returns h registered under each of its kinds, for a dispatcher
// that takes a kind → handler map.
func (h *Handler) Handlers() map[string]outbox.Handler {
	m := map[string]outbox.Handler{}
	for _, k := range Kinds {
		m[k] = h
	}
	return m
}

// Deliver sends one notification item.
func (h *Handler) Deliver(ctx context.Context, item store.OutboxItem) error {
	var p outbox.NotifyPayload
	if err := json.Unmarshal(item.Payload, &p); err != nil {
		return fmt.Errorf("notify item %d: decode payload: %w: %w", item.ID, outbox.ErrPermanent, err)
	}
	if p.Lead == "" {
		p.Lead = item.LeadKey
	}
	send, err := h.channel(item.Kind, p.Channel)
	if err != nil {
		return fmt.Errorf("notify %s lead %s escalation %s: %w", item.Kind, p.Lead, p.Escalation.ID, err)
	}
	v, err := h.View(ctx, p.Lead, &p.Escalation)
	if err != nil {
		return err
	}
	err = send(ctx, v)
	log := h.cfg.Logger.With("kind", item.Kind, "channel", p.Channel, "lead_id", p.Lead,
		"escalation", p.Escalation.ID, "attempt", p.Escalation.Attempt, "rep", p.Escalation.Rep)
	if err != nil {
		log.Warn("notification failed", "class", className(outbox.Classify(err)), "error", err)
		return err
	}
	log.Info("notification delivered")
	return nil
}

// View builds the current view of lead for escalation e (nil: the lead's
// current escalation).
func (h *Handler) View(ctx context.Context, lead string, e *engine.Escalated) (leadview.View, error) {
	l, err := h.cfg.Store.Lead(ctx, lead)
	if errors.Is(err, store.ErrNotFound) {
		return leadview.View{}, fmt.Errorf("notify lead %s: %w: %w", lead, outbox.ErrPermanent, err)
	}
	if err != nil {
		return leadview.View{}, fmt.Errorf("notify lead %s: load lead: %w", lead, err)
	}
	hist, err := h.cfg.Store.History(ctx, lead, h.cfg.HistoryLimit)
	if err != nil {
		return leadview.View{}, fmt.Errorf("notify lead %s: load history: %w", lead, err)
	}
	v, err := h.cfg.Views.Build(leadview.Input{Lead: l, History: hist, Escalation: e, Now: h.cfg.Now()})
	if err != nil {
		return leadview.View{}, fmt.Errorf("notify lead %s: %w", lead, err)
	}
	return v, nil
}

func (h *Handler) channel(kind, name string) (func(context.Context, leadview.View) error, error) {
	switch kind {
	case store.KindNotifySlack:
		n, err := pick(h.cfg.Slack, kind, name)
		if err != nil {
			return nil, err
		}
		return n.Notify, nil
	case store.KindNotifyWebhook:
		n, err := pick(h.cfg.Webhooks, kind, name)
		if err != nil {
			return nil, err
		}
		return n.Notify, nil
	case store.KindNotifyEmail:
		if h.cfg.Mailer == nil {
			return nil, fmt.Errorf("%w: %w: no rep mailer", outbox.ErrPermanent, ErrNoChannel)
		}
		return h.email, nil
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", outbox.ErrPermanent, kind)
	}
}

// pick finds the named channel; an unnamed item (or one named after its
// kind, the runtime's default name) goes to the only channel of its kind.
func pick(m map[string]Notifier, kind, name string) (Notifier, error) {
	if n, ok := m[name]; ok && n != nil {
		return n, nil
	}
	if (name == "" || name == kind) && len(m) == 1 {
		for _, n := range m {
			return n, nil
		}
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("%w: %w: %q (configured: %s)", outbox.ErrPermanent, ErrNoChannel, name, strings.Join(names, ", "))
}

func (h *Handler) email(ctx context.Context, v leadview.View) error {
	m, err := leadview.RenderEmail(v)
	if err != nil {
		return fmt.Errorf("%w: %w", outbox.ErrPermanent, err)
	}
	return h.cfg.Mailer.SendRepEmail(ctx, m)
}

func className(c outbox.Class) string {
	switch c {
	case outbox.Transient:
		return "transient"
	case outbox.Permanent:
		return "permanent"
	case outbox.Unknown:
		return "unknown"
	}
	return "delivered"
}
