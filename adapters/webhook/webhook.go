// Package webhook delivers escalation notifications to an HTTP endpoint,
// signed per the Standard Webhooks specification
// (https://www.standardwebhooks.com):
//
//	webhook-id:        the escalation id ("<id>/<attempt>" for re-routes)
//	webhook-timestamp: Unix seconds of this delivery attempt
//	webhook-signature: "v1," + base64(HMAC-SHA256(secret, id + "." + timestamp + "." + body))
//
// The secret is configured in the spec's "whsec_<base64>" form. The body is
// JSON (see Payload and docs/integrations.md); the webhook-id stays the same
// across retries of one notification, so receivers dedupe on it.
//
// Outcomes: 2xx is delivered; 410 Gone disables the endpoint (recorded in a
// State, and every later notification to it fails permanently without a
// request); 408, 425, 429 and 5xx, timeouts and network errors are
// transient (a Retry-After header travels as *outbox.RetryAfterError); any
// other status is permanent. Redirects are not followed. Errors never
// include the endpoint URL or the secret.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/outhttp"
	"github.com/nurture-oss/nurture/internal/redact"
)

// Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts a Standard Webhooks secret.
const SecretPrefix = "whsec_"

// ErrDisabled is returned (wrapped, with outbox.ErrPermanent) for a
// notification to an endpoint that answered 410 Gone.
var ErrDisabled = errors.New("webhook endpoint disabled")

// State records disabled endpoints. Implementations must be safe for
// concurrent use. NewMemoryState keeps them in memory (a restart re-enables
// the endpoint until it answers 410 again); an app can back it with a
// database.
type State interface {
	// Disabled reports whether the endpoint was disabled, and why.
	Disabled(ctx context.Context, endpoint string) (bool, string, error)
	// Disable records that the endpoint is disabled.
	Disable(ctx context.Context, endpoint, reason string) error
}

// Formats of the request body.
const (
	FormatStandard    = "standard"     // Payload (default)
	FormatHubSpotTask = "hubspot_task" // a HubSpot CRM "create task" body
)

// Config configures one endpoint.
type Config struct {
	// Name identifies the endpoint in logs, errors and State.
	Name string
	// URL receives POST requests.
	URL string
	// Secret is the signing secret, "whsec_" + base64 of 24–64 random
	// bytes. Required.
	Secret string
	// Format of the body: FormatStandard (default) or FormatHubSpotTask.
	Format string
	// Headers are extra request headers (e.g. Authorization for a CRM API).
	Headers map[string]string
	// HubSpotOwners maps rep ids to HubSpot owner ids (FormatHubSpotTask).
	HubSpotOwners map[string]string
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration
	// Client sends requests (default: one with Timeout and no redirects).
	Client *http.Client
	// State records disabled endpoints (default: in memory).
	State State
	// Now is the clock for webhook-timestamp (default time.Now).
	Now func() time.Time
}

// Endpoint is one signed-webhook destination.
type Endpoint struct {
	cfg    Config
	key    []byte
	client *http.Client
}

