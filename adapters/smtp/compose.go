package smtp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/token"
)

// Rendered is one template rendered for one lead. It mirrors
// sequences.Rendered: Subject, From, ReplyTo and Preheader are plain text;
// HTML is the (already escaped) HTML body; Text is the template's own plain
// text part, empty when the template has none.
type Rendered struct {
	Subject   string
	From      string
	ReplyTo   string
	Preheader string
	HTML      string
	Text      string
}

// RenderData is what a template sees.
type RenderData struct {
	Lead           *engine.Lead
	UnsubscribeURL string
	Extra          map[string]any
}

// Renderer renders the template of a send. It must be deterministic: the
// click handler re-renders a send to find the target of a link position.
type Renderer interface {
	Render(ctx context.Context, send engine.SendEmail, data RenderData) (*Rendered, error)
}

// RendererFunc adapts a function to Renderer.
type RendererFunc func(ctx context.Context, send engine.SendEmail, data RenderData) (*Rendered, error)

func (f RendererFunc) Render(ctx context.Context, send engine.SendEmail, data RenderData) (*Rendered, error) {
	return f(ctx, send, data)
}

// DKIM is the signing configuration. When set, every message is signed
// (relaxed/relaxed; rsa-sha256 or ed25519-sha256).
//
// Signing uses github.com/emersion/go-msgauth/dkim over the exact bytes
// go-mail writes, and the signature is attached to the go-mail message as a
// preformatted header; the message is then sent by go-mail as usual. (go-mail
// v0.8.1's own signer folds the h= tag inside header names, which breaks
// verification whenever that fold lands in a name: tested.)
type DKIM struct {
	Domain   string        // d=
	Selector string        // s=
	Key      crypto.Signer // *rsa.PrivateKey (2048 bits) or ed25519.PrivateKey
}

// ParseDKIMKey reads a PEM private key (PKCS#1 or PKCS#8; RSA or Ed25519).
func ParseDKIMKey(pem []byte) (crypto.Signer, error) {
	k, err := gomail.PrivKeyFromPEM(pem)
	if err != nil {
		return nil, fmt.Errorf("parse DKIM key: %w", err)
	}
	return k, nil
}

// dkimHeaders are signed; absent ones are signed as absent, so nobody can
// add them on the way.
var dkimHeaders = []string{
	"From", "Reply-To", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
	"List-Unsubscribe", "List-Unsubscribe-Post", "X-Nurture-Ref",
}

// ComposeConfig configures message composition, shared by the SMTP mailer
// and the capture mailer.
type ComposeConfig struct {
	// PublicURL is the base of tracking and unsubscribe links
	// (NURTURE_PUBLIC_URL). https is required for RFC 8058 one-click
	// unsubscribe; an http URL (dev) still gets the headers.
	PublicURL string
	Signer    *token.Signer
	Renderer  Renderer
	// DefaultFrom is used when neither the template nor the sequence sets
	// a From address.
	DefaultFrom string
	// MessageIDDomain is the right side of Message-IDs; default: the From
	// address's domain.
	MessageIDDomain string
	// PostalAddress, when set, is added as a footer to both parts
	// (CAN-SPAM asks for a valid physical postal address).
	PostalAddress string
	// UnsubscribeMailto, when set, adds mailto:<addr>?subject=unsubscribe
	// to List-Unsubscribe. Someone must process that mailbox.
	UnsubscribeMailto string
	// Track turns open and click tracking on (default on via NewComposer
	// unless DisableTracking is set).
	DisableTracking bool
	DKIM            *DKIM
	Now             func() time.Time
}

// Composer turns an email outbox payload into a go-mail message.
type Composer struct {
	cfg  ComposeConfig
	urls token.URLs
}

// ErrCompose marks payloads that can never become a message (bad payload,
// unknown template, invalid address). Wrapped with outbox.ErrPermanent by
// the mailers.
var ErrCompose = errors.New("compose email")

