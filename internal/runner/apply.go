package runner

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/cloudevent"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
)

// Subjects of events the runner emits under nurture.>.
const (
	SubjectPrefix    = "nurture"
	SubjectEscalated = "nurture.lead.escalated"
	SubjectEmailSent = "nurture.email.sent"
)

// writes collects what one transaction writes besides lead state.
type writes struct {
	history []store.History
	items   []store.OutboxItem
	// suppress: addresses whose lead became unsubscribed/bounced/complained
	// (added to the suppression list after commit).
	suppress    map[string]string
	escalations int
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// Effects and payloads are plain structs; this cannot happen
		// unless a trait holds an unencodable value.
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	return b
}

// eventEntry is the timeline entry of an applied event (no email address:
// the lead document has it).
func eventEntry(ev *engine.Event, now time.Time) store.History {
	data := map[string]any{"type": ev.Type}
	if len(ev.Properties) > 0 {
		data["properties"] = ev.Properties
	}
	if len(ev.Traits) > 0 {
		data["traits"] = ev.Traits
	}
	if ev.Machine {
		data["machine"] = true
	}
	if !ev.Time.IsZero() {
		data["time"] = ev.Time
	}
	return store.History{LeadKey: ev.Lead, At: now, Kind: "event", EventID: ev.ID, Data: mustJSON(data)}
}

// addEffects records the history entries and outbox items of effects that
// happened to lead because of event eventID ("" for a tick).
func (r *Runner) addEffects(w *writes, lead *engine.Lead, eventID string, now time.Time, effects []engine.Effect) {
	for _, ef := range effects {
		w.history = append(w.history, store.History{
			LeadKey: lead.Key, At: now, Kind: ef.Action(), EventID: eventID, Data: mustJSON(ef),
		})
		switch e := ef.(type) {
		case engine.SendEmail:
			r.addSend(w, lead, now, e)
		case *engine.SendEmail:
			r.addSend(w, lead, now, *e)
		case engine.Escalated:
			w.escalations++
			r.addEscalation(w, lead, now, e)
		case *engine.Escalated:
			w.escalations++
			r.addEscalation(w, lead, now, *e)
		case engine.StatusChanged:
			addSuppress(w, lead, e)
		case *engine.StatusChanged:
			addSuppress(w, lead, *e)
		}
	}
}

func (r *Runner) addSend(w *writes, lead *engine.Lead, now time.Time, e engine.SendEmail) {
	to := e.To
	if to == "" {
		to = lead.Email
	}
	w.items = append(w.items, store.OutboxItem{
		Kind: store.KindEmail, DedupeKey: e.SendID, LeadKey: lead.Key, NextAttemptAt: now,
		Payload: mustJSON(outbox.EmailPayload{Send: e, Lead: lead.Key, To: to, Traits: maps.Clone(lead.Traits)}),
	})
}

func addSuppress(w *writes, lead *engine.Lead, e engine.StatusChanged) {
	if !e.To.Suppressed() || lead.Email == "" {
		return
	}
	if w.suppress == nil {
		w.suppress = map[string]string{}
	}
	w.suppress[lead.Email] = string(e.To)
}

func (r *Runner) addEscalation(w *writes, lead *engine.Lead, now time.Time, e engine.Escalated) {
	for _, ch := range r.cfg.Channels {
		w.items = append(w.items, store.OutboxItem{
			Kind:          ch.Kind,
			DedupeKey:     fmt.Sprintf("%s/%d/%s", e.ID, e.Attempt, ch.name()),
			LeadKey:       lead.Key,
			NextAttemptAt: now,
			Payload:       mustJSON(outbox.NotifyPayload{Escalation: e, Lead: lead.Key, Channel: ch.name()}),
		})
	}
	id := EscalationEventID(e)
	ev := &engine.Event{
		ID: id, Type: engine.EventLeadEscalated, Lead: lead.Key, Time: now,
		Properties: map[string]any{
			"escalation": e.ID, "rep": e.Rep, "attempt": e.Attempt, "score": e.Score, "reason": e.Reason,
		},
	}
	if p, ok := r.eventPayload(lead.Key, SubjectEscalated, ev); ok {
		w.items = append(w.items, eventItem(lead.Key, p, now))
	}
}

// EscalationEventID is the id of the lead.escalated event of an
// escalation: the escalation id for the first routing, id/attempt for
// re-routes. Stable, so receivers dedupe on it.
func EscalationEventID(e engine.Escalated) string {
	if e.Attempt <= 1 {
		return e.ID
	}
	return fmt.Sprintf("%s/%d", e.ID, e.Attempt)
}

// eventPayload encodes ev as the CloudEvent to publish on subject.
func (r *Runner) eventPayload(leadKey, subject string, ev *engine.Event) (outbox.EventPayload, bool) {
	data, err := cloudevent.Encode(ev, r.cfg.Source)
	if err != nil {
		r.log.Error("encode emitted event", "event_id", ev.ID, "lead_id", redact(leadKey), "err", redactErr(err))
		return outbox.EventPayload{}, false
	}
	return outbox.EventPayload{Subject: subject, ID: ev.ID, Data: data}, true
}

// eventItem is the KindEvent outbox item publishing p.
func eventItem(leadKey string, p outbox.EventPayload, now time.Time) store.OutboxItem {
	return store.OutboxItem{
		Kind: store.KindEvent, DedupeKey: "event/" + p.Subject + "/" + p.ID, LeadKey: leadKey, NextAttemptAt: now,
		Payload: mustJSON(p),
	}
}

// echoEngagement republishes applied engagement events (email.opened,
// clicked, bounced, complained, unsubscribed) under nurture.> for
// downstream consumers, with the same id.
func (r *Runner) echoEngagement(w *writes, ev *engine.Event, now time.Time) {
	if !strings.HasPrefix(ev.Type, "email.") || ev.Type == engine.EventEmailSent {
		return
	}
	echo := *ev
	echo.Email = "" // downstream gets the lead key, not the address
	if p, ok := r.eventPayload(ev.Lead, cloudevent.Subject(SubjectPrefix, ev.Type), &echo); ok {
		w.items = append(w.items, eventItem(ev.Lead, p, now))
	}
}

// deskKey is a canonical encoding of the desk, to tell whether a pass
// changed it (encoding/json sorts map keys).
func deskKey(d *engine.Desk) string {
	if d == nil {
		return ""
	}
	b, _ := json.Marshal(d)
	return string(b)
}
