package slack

import (
	"fmt"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/internal/leadview"
)

// Message is an incoming-webhook payload.
type Message struct {
	Text      string  `json:"text"`
	Blocks    []Block `json:"blocks"`
	Channel   string  `json:"channel,omitempty"`
	Username  string  `json:"username,omitempty"`
	IconEmoji string  `json:"icon_emoji,omitempty"`
	// UnfurlLinks is off: the lead page link should not unfurl.
	UnfurlLinks bool `json:"unfurl_links"`
}

// Block is one Block Kit layout block (header, section, actions, context,
// divider).
type Block struct {
	Type     string    `json:"type"`
	BlockID  string    `json:"block_id,omitempty"`
	Text     *Text     `json:"text,omitempty"`
	Fields   []Text    `json:"fields,omitempty"`
	Elements []Element `json:"elements,omitempty"`
}

// Text is a plain_text or mrkdwn text object.
type Text struct {
	Type  string `json:"type"`
	Text  string `json:"text"`
	Emoji bool   `json:"emoji,omitempty"`
}

// Element is a block element: a link button (actions) or a text object
// (context).
type Element struct {
	Type     string `json:"type"`
	Text     any    `json:"text,omitempty"` // *Text for buttons, string for context mrkdwn
	ActionID string `json:"action_id,omitempty"`
	URL      string `json:"url,omitempty"`
	Style    string `json:"style,omitempty"`
	Value    string `json:"value,omitempty"`
}

// Block Kit limits.
const (
	maxHeader  = 150
	maxField   = 2000
	maxSection = 3000
	maxButton  = 75
	maxURL     = 3000
)

// Build renders the Block Kit message for v.
func Build(v leadview.View) Message {
	m := Message{Text: fallback(v)}

	title := "Hot lead: " + v.Name
	if v.Escalation != nil && v.Escalation.Attempt > 1 {
		title = "Hot lead (re-routed): " + v.Name
	}
	m.Blocks = append(m.Blocks, Block{Type: "header", BlockID: "header",
		Text: &Text{Type: "plain_text", Text: cut(title, maxHeader), Emoji: true}})

	fields := []Text{mrkdwn("*Lead*\n" + esc(v.Name))}
	if v.Company != "" {
		co := esc(v.Company)
		if v.Title != "" {
			co = esc(v.Title) + ", " + co
		}
		fields = append(fields, mrkdwn("*Company*\n"+co))
	}
	if v.Email != "" {
		fields = append(fields, mrkdwn("*Email*\n<mailto:"+linkEsc(v.Email)+"|"+esc(v.Email)+">"))
	}
	score := "*Score*\n" + leadview.Num(v.Score)
	if v.Threshold > 0 {
		score += " (threshold " + leadview.Num(v.Threshold) + ")"
	}
	fields = append(fields, mrkdwn(score))
	if v.Owner != nil {
		owner := "*Owner*\n" + esc(v.Owner.Display())
		if v.Owner.Email != "" {
			owner += " (" + esc(v.Owner.Email) + ")"
		}
		fields = append(fields, mrkdwn(owner))
	}
	if e := v.Escalation; e != nil && !e.AckDueAt.IsZero() && !e.Acked() {
		fields = append(fields, mrkdwn("*Acknowledge by*\n"+slackDate(e.AckDueAt)))
	}
	for i := range fields {
		fields[i].Text = cut(fields[i].Text, maxField)
	}
	m.Blocks = append(m.Blocks, Block{Type: "section", BlockID: "lead", Fields: fields})

	if len(v.Top) > 0 {
		var b strings.Builder
		b.WriteString("*Why this lead is hot*")
		for _, c := range v.Top {
			fmt.Fprintf(&b, "\n• *%s* %s", leadview.Signed(c.Points), esc(label(c.Event, c.Rule)))
			if c.Count > 1 {
				fmt.Fprintf(&b, " ×%d", c.Count)
			}
			fmt.Fprintf(&b, " _(rule %s)_", esc(c.Rule))
		}
		m.Blocks = append(m.Blocks, section("top", b.String()))
	}
	if len(v.Recent) > 0 {
		var b strings.Builder
		b.WriteString("*Recent activity*")
		for _, a := range v.Recent {
			fmt.Fprintf(&b, "\n• %s %s", slackDate(a.At), esc(a.Summary))
			if a.Points != 0 {
				fmt.Fprintf(&b, " (%s)", leadview.Signed(a.Points))
			}
		}
		m.Blocks = append(m.Blocks, section("recent", b.String()))
	}

	var buttons []Element
	if v.LeadURL != "" && len(v.LeadURL) <= maxURL {
		buttons = append(buttons, Element{Type: "button", ActionID: "open_lead", URL: v.LeadURL, Style: "primary",
			Text: &Text{Type: "plain_text", Text: "Open lead"}})
	}
	if v.AckURL != "" && len(v.AckURL) <= maxURL {
		buttons = append(buttons, Element{Type: "button", ActionID: "acknowledge", URL: v.AckURL,
			Text: &Text{Type: "plain_text", Text: cut("Acknowledge", maxButton)}})
	}
	if len(buttons) > 0 {
		m.Blocks = append(m.Blocks, Block{Type: "actions", BlockID: "links", Elements: buttons})
	}
	if e := v.Escalation; e != nil {
		ctx := "Escalation `" + esc(e.ID) + "`"
		if e.Attempt > 1 {
			ctx += fmt.Sprintf(", attempt %d", e.Attempt)
		}
		if e.Reason != "" {
			ctx += " · routed: " + esc(e.Reason)
		}
		m.Blocks = append(m.Blocks, Block{Type: "context", BlockID: "escalation",
			Elements: []Element{{Type: "mrkdwn", Text: cut(ctx, maxField)}}})
	}
	return m
}

// fallback is the plain text shown in notifications and by clients without
// Block Kit.
func fallback(v leadview.View) string {
	s := leadview.Subject(v)
	if v.Owner != nil {
		s += ". Owner: " + v.Owner.Display()
	}
	if v.LeadURL != "" {
		s += ". " + v.LeadURL
	}
	return esc(s)
}

func section(id, text string) Block {
	return Block{Type: "section", BlockID: id, Text: &Text{Type: "mrkdwn", Text: cut(text, maxSection)}}
}

func mrkdwn(s string) Text { return Text{Type: "mrkdwn", Text: s} }

// esc escapes the three characters Slack reserves for links and mentions,
// so lead data can never ping a channel or forge a link.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// linkEsc makes s safe inside <…|…>.
func linkEsc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "|", "%7C").Replace(s)
}

// slackDate renders t in the reader's own time zone, with a UTC fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2 Jan 15:04 UTC"))
}

func label(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
