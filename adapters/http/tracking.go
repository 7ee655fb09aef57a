package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/redact"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
)

// TrackSends finds the outbox payload of a send, so the click handler can
// re-render it (OutboxSends adapts a store.Reader).
type TrackSends interface {
	EmailPayload(ctx context.Context, lead, send string) (*outbox.EmailPayload, error)
}

// TrackLinks re-renders a send and returns its trackable link targets by
// position (*smtp.Composer satisfies it).
type TrackLinks interface {
	Links(ctx context.Context, p outbox.EmailPayload) ([]string, error)
}

// TrackSuppressor writes an address to the suppression list (store.Outbox
// satisfies it).
type TrackSuppressor interface {
	Suppress(ctx context.Context, email, reason string, now time.Time) error
}

// TrackLeads loads a lead (store.Reader satisfies it).
type TrackLeads interface {
	Lead(ctx context.Context, key string) (*engine.Lead, error)
}

// TrackingConfig holds the dependencies of tracking (tracking.go),
// unsubscribe (unsubscribe.go) and bounce intake (bounce.go).
type TrackingConfig struct {
	// Signer verifies open, click and unsubscribe tokens.
	Signer *token.Signer
	// Publisher receives email.opened, email.clicked, email.unsubscribed,
	// email.bounced and email.complained events (into LEADS).
	Publisher Publisher
	// Sends and Links resolve a click to the link we rendered.
	Sends TrackSends
	Links TrackLinks
	// Suppressor and Leads make unsubscribes, hard bounces and complaints
	// effective before the next send.
	Suppressor TrackSuppressor
	Leads      TrackLeads
	// MachineWindow: opens and clicks this soon after the send are flagged
	// as machine traffic (privacy proxies, link scanners). Default 10s.
	MachineWindow time.Duration
	// MachineAgents are extra user-agent substrings (case-insensitive)
	// flagged as machine traffic, on top of the built-in list.
	MachineAgents []string
	// BounceTokens are the bearer tokens (or Basic-auth user/password)
	// accepted by POST /v1/bounces. None: the endpoint answers 503.
	BounceTokens []string
	// SESTopicARNs are the SNS topics whose SES notifications are accepted.
	SESTopicARNs []string
	// LinkCache is how many sends' link lists are kept (default 10000).
	LinkCache int
	Now       func() time.Time
}

type tracking struct {
	c     TrackingConfig
	log   *slog.Logger
	agent []string
	cache *linkCache
	now   func() time.Time
}

// OutboxSends adapts a store reader's ListOutbox to TrackSends.
type OutboxSends struct {
	Reader interface {
		ListOutbox(ctx context.Context, f store.OutboxFilter) ([]store.OutboxItem, error)
	}
	// Limit bounds how many of the lead's email items are scanned (default 1000).
	Limit int
}

