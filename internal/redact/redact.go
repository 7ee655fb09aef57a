// Package redact keeps email addresses out of log lines and error texts
// meant for logs. Lead keys may be addresses, stable ids (send ids,
// escalation ids) embed the lead key with "@" and "." escaped, and SMTP and
// HTTP errors often quote the recipient: all of them go through Email (or
// Error) before they reach a logger.
package redact

import "regexp"

// Placeholder replaces every redacted address.
const Placeholder = "<email>"

// emailRE matches things that look like email addresses. The second form is
// an address escaped inside a stable id (engine.SendID and
// engine.EscalationID escape "@" and "." as %40 and %2E).
var emailRE = regexp.MustCompile(`[^\s<>"'(),;:@]+@[^\s<>"'(),;:@]+\.[A-Za-z]{2,}|[A-Za-z0-9_%-]+%40[A-Za-z0-9_%-]+%2E[A-Za-z]{2,}`)

// Email returns s with every email address (plain or escaped inside an id)
// replaced by Placeholder. Use it for lead keys, send ids and escalation
// ids in log attributes.
func Email(s string) string {
	if !emailRE.MatchString(s) {
		return s
	}
	return emailRE.ReplaceAllString(s, Placeholder)
}

// Error renders err for a log line with its email addresses redacted; ""
// for nil.
func Error(err error) string {
	if err == nil {
		return ""
	}
	return Email(err.Error())
}