// New validates cfg and returns the endpoint.
func New(cfg Config) (*Endpoint, error) {
	if cfg.Name == "" {
		return nil, errors.New("webhook: endpoint needs a name")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("webhook %s: URL must be an http(s) URL", cfg.Name)
	}
	key, err := DecodeSecret(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", cfg.Name, err)
	}
	switch cfg.Format {
	case "":
		cfg.Format = FormatStandard
	case FormatStandard, FormatHubSpotTask:
	default:
		return nil, fmt.Errorf("webhook %s: unknown format %q (want %s or %s)", cfg.Name, cfg.Format, FormatStandard, FormatHubSpotTask)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.State == nil {
		cfg.State = NewMemoryState()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: cfg.Timeout}
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Endpoint{cfg: cfg, key: key, client: &nc}, nil
}

// DecodeSecret decodes a "whsec_<base64>" secret.
func DecodeSecret(s string) ([]byte, error) {
	if !strings.HasPrefix(s, SecretPrefix) {
		return nil, fmt.Errorf("secret must start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
	if err != nil {
		return nil, errors.New("secret is not valid base64 after the whsec_ prefix")
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("secret is %d bytes; use at least 24 random bytes", len(key))
	}
	return key, nil
}

// ID is the webhook-id of a notification: the escalation id for the first
// routing, "<id>/<attempt>" for a re-route (a re-route is a new message to
// a different rep, so it must not be deduped against the first). It matches
// the id of the lead.escalated event published on NATS.
func ID(escalation string, attempt int) string {
	if attempt <= 1 {
		return escalation
	}
	return escalation + "/" + strconv.Itoa(attempt)
}

// Sign returns the v1 signature of body for msgID at ts.
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "%s.%d.", msgID, ts.Unix())
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Notify delivers v's escalation to the endpoint.
func (e *Endpoint) Notify(ctx context.Context, v leadview.View) error {
	if v.Escalation == nil {
		return fmt.Errorf("webhook %s lead %s: %w: no escalation", e.cfg.Name, redact.Email(v.Key), outbox.ErrPermanent)
	}
	msgID := ID(v.Escalation.ID, v.Escalation.Attempt)
	// The id embeds the lead key; error texts reach logs.
	logID := redact.Email(msgID)
	if off, reason, err := e.cfg.State.Disabled(ctx, e.cfg.Name); err != nil {
		return fmt.Errorf("webhook %s: read state: %w", e.cfg.Name, err)
	} else if off {
		return fmt.Errorf("webhook %s id %s: %w: %w (%s)", e.cfg.Name, logID, outbox.ErrPermanent, ErrDisabled, reason)
	}
	body, err := e.body(v)
	if err != nil {
		return fmt.Errorf("webhook %s id %s: encode: %w: %w", e.cfg.Name, logID, outbox.ErrPermanent, err)
	}

	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s id %s: %w: bad request", e.cfg.Name, logID, outbox.ErrPermanent)
	}
	ts := e.cfg.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Nurture-Webhooks/1")
	for k, val := range e.cfg.Headers {
		req.Header.Set(k, val)
	}
	req.Header.Set(HeaderID, msgID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(e.key, msgID, ts, body))

	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s id %s: %w", e.cfg.Name, logID, outhttp.StripURL(err))
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return nil
	}
	err = fmt.Errorf("webhook %s id %s: HTTP %d: %s", e.cfg.Name, logID, code, redact.Email(oneLine(reply)))
	switch {
	case code == http.StatusGone:
		reason := fmt.Sprintf("HTTP 410 Gone at %s", ts.UTC().Format(time.RFC3339))
		if derr := e.cfg.State.Disable(ctx, e.cfg.Name, reason); derr != nil {
			return fmt.Errorf("%w: %w: %w (and recording it failed: %v)", outbox.ErrPermanent, ErrDisabled, err, derr)
		}
		return fmt.Errorf("%w: %w: %w", outbox.ErrPermanent, ErrDisabled, err)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		if d := outhttp.RetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return &outbox.RetryAfterError{After: d, Err: err}
		}
		return err
	case code == http.StatusRequestTimeout || code == http.StatusTooEarly || code >= 500:
		return err
	default:
		return fmt.Errorf("%w: %w", outbox.ErrPermanent, err)
	}
}

func oneLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// MemoryState is a State in memory.
type MemoryState struct {
	mu  sync.Mutex
	off map[string]string
}

// NewMemoryState returns an empty in-memory State.
func NewMemoryState() *MemoryState { return &MemoryState{off: map[string]string{}} }

func (m *MemoryState) Disabled(_ context.Context, endpoint string) (bool, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.off[endpoint]
	return ok, r, nil
}

func (m *MemoryState) Disable(_ context.Context, endpoint, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.off[endpoint] = reason
	return nil
}

// Enable clears a disabled endpoint (after the operator fixed it).
func (m *MemoryState) Enable(endpoint string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.off, endpoint)
}