// NewComposer checks cfg and returns a Composer.
func NewComposer(cfg ComposeConfig) (*Composer, error) {
	if cfg.Signer == nil {
		return nil, errors.New("smtp: compose: Signer is required")
	}
	if cfg.Renderer == nil {
		return nil, errors.New("smtp: compose: Renderer is required")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("smtp: compose: PublicURL is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DKIM != nil {
		if cfg.DKIM.Domain == "" || cfg.DKIM.Selector == "" || cfg.DKIM.Key == nil {
			return nil, errors.New("smtp: compose: DKIM needs Domain, Selector and Key")
		}
		switch cfg.DKIM.Key.(type) {
		case *rsa.PrivateKey, ed25519.PrivateKey:
		default:
			return nil, fmt.Errorf("smtp: compose: DKIM key is %T; want RSA or Ed25519", cfg.DKIM.Key)
		}
	}
	return &Composer{cfg: cfg, urls: token.URLs{Base: cfg.PublicURL, Signer: cfg.Signer}}, nil
}

// Composed is a message ready to send, with what went into it.
type Composed struct {
	Msg       *gomail.Msg
	Ref       token.Ref
	MessageID string   // without angle brackets
	Links     []string // trackable link targets, by position
	To        string
	From      string
	Subject   string
}

// DecodePayload reads an email outbox payload.
func DecodePayload(raw []byte) (outbox.EmailPayload, error) {
	var p outbox.EmailPayload
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("%w: decode payload: %v", ErrCompose, err)
	}
	if p.Send.SendID == "" {
		return p, fmt.Errorf("%w: payload has no send id", ErrCompose)
	}
	if p.To == "" {
		p.To = p.Send.To
	}
	return p, nil
}

func refOf(p outbox.EmailPayload) token.Ref {
	return token.Ref{
		Lead: p.Lead, Send: p.Send.SendID, Enrollment: p.Send.Enrollment,
		Sequence: p.Send.Sequence, Step: p.Send.Step, Template: p.Send.Template,
	}
}

func (c *Composer) render(ctx context.Context, p outbox.EmailPayload) (*Rendered, string, error) {
	unsub := c.urls.Unsubscribe(refOf(p))
	lead := &engine.Lead{Key: p.Lead, Email: p.To, Traits: p.Traits, Status: engine.LeadActive}
	r, err := c.cfg.Renderer.Render(ctx, p.Send, RenderData{
		Lead:           lead,
		UnsubscribeURL: unsub,
		Extra: map[string]any{
			"postal_address": c.cfg.PostalAddress,
			"send_id":        p.Send.SendID,
			"sequence":       p.Send.Sequence,
			"step":           p.Send.Step,
		},
	})
	if err != nil {
		return nil, "", fmt.Errorf("%w: render template %s for send %s: %v", ErrCompose, p.Send.Template, p.Send.SendID, err)
	}
	return r, unsub, nil
}

// Links re-renders the send's template and returns its trackable link
// targets by position: what the click handler redirects to.
func (c *Composer) Links(ctx context.Context, p outbox.EmailPayload) ([]string, error) {
	r, _, err := c.render(ctx, p)
	if err != nil {
		return nil, err
	}
	return extractLinks(r.HTML, c.urls.UnsubscribePrefixURL()), nil
}