// EmailPayload implements TrackSends.
func (o OutboxSends) EmailPayload(ctx context.Context, lead, send string) (*outbox.EmailPayload, error) {
	limit := o.Limit
	if limit <= 0 {
		limit = 1000
	}
	items, err := o.Reader.ListOutbox(ctx, store.OutboxFilter{Kind: store.KindEmail, LeadKey: lead, Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("list sends of lead %s: %w", lead, err)
	}
	for _, it := range items {
		if it.DedupeKey != send {
			continue
		}
		var p outbox.EmailPayload
		if err := json.Unmarshal(it.Payload, &p); err != nil {
			return nil, fmt.Errorf("decode send %s: %w", send, err)
		}
		return &p, nil
	}
	return nil, fmt.Errorf("send %s of lead %s: %w", send, lead, store.ErrNotFound)
}

// machineAgents are user-agent substrings of mail-privacy proxies, link
// scanners and other software that fetches links without a person.
var machineAgents = []string{
	"googleimageproxy", "yahoomailproxy", "safelinks", "barracuda", "mimecast", "proofpoint",
	"ppops-", "messagelabs", "symantec", "forcepoint", "trendmicro", "sophos", "fortiguard",
	"ironport", "zscaler", "bitdefender", "checkpoint", "microsoft office protocol discovery",
	"bot", "crawler", "spider", "preview", "facebookexternalhit", "curl/", "wget/",
	"python-requests", "go-http-client", "headlesschrome", "okhttp", "java/", "libwww",
}

func (s *Server) routeTracking(c *TrackingConfig) {
	t := &tracking{c: *c, log: s.log, now: c.Now}
	if t.now == nil {
		t.now = time.Now
	}
	if t.c.MachineWindow <= 0 {
		t.c.MachineWindow = 10 * time.Second
	}
	t.agent = append(append([]string(nil), machineAgents...), lowerAll(c.MachineAgents)...)
	size := c.LinkCache
	if size <= 0 {
		size = 10000
	}
	t.cache = newLinkCache(size)
	if c.Signer == nil {
		s.log.Warn("tracking: no token signer configured; tracking, unsubscribe and bounce routes not mounted")
		return
	}
	s.mux.HandleFunc("GET /t/o/{token}", t.open)
	s.mux.HandleFunc("HEAD /t/o/{token}", t.open)
	s.mux.HandleFunc("GET /t/c/{token}", t.click)
	s.mux.HandleFunc("HEAD /t/c/{token}", t.click)
	t.routeUnsubscribe(s)
	t.routeBounces(s)
}

func lowerAll(v []string) []string {
	out := make([]string, 0, len(v))
	for _, s := range v {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pixel is a transparent 1x1 GIF.
var pixel = []byte{
	0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
	0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
}

func noStore(h http.Header) {
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate, private, max-age=0")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// cleanToken drops punctuation a mail client may have glued to the end of a
// link in a plain-text part (tokens never contain these).
func cleanToken(s string) string { return strings.TrimRight(s, ".,;:!?)]}>'\"") }

// machine says whether a request is likely machine traffic, and why.
func (t *tracking) machine(r *http.Request, ref token.Ref, now time.Time) (bool, string) {
	if r.Method == http.MethodHead {
		return true, "head_request"
	}
	ua := strings.ToLower(r.UserAgent())
	if ua == "" {
		return true, "no_user_agent"
	}
	for _, a := range t.agent {
		if strings.Contains(ua, a) {
			return true, "user_agent"
		}
	}
	if sent := ref.Sent(); !sent.IsZero() && now.Sub(sent) < t.c.MachineWindow {
		return true, "soon_after_send"
	}
	return false, ""
}

func newEventID(kind, send string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return kind + ":" + send + ":" + hex.EncodeToString(b[:])
}

func refProps(ref token.Ref) map[string]any {
	p := map[string]any{"send": ref.Send}
	for k, v := range map[string]string{"sequence": ref.Sequence, "step": ref.Step, "enrollment": ref.Enrollment, "template": ref.Template} {
		if v != "" {
			p[k] = v
		}
	}
	return p
}

func (t *tracking) publish(ctx context.Context, ev *engine.Event) {
	if t.c.Publisher == nil {
		return
	}
	if err := t.c.Publisher.PublishEvent(ctx, ev); err != nil {
		t.log.Error("publish engagement event", "event_id", redact.Email(ev.ID), "type", ev.Type, "lead_id", redact.Email(ev.Lead), "error", redact.Error(err))
	}
}

func (t *tracking) open(w http.ResponseWriter, r *http.Request) {
	ref, err := t.c.Signer.VerifyRef(token.PurposeOpen, cleanToken(r.PathValue("token")))
	if err != nil {
		noStore(w.Header())
		http.NotFound(w, r)
		return
	}
	now := t.now().UTC()
	machine, why := t.machine(r, ref, now)
	props := refProps(ref)
	if why != "" {
		props["machine_reason"] = why
	}
	t.publish(r.Context(), &engine.Event{
		ID: newEventID("opened", ref.Send), Type: engine.EventEmailOpened, Lead: ref.Lead, Time: now,
		Properties: props, Machine: machine,
	})
	h := w.Header()
	noStore(h)
	h.Set("Content-Type", "image/gif")
	h.Set("Content-Length", fmt.Sprint(len(pixel)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(pixel)
	}
}

// errLinkGone: the token is valid but the link it names is no longer in
// what the send renders to (content changed, send record gone).
var errLinkGone = errors.New("link no longer available")

func (t *tracking) target(ctx context.Context, ref token.Ref) (string, error) {
	links, ok := t.cache.get(ref.Send)
	if !ok {
		if t.c.Sends == nil || t.c.Links == nil {
			return "", errLinkGone
		}
		p, err := t.c.Sends.EmailPayload(ctx, ref.Lead, ref.Send)
		if errors.Is(err, store.ErrNotFound) {
			return "", errLinkGone
		}
		if err != nil {
			return "", err
		}
		links, err = t.c.Links.Links(ctx, *p)
		if err != nil {
			return "", fmt.Errorf("re-render send %s: %w", ref.Send, err)
		}
		t.cache.put(ref.Send, links)
	}
	pick := ""
	if ref.Link < len(links) && token.LinkHash(links[ref.Link]) == ref.LinkHash {
		pick = links[ref.Link]
	} else {
		// Content changed under the sent message: follow the same target
		// if it is still there at another position.
		for _, l := range links {
			if token.LinkHash(l) == ref.LinkHash {
				pick = l
				break
			}
		}
	}
	if pick == "" {
		return "", errLinkGone
	}
	// Belt and braces: only absolute http(s) URLs ever leave here.
	u, err := url.Parse(pick)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errLinkGone
	}
	return u.String(), nil
}

var goneTmpl = template.Must(template.New("gone").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Link unavailable</title></head><body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem"><h1>This link is no longer available</h1><p>The content of this email has changed since it was sent.</p></body></html>`))

func (t *tracking) click(w http.ResponseWriter, r *http.Request) {
	ref, err := t.c.Signer.VerifyRef(token.PurposeClick, cleanToken(r.PathValue("token")))
	if err != nil || ref.LinkHash == "" {
		noStore(w.Header())
		http.NotFound(w, r)
		return
	}
	target, err := t.target(r.Context(), ref)
	if err != nil && !errors.Is(err, errLinkGone) {
		t.log.Error("resolve click", "lead_id", redact.Email(ref.Lead), "send_id", redact.Email(ref.Send), "error", redact.Error(err))
		noStore(w.Header())
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	now := t.now().UTC()
	machine, why := t.machine(r, ref, now)
	props := refProps(ref)
	props["link"] = ref.Link
	props["url"] = target
	if why != "" {
		props["machine_reason"] = why
	}
	t.publish(r.Context(), &engine.Event{
		ID: newEventID("clicked", ref.Send), Type: engine.EventEmailClicked, Lead: ref.Lead, Time: now,
		Properties: props, Machine: machine,
	})
	noStore(w.Header())
	if target == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusGone)
		if r.Method != http.MethodHead {
			_ = goneTmpl.Execute(w, nil)
		}
		return
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusFound)
}

// linkCache is a small bounded map of send id → rendered links. When full
// it drops an arbitrary half: clicks cluster on recent sends, and a miss
// only costs one re-render.
type linkCache struct {
	mu   sync.Mutex
	max  int
	data map[string][]string
}

func newLinkCache(max int) *linkCache { return &linkCache{max: max, data: map[string][]string{}} }

func (c *linkCache) get(k string) ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.data[k]
	return v, ok
}

func (c *linkCache) put(k string, v []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.data) >= c.max {
		n := 0
		for key := range c.data {
			delete(c.data, key)
			if n++; n >= c.max/2+1 {
				break
			}
		}
	}
	c.data[k] = v
}
