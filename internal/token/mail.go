package token

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Ref names one email send inside mail tokens (open, click, unsubscribe,
// bounce reference). It carries no email address: tokens travel in URLs and
// headers that end up in logs.
type Ref struct {
	Lead       string `json:"l"`
	Send       string `json:"s"`
	Enrollment string `json:"e,omitempty"`
	Sequence   string `json:"q,omitempty"`
	Step       string `json:"p,omitempty"`
	Template   string `json:"t,omitempty"`
	// SentAt is when the message was rendered for sending (Unix seconds).
	SentAt int64 `json:"a,omitempty"`
	// Link is the 0-based position of the link in the rendered HTML (click
	// tokens only).
	Link int `json:"i,omitempty"`
	// LinkHash is a short hash of the link's target as rendered, so the
	// click handler can tell when content changed under a sent message
	// (click tokens only).
	LinkHash string `json:"h,omitempty"`
}

// Sent returns SentAt as a time (zero when unknown).
func (r Ref) Sent() time.Time {
	if r.SentAt == 0 {
		return time.Time{}
	}
	return time.Unix(r.SentAt, 0).UTC()
}

// LinkHash returns the short hash of a link target used in click tokens.
func LinkHash(target string) string {
	sum := sha256.Sum256([]byte(target))
	return b64.EncodeToString(sum[:6])
}

// SignRef returns a token for r under purpose.
func (s *Signer) SignRef(purpose string, r Ref) string {
	b, err := json.Marshal(r)
	if err != nil {
		// A struct of strings and ints always marshals.
		panic(fmt.Sprintf("token: marshal ref: %v", err))
	}
	return s.Sign(purpose, b)
}

// VerifyRef verifies tok for purpose and decodes its Ref. A verified token
// without a lead or send is invalid.
func (s *Signer) VerifyRef(purpose, tok string) (Ref, error) {
	b, err := s.Verify(purpose, tok)
	if err != nil {
		return Ref{}, err
	}
	var r Ref
	if err := json.Unmarshal(b, &r); err != nil {
		return Ref{}, fmt.Errorf("%w: payload: %v", ErrInvalid, err)
	}
	if r.Lead == "" || r.Send == "" || r.Link < 0 {
		return Ref{}, fmt.Errorf("%w: incomplete ref", ErrInvalid)
	}
	return r, nil
}

// Paths of the public endpoints that mail tokens go into. The HTTP server
// mounts them; the mailer writes them into messages.
const (
	OpenPrefix        = "/t/o/"
	ClickPrefix       = "/t/c/"
	UnsubscribePrefix = "/u/"
)

// URLs builds public URLs under a base URL (NURTURE_PUBLIC_URL).
type URLs struct {
	Base   string // e.g. "https://mail.example.com"; no trailing slash needed
	Signer *Signer
}

func (u URLs) base() string { return strings.TrimRight(u.Base, "/") }

// Open is the open-pixel URL of r.
func (u URLs) Open(r Ref) string {
	r.Link, r.LinkHash = 0, ""
	return u.base() + OpenPrefix + u.Signer.SignRef(PurposeOpen, r)
}

// Click is the tracked URL for the link at position pos with target.
func (u URLs) Click(r Ref, pos int, target string) string {
	r.Link, r.LinkHash = pos, LinkHash(target)
	return u.base() + ClickPrefix + u.Signer.SignRef(PurposeClick, r)
}

// Unsubscribe is the unsubscribe URL of r (also the RFC 8058 one-click
// target). It carries no time so that it is the same for every rendering.
func (u URLs) Unsubscribe(r Ref) string {
	return u.base() + UnsubscribePrefix + u.Signer.SignRef(PurposeUnsubscribe, unsubRef(r))
}

// UnsubscribePrefixURL is the URL prefix every unsubscribe link starts with.
func (u URLs) UnsubscribePrefixURL() string { return u.base() + UnsubscribePrefix }

// BounceRef is the value of the X-Nurture-Ref header, which bounce reports
// quote back so a bounce can be tied to its lead and send.
func (u URLs) BounceRef(r Ref) string { return u.Signer.SignRef(PurposeRef, unsubRef(r)) }

func unsubRef(r Ref) Ref {
	return Ref{Lead: r.Lead, Send: r.Send, Enrollment: r.Enrollment, Sequence: r.Sequence, Step: r.Step, Template: r.Template}
}