// Compose renders p into a message.
func (c *Composer) Compose(ctx context.Context, p outbox.EmailPayload) (*Composed, error) {
	now := c.cfg.Now()
	r, unsub, err := c.render(ctx, p)
	if err != nil {
		return nil, err
	}
	ref := refOf(p)
	ref.SentAt = now.Unix()

	// HTML: tracked links, preheader, footer, open pixel.
	unsubPrefix := c.urls.UnsubscribePrefixURL()
	// Click URLs are signed once per link: the text part reuses those of
	// the HTML part (same position, same target, same URL).
	type click struct{ target, url string }
	var clicks []click
	tracked := func(pos int, target string) string {
		if pos < len(clicks) && clicks[pos].target == target && clicks[pos].url != "" {
			return clicks[pos].url
		}
		u := c.urls.Click(ref, pos, target)
		if pos >= len(clicks) {
			clicks = append(clicks, make([]click, pos+1-len(clicks))...)
		}
		clicks[pos] = click{target, u}
		return u
	}
	var links []string
	body := r.HTML
	if c.cfg.DisableTracking {
		links = extractLinks(body, unsubPrefix)
	} else {
		links, body = rewriteLinks(body, unsubPrefix, tracked)
	}
	trackedHTML := body
	if pre := headerText(r.Preheader, 300); pre != "" {
		body = insertAfterBodyOpen(body, `<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">`+html.EscapeString(pre)+`</div>`)
	}
	body = insertBeforeBodyClose(body, c.htmlFooter(r.HTML, unsub, !strings.Contains(r.HTML, unsub)))
	if !c.cfg.DisableTracking {
		body = insertBeforeBodyClose(body, `<img src="`+html.EscapeString(c.urls.Open(ref))+`" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px">`)
	}

	// Text: the template's own, with tracked links, or generated from the HTML.
	var text string
	if strings.TrimSpace(r.Text) != "" {
		text = r.Text
		if !c.cfg.DisableTracking {
			text = replaceLinksInText(text, links, tracked)
		}
		text = strings.TrimRight(text, "\n") + "\n"
	} else {
		text = htmlToText(trackedHTML)
	}
	text += c.textFooter(text, unsub, !strings.Contains(text, unsub))

	// Addresses: template overrides sequence overrides the default.
	fromStr := firstNonEmpty(r.From, p.Send.From, c.cfg.DefaultFrom)
	from, err := parseAddress("from", fromStr)
	if err != nil {
		return nil, err
	}
	to, err := parseAddress("to", p.To)
	if err != nil {
		return nil, err
	}
	to.Name = "" // the address only: lead data never becomes a display name

	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	m.FromMailAddress(from)
	m.ToMailAddress(to)
	if rt := firstNonEmpty(r.ReplyTo, p.Send.ReplyTo); rt != "" {
		a, err := parseAddress("reply-to", rt)
		if err != nil {
			return nil, err
		}
		m.ReplyToMailAddress(a)
	}
	subject := headerText(r.Subject, 500)
	m.Subject(subject)
	domain := c.cfg.MessageIDDomain
	if domain == "" {
		domain = domainOf(from.Address)
	}
	msgID := messageIDLocal(p.Send.SendID) + "@" + domain
	m.SetMessageIDWithValue(msgID)
	m.SetDateWithValue(now)
	m.SetUserAgent("Nurture")
	uris := []string{unsub}
	if c.cfg.UnsubscribeMailto != "" {
		uris = append(uris, "mailto:"+c.cfg.UnsubscribeMailto+"?subject=unsubscribe")
	}
	if strings.HasPrefix(unsub, "https://") {
		if err := m.SetListUnsubscribeOneClick(unsub, uris[1:]...); err != nil {
			return nil, fmt.Errorf("%w: list-unsubscribe: %v", ErrCompose, err)
		}
	} else {
		m.SetListUnsubscribe(uris...)
		m.SetListUnsubscribePost()
	}
	m.SetGenHeader(gomail.Header(HeaderRef), c.urls.BounceRef(ref))
	m.SetBodyString(gomail.TypeTextPlain, text)
	m.AddAlternativeString(gomail.TypeTextHTML, body)
	m.SetBoundary("nurture-" + messageIDLocalHash(p.Send.SendID, now))
	if d := c.cfg.DKIM; d != nil {
		if err := signDKIM(m, d); err != nil {
			return nil, err
		}
	}
	return &Composed{Msg: m, Ref: ref, MessageID: msgID, Links: links, To: to.Address, From: from.Address, Subject: subject}, nil
}

// HeaderRef carries the signed bounce reference; DSNs and provider webhooks
// quote it back.
const HeaderRef = "X-Nurture-Ref"

// postalIn reports whether doc already shows the postal address (templates
// may place it themselves through .extra.postal_address).
func (c *Composer) postalIn(doc string, escaped bool) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(c.cfg.PostalAddress), "\n")
	first = strings.TrimSpace(first)
	if first == "" {
		return true
	}
	if escaped {
		first = html.EscapeString(first)
	}
	return strings.Contains(doc, first)
}

