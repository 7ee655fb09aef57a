// Package slack delivers escalation notifications to a Slack incoming
// webhook as a Block Kit message: a header, the lead's name, company and
// email, the score and the events that earned it, recent activity, the
// owner, and buttons to the lead page and to acknowledge. A plain `text`
// fallback carries the same headline for notifications and old clients.
//
// Delivery outcomes follow the outbox classes: a 2xx response is success;
// 408, 429, 5xx, timeouts and network errors are transient (429/503 carry
// Retry-After as an *outbox.RetryAfterError); any other 4xx is permanent
// (wraps outbox.ErrPermanent). Errors never include the webhook URL, which
// is a secret.
package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/outhttp"
	"github.com/nurture-oss/nurture/internal/redact"
)

// Config configures one Slack destination.
type Config struct {
	// WebhookURL is the incoming webhook (https://hooks.slack.com/services/…).
	WebhookURL string
	// Channel, Username and IconEmoji override the webhook's defaults where
	// the workspace allows it (legacy webhooks); optional.
	Channel   string
	Username  string
	IconEmoji string
	// Timeout bounds one delivery (default 10s).
	Timeout time.Duration
	// Client is the HTTP client (default: a client with Timeout).
	Client *http.Client
}

// Notifier posts escalations to one incoming webhook.
type Notifier struct {
	cfg    Config
	client *http.Client
}

// New returns a notifier for cfg.
func New(cfg Config) (*Notifier, error) {
	u, err := url.Parse(cfg.WebhookURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("slack: webhook URL must be an http(s) URL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: cfg.Timeout}
	}
	return &Notifier{cfg: cfg, client: c}, nil
}

// Notify posts the escalation message for v.
func (n *Notifier) Notify(ctx context.Context, v leadview.View) error {
	lead := redact.Email(v.Key) // error texts reach logs
	msg := Build(v)
	msg.Channel, msg.Username, msg.IconEmoji = n.cfg.Channel, n.cfg.Username, n.cfg.IconEmoji
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("slack notify lead %s: encode: %w: %w", lead, outbox.ErrPermanent, err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("slack notify lead %s: %w: bad request", lead, outbox.ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		return fmt.Errorf("slack notify lead %s: %w", lead, outhttp.StripURL(err))
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("slack notify lead %s: HTTP %d: %s", lead, resp.StatusCode, redact.Email(strings.TrimSpace(string(reply))))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if d := outhttp.RetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return &outbox.RetryAfterError{After: d, Err: err}
		}
		return err
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return err
	default:
		return fmt.Errorf("%w: %w", outbox.ErrPermanent, err)
	}
}
