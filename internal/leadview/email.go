package leadview

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"
)

// Email is the escalation email to a rep: the same content as the Slack
// message, as multipart/alternative parts.
type Email struct {
	To      string // the rep's address
	ToName  string
	Subject string
	HTML    string
	Text    string
	// MessageID is a stable id for this escalation attempt (without angle
	// brackets and domain), so a resent notification threads and dedupes.
	MessageID string
}

// Subject is the one-line headline every channel uses.
func Subject(v View) string {
	who := v.Name
	if v.Company != "" {
		who += " (" + v.Company + ")"
	}
	prefix := "Hot lead"
	if v.Escalation != nil && v.Escalation.Attempt > 1 {
		prefix = "Hot lead, re-routed to you"
	}
	return fmt.Sprintf("%s: %s, score %s", prefix, who, num(v.Score))
}

// RenderEmail renders the rep email for v. The rep (v.Owner) must have an
// address.
func RenderEmail(v View) (Email, error) {
	if v.Owner == nil || v.Owner.Email == "" {
		return Email{}, fmt.Errorf("render rep email for lead %s: rep has no email address", v.Key)
	}
	m := Email{To: v.Owner.Email, ToName: v.Owner.Name, Subject: Subject(v)}
	if v.Escalation != nil {
		m.MessageID = fmt.Sprintf("escalation.%s.%d", v.Escalation.ID, max(v.Escalation.Attempt, 1))
	}
	var hb, tb bytes.Buffer
	if err := htmlEmail.Execute(&hb, v); err != nil {
		return Email{}, fmt.Errorf("render rep email html for lead %s: %w", v.Key, err)
	}
	if err := textEmail.Execute(&tb, v); err != nil {
		return Email{}, fmt.Errorf("render rep email text for lead %s: %w", v.Key, err)
	}
	m.HTML, m.Text = hb.String(), tb.String()
	return m, nil
}

var funcs = map[string]any{
	"num":    num,
	"signed": signed,
	"when":   func(t time.Time) string { return t.UTC().Format("Mon 2 Jan 15:04 MST") },
	"upper":  strings.ToUpper,
}

var htmlEmail = htmltemplate.Must(htmltemplate.New("email.html").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Name}}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;font-family:Arial,Helvetica,sans-serif;color:#1d1c1d">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7"><tr><td align="center" style="padding:24px">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px;background:#ffffff;border-radius:6px">
<tr><td style="padding:24px 24px 8px">
<p style="margin:0;color:#616061;font-size:13px">{{if and .Escalation (gt .Escalation.Attempt 1)}}Re-routed to you{{else}}New hot lead for you{{end}}{{with .Owner}}, {{.Display}}{{end}}</p>
<h1 style="margin:4px 0 0;font-size:22px">{{.Name}}</h1>
<p style="margin:4px 0 0;font-size:14px">{{with .Title}}{{.}}{{if $.Company}}, {{end}}{{end}}{{.Company}}</p>
{{with .Email}}<p style="margin:4px 0 0;font-size:14px"><a href="mailto:{{.}}" style="color:#1264a3">{{.}}</a></p>{{end}}
</td></tr>
<tr><td style="padding:8px 24px">
<p style="margin:0;font-size:16px"><strong>Score {{num .Score}}</strong>{{if .Threshold}} (threshold {{num .Threshold}}){{end}}</p>
{{with .Escalation}}{{if .Reason}}<p style="margin:4px 0 0;font-size:13px;color:#616061">Routed to you: {{.Reason}}</p>{{end}}
{{if not .AckDueAt.IsZero}}<p style="margin:4px 0 0;font-size:13px;color:#b00">Acknowledge by {{when .AckDueAt}}, or the lead goes to the next rep.</p>{{end}}{{end}}
</td></tr>
{{if .Top}}<tr><td style="padding:8px 24px">
<h2 style="margin:8px 0 4px;font-size:15px">Why this lead is hot</h2>
<table role="presentation" cellpadding="4" cellspacing="0" style="font-size:14px">
{{range .Top}}<tr><td style="color:#007a5a;font-weight:bold;text-align:right">{{signed .Points}}</td><td>{{.Event}}{{if gt .Count 1}} ×{{.Count}}{{end}}</td><td style="color:#616061">rule {{.Rule}}</td></tr>
{{end}}</table></td></tr>{{end}}
{{if .Recent}}<tr><td style="padding:8px 24px">
<h2 style="margin:8px 0 4px;font-size:15px">Recent activity</h2>
<table role="presentation" cellpadding="3" cellspacing="0" style="font-size:13px">
{{range .Recent}}<tr><td style="color:#616061;white-space:nowrap">{{when .At}}</td><td>{{.Summary}}{{if .Points}} <span style="color:#007a5a">({{signed .Points}})</span>{{end}}</td></tr>
{{end}}</table></td></tr>{{end}}
<tr><td style="padding:16px 24px 24px">
{{if .LeadURL}}<a href="{{.LeadURL}}" style="display:inline-block;background:#1264a3;color:#ffffff;text-decoration:none;padding:10px 16px;border-radius:4px;font-weight:bold">Open lead</a>{{end}}
{{if .AckURL}}&nbsp;<a href="{{.AckURL}}" style="display:inline-block;background:#007a5a;color:#ffffff;text-decoration:none;padding:10px 16px;border-radius:4px;font-weight:bold">Acknowledge</a>{{end}}
{{with .Escalation}}<p style="margin:16px 0 0;font-size:12px;color:#616061">Escalation {{.ID}}{{if gt .Attempt 1}}, attempt {{.Attempt}}{{end}}</p>{{end}}
</td></tr>
</table></td></tr></table>
</body></html>
`))

var textEmail = texttemplate.Must(texttemplate.New("email.txt").Funcs(funcs).Parse(`{{if and .Escalation (gt .Escalation.Attempt 1)}}Re-routed to you{{else}}New hot lead for you{{end}}{{with .Owner}}, {{.Display}}{{end}}

{{.Name}}{{with .Title}}, {{.}}{{end}}{{with .Company}}, {{.}}{{end}}
{{with .Email}}{{.}}
{{end}}
Score {{num .Score}}{{if .Threshold}} (threshold {{num .Threshold}}){{end}}
{{with .Escalation}}{{if .Reason}}Routed to you: {{.Reason}}
{{end}}{{if not .AckDueAt.IsZero}}Acknowledge by {{when .AckDueAt}}, or the lead goes to the next rep.
{{end}}{{end}}{{if .Top}}
WHY THIS LEAD IS HOT
{{range .Top}}  {{signed .Points}}  {{.Event}}{{if gt .Count 1}} x{{.Count}}{{end}} (rule {{.Rule}})
{{end}}{{end}}{{if .Recent}}
RECENT ACTIVITY
{{range .Recent}}  {{when .At}}  {{.Summary}}{{if .Points}} ({{signed .Points}}){{end}}
{{end}}{{end}}
{{with .LeadURL}}Open the lead: {{.}}
{{end}}{{with .AckURL}}Acknowledge:   {{.}}
{{end}}{{with .Escalation}}
Escalation {{.ID}}{{if gt .Attempt 1}}, attempt {{.Attempt}}{{end}}
{{end}}`))