func (c *Composer) htmlFooter(doc, unsub string, withLink bool) string {
	var parts []string
	if c.cfg.PostalAddress != "" && !c.postalIn(doc, true) {
		parts = append(parts, strings.ReplaceAll(html.EscapeString(c.cfg.PostalAddress), "\n", "<br>"))
	}
	if withLink {
		parts = append(parts, `<a href="`+html.EscapeString(unsub)+`">Unsubscribe</a>`)
	}
	if len(parts) == 0 {
		return ""
	}
	return `<div style="margin-top:24px;font-size:12px;color:#6b7280">` + strings.Join(parts, "<br>") + `</div>`
}

func (c *Composer) textFooter(doc, unsub string, withLink bool) string {
	var b strings.Builder
	postal := c.cfg.PostalAddress != "" && !c.postalIn(doc, false)
	if postal || withLink {
		b.WriteString("\n--\n")
	}
	if postal {
		b.WriteString(c.cfg.PostalAddress + "\n")
	}
	if withLink {
		b.WriteString("Unsubscribe: " + unsub + "\n")
	}
	return b.String()
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func parseAddress(field, s string) (*mail.Address, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: no %s address", ErrCompose, field)
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return nil, fmt.Errorf("%w: %s address contains control characters", ErrCompose, field)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s address: %v", ErrCompose, field, err)
	}
	return a, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return "localhost"
}

// headerText makes s safe and tidy for a header value: control characters
// (CR, LF, tab, NUL, Unicode line separators) become spaces, runs of spaces
// collapse, invalid UTF-8 is replaced, and the result is cut to max runes.
// go-mail then encodes it (RFC 2047) as needed.
func headerText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\u2028' || r == '\u2029' {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		if n >= max {
			break
		}
		b.WriteRune(r)
		n++
	}
	out := strings.TrimSpace(b.String())
	if !utf8.ValidString(out) {
		return ""
	}
	return out
}

var dotAtom = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+)*$`)

// messageIDLocal is the left side of the Message-ID: the send id itself
// when it is a valid dot-atom, else a hash of it. Either way it is stable
// per send, so a retried send carries the same Message-ID.
func messageIDLocal(sendID string) string {
	if len(sendID) <= 200 && dotAtom.MatchString(sendID) {
		return sendID
	}
	sum := sha256.Sum256([]byte(sendID))
	return "s" + hex.EncodeToString(sum[:16])
}

func messageIDLocalHash(sendID string, now time.Time) string {
	sum := sha256.Sum256([]byte(sendID + "\x00" + now.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(sum[:12])
}

// signDKIM signs what m writes and attaches the DKIM-Signature header to m.
// go-mail writes a message deterministically once Date, Message-ID and the
// boundary are fixed, so the bytes sent later are the bytes signed here.
func signDKIM(m *gomail.Msg, d *DKIM) error {
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return fmt.Errorf("%w: write for DKIM: %v", ErrCompose, err)
	}
	s, err := dkim.NewSigner(&dkim.SignOptions{
		Domain: d.Domain, Selector: d.Selector, Signer: d.Key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             dkimHeaders,
	})
	if err != nil {
		return fmt.Errorf("%w: DKIM signer: %v", ErrCompose, err)
	}
	if _, err := s.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("%w: DKIM sign: %v", ErrCompose, err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("%w: DKIM sign: %v", ErrCompose, err)
	}
	sig := s.Signature() // "DKIM-Signature: v=1; …\r\n"
	name, value, ok := strings.Cut(sig, ":")
	if !ok || !strings.EqualFold(name, "DKIM-Signature") {
		return fmt.Errorf("%w: DKIM sign: unexpected signature %q", ErrCompose, name)
	}
	m.SetGenHeaderPreformatted("DKIM-Signature", strings.TrimSuffix(strings.TrimPrefix(value, " "), "\r\n"))
	return nil
}

// SignDKIM signs m (for messages built outside the Composer, such as rep
// escalation emails) and attaches the DKIM-Signature header. m must write
// the same bytes every time: set its Date, Message-ID and boundary first.
func SignDKIM(m *gomail.Msg, d *DKIM) error {
	if d == nil || d.Key == nil || d.Domain == "" || d.Selector == "" {
		return fmt.Errorf("%w: DKIM needs Domain, Selector and Key", ErrCompose)
	}
	return signDKIM(m, d)
}
