// Package outhttp holds what the HTTP notification adapters (Slack
// incoming webhooks, signed webhooks) share about outbound requests:
// client errors stripped of the URL (a secret) and Retry-After parsing.
// Adapters do not import each other; they import this.
package outhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// StripURL drops the request URL (it may carry a token or credentials)
// from an HTTP client error, keeping the operation and the cause. A
// timeout becomes an error wrapping context.DeadlineExceeded.
func StripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("%s: timeout: %w", ue.Op, context.DeadlineExceeded)
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// RetryAfter parses a Retry-After header value (delay seconds or an HTTP
// date, RFC 9110 §10.2.3) relative to now; 0 when absent, malformed or in
// the past.
func RetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
