package runner

import (
	"regexp"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// emailRE matches things that look like email addresses. Logs never carry
// them: lead keys may be addresses, and delivery errors often quote the
// recipient.
// The second form is an address escaped inside a stable id
// (engine.SendID escapes "@" and "." as %40 and %2E).
var emailRE = regexp.MustCompile(`[^\s<>"'(),;:@]+@[^\s<>"'(),;:@]+\.[A-Za-z]{2,}|[A-Za-z0-9_%-]+%40[A-Za-z0-9_%-]+%2E[A-Za-z]{2,}`)

// redact replaces email addresses in s with "<email>".
func redact(s string) string {
	if !emailRE.MatchString(s) {
		return s
	}
	return emailRE.ReplaceAllString(s, "<email>")
}

// redactErr renders an error (or an error text) for a log line.
func redactErr(v any) string {
	switch e := v.(type) {
	case nil:
		return ""
	case error:
		return redact(e.Error())
	case string:
		return redact(e)
	}
	return ""
}

// observe calls the configured Observer, one call at a time (loops and
// ingest parts run concurrently; observers need not be thread-safe).
func (r *Runner) observe(lead string, at time.Time, effects []engine.Effect) {
	if r.cfg.Observer == nil {
		return
	}
	r.obsMu.Lock()
	defer r.obsMu.Unlock()
	r.cfg.Observer.Observe(lead, at, effects)
}
