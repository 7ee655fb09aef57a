package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/internal/leadview"
)

// EventType is the payload type of an escalation notification.
const EventType = "lead.escalated"

// Payload is the JSON body of a FormatStandard notification, shaped as the
// Standard Webhooks spec recommends: {type, timestamp, data}. Documented in
// docs/integrations.md; fields are only ever added.
type Payload struct {
	Type string `json:"type"`
	// Timestamp is when the escalation happened (stable across retries).
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is the notification's content.
type Data struct {
	Escalation Escalation `json:"escalation"`
	Lead       Lead       `json:"lead"`
	// TopContributors are the scoring rules that awarded the most points.
	TopContributors []leadview.Contribution `json:"top_contributors"`
	// RecentActivity is what the lead did lately, newest first.
	RecentActivity []Activity `json:"recent_activity"`
}

// Escalation says which crossing this is and whose lead it is now.
type Escalation struct {
	ID        string        `json:"id"`
	WebhookID string        `json:"webhook_id"`
	Attempt   int           `json:"attempt"`
	Rep       *leadview.Rep `json:"rep"`
	Score     float64       `json:"score"`
	Reason    string        `json:"reason,omitempty"`
	At        time.Time     `json:"at,omitzero"`
	AckDueAt  time.Time     `json:"ack_due_at,omitzero"`
	AckURL    string        `json:"ack_url,omitempty"`
}

// Lead is who the lead is.
type Lead struct {
	Key       string         `json:"key"`
	Name      string         `json:"name"`
	Company   string         `json:"company,omitempty"`
	Title     string         `json:"title,omitempty"`
	Email     string         `json:"email,omitempty"`
	Status    string         `json:"status"`
	Score     float64        `json:"score"`
	Threshold float64        `json:"threshold,omitempty"`
	URL       string         `json:"url,omitempty"`
	Traits    map[string]any `json:"traits,omitempty"`
}

// Activity is one recent timeline entry.
type Activity struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Type    string    `json:"type,omitempty"`
	Summary string    `json:"summary"`
	EventID string    `json:"event_id,omitempty"`
	Points  float64   `json:"points,omitempty"`
}

// NewPayload is the standard body for v (v.Escalation must be set).
func NewPayload(v leadview.View) Payload {
	e := v.Escalation
	p := Payload{Type: EventType, Timestamp: e.At.UTC()}
	if p.Timestamp.IsZero() {
		p.Timestamp = v.Now.UTC()
	}
	rep := v.Owner
	if rep == nil || rep.ID != e.Rep {
		rep = &leadview.Rep{ID: e.Rep}
	}
	p.Data.Escalation = Escalation{
		ID: e.ID, WebhookID: ID(e.ID, e.Attempt), Attempt: max(e.Attempt, 1), Rep: rep,
		Score: e.Score, Reason: e.Reason, At: e.At.UTC(), AckDueAt: e.AckDueAt.UTC(), AckURL: v.AckURL,
	}
	p.Data.Lead = Lead{
		Key: v.Key, Name: v.Name, Company: v.Company, Title: v.Title, Email: v.Email,
		Status: v.Status, Score: v.Score, Threshold: v.Threshold, URL: v.LeadURL, Traits: v.Traits,
	}
	p.Data.TopContributors = v.Top
	if p.Data.TopContributors == nil {
		p.Data.TopContributors = []leadview.Contribution{}
	}
	p.Data.RecentActivity = []Activity{}
	for _, a := range v.Recent {
		p.Data.RecentActivity = append(p.Data.RecentActivity, Activity{
			At: a.At.UTC(), Kind: a.Kind, Type: a.Type, Summary: a.Summary, EventID: a.EventID, Points: a.Points,
		})
	}
	return p
}

// HubSpotTask is the body of HubSpot's "create a task" CRM API
// (POST https://api.hubapi.com/crm/v3/objects/tasks).
type HubSpotTask struct {
	Properties map[string]string `json:"properties"`
}

// NewHubSpotTask renders v as a HubSpot task for the rep.
func NewHubSpotTask(v leadview.View, owners map[string]string) HubSpotTask {
	e := v.Escalation
	due := e.AckDueAt
	if due.IsZero() {
		due = v.Now
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", leadview.Subject(v))
	if v.Email != "" {
		fmt.Fprintf(&b, "Email: %s\n", v.Email)
	}
	if len(v.Top) > 0 {
		b.WriteString("\nWhy this lead is hot:\n")
		for _, c := range v.Top {
			fmt.Fprintf(&b, "  %s %s (rule %s)\n", leadview.Signed(c.Points), c.Event, c.Rule)
		}
	}
	if len(v.Recent) > 0 {
		b.WriteString("\nRecent activity:\n")
		for _, a := range v.Recent {
			fmt.Fprintf(&b, "  %s %s\n", a.At.UTC().Format("2006-01-02 15:04"), a.Summary)
		}
	}
	if v.LeadURL != "" {
		fmt.Fprintf(&b, "\nLead page: %s\n", v.LeadURL)
	}
	if v.AckURL != "" {
		fmt.Fprintf(&b, "Acknowledge: %s\n", v.AckURL)
	}
	fmt.Fprintf(&b, "\nNurture escalation %s", ID(e.ID, e.Attempt))
	t := HubSpotTask{Properties: map[string]string{
		"hs_timestamp":     due.UTC().Format(time.RFC3339),
		"hs_task_subject":  leadview.Subject(v),
		"hs_task_body":     b.String(),
		"hs_task_status":   "NOT_STARTED",
		"hs_task_priority": "HIGH",
		"hs_task_type":     "CALL",
	}}
	if id := owners[e.Rep]; id != "" {
		t.Properties["hubspot_owner_id"] = id
	}
	return t
}

func (e *Endpoint) body(v leadview.View) ([]byte, error) {
	if e.cfg.Format == FormatHubSpotTask {
		return json.Marshal(NewHubSpotTask(v, e.cfg.HubSpotOwners))
	}
	return json.Marshal(NewPayload(v))
}
