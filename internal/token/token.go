// Package token signs and verifies the short, URL-safe tokens Nurture puts
// into links it hands to the outside world: open pixels, click redirects,
// unsubscribe links, bounce references and escalation acknowledgements.
//
// A token is
//
//	<key id> "." <base64url(payload)> "." <base64url(mac)>
//
// where mac is the first 16 bytes of HMAC-SHA256 over a version tag, the
// purpose, the key id and the payload, keyed with a per-purpose key derived
// from the secret. The purpose is not written into the token: a token minted
// for one purpose (say "open") does not verify for another ("unsubscribe").
//
// Several keys may be configured for rotation: the first key signs, every key
// verifies. Tokens carry no expiry of their own; callers that want one put a
// time in the payload. Encoding is canonical (strict base64 without padding),
// so one payload has exactly one valid token per key.
package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
)

// Well-known purposes.
const (
	PurposeOpen        = "open"
	PurposeClick       = "click"
	PurposeUnsubscribe = "unsubscribe"
	PurposeRef         = "ref" // bounce reference carried in a mail header
	PurposeAck         = "ack" // escalation acknowledgement
)

// MaxLen is the longest token Verify looks at.
const MaxLen = 4096

// macLen is the length of the truncated HMAC in bytes (128 bits).
const macLen = 16

// ErrInvalid is returned (wrapped) for any token that does not verify:
// malformed, unknown key, wrong purpose, forged or truncated.
var ErrInvalid = errors.New("invalid token")

// Key is one signing key.
type Key struct {
	// ID names the key inside tokens: 1–16 characters of [A-Za-z0-9_-].
	ID string
	// Secret is at least 16 bytes of secret material.
	Secret []byte
}

// Signer signs with its first key and verifies with all of them. Its keys
// are fixed at New; it is safe for concurrent use.
type Signer struct {
	keys []Key
	byID map[string][]byte
	// macs caches, per key id and purpose, a pool of HMACs already keyed
	// with the derived per-purpose key: deriving the key and keying an
	// HMAC cost more than signing a short payload.
	macs sync.Map // macSlot → *sync.Pool of hash.Hash
}

type macSlot struct{ id, purpose string }

// New returns a Signer. keys[0] signs; all keys verify.
func New(keys ...Key) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: no keys")
	}
	s := &Signer{keys: make([]Key, len(keys)), byID: make(map[string][]byte, len(keys))}
	for i, k := range keys {
		if !validID(k.ID) {
			return nil, fmt.Errorf("token: key %d: id %q must be 1-16 characters of A-Z a-z 0-9 _ -", i, k.ID)
		}
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("token: key %q: secret must be at least 16 bytes", k.ID)
		}
		if _, dup := s.byID[k.ID]; dup {
			return nil, fmt.Errorf("token: duplicate key id %q", k.ID)
		}
		sec := append([]byte(nil), k.Secret...)
		s.keys[i] = Key{ID: k.ID, Secret: sec}
		s.byID[k.ID] = sec
	}
	return s, nil
}

// ParseKeys reads a key list as written in NURTURE_SECRET: either one bare
// secret (key id "k0"), or comma-separated "id:secret" pairs, newest (the
// signing key) first, e.g. "k2:new-secret,k1:old-secret".
func ParseKeys(s string) ([]Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("token: empty secret")
	}
	if !strings.Contains(s, ":") {
		return []Key{{ID: "k0", Secret: []byte(s)}}, nil
	}
	var keys []Key
	for i, part := range strings.Split(s, ",") {
		id, sec, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok || id == "" || sec == "" {
			return nil, fmt.Errorf("token: key %d: want id:secret", i)
		}
		keys = append(keys, Key{ID: id, Secret: []byte(sec)})
	}
	return keys, nil
}

func validID(id string) bool {
	if id == "" || len(id) > 16 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

var b64 = base64.RawURLEncoding.Strict()

// Sign returns a token for payload under purpose, signed with the newest key.
func (s *Signer) Sign(purpose string, payload []byte) string {
	k := s.keys[0]
	mac := s.mac(k.Secret, purpose, k.ID, payload)
	var b strings.Builder
	b.Grow(len(k.ID) + 2 + b64.EncodedLen(len(payload)) + b64.EncodedLen(macLen))
	b.WriteString(k.ID)
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(payload))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(mac))
	return b.String()
}

// Verify checks tok for purpose and returns its payload. Every failure is
// ErrInvalid (wrapped with a short reason that is safe to log).
func (s *Signer) Verify(purpose, tok string) ([]byte, error) {
	if len(tok) > MaxLen {
		return nil, fmt.Errorf("%w: too long", ErrInvalid)
	}
	id, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	enc, encMAC, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(encMAC, ".") {
		return nil, fmt.Errorf("%w: malformed", ErrInvalid)
	}
	secret, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: unknown key", ErrInvalid)
	}
	if len(encMAC) != b64.EncodedLen(macLen) {
		return nil, fmt.Errorf("%w: bad signature length", ErrInvalid)
	}
	got, err := b64.DecodeString(encMAC)
	if err != nil {
		return nil, fmt.Errorf("%w: bad signature encoding", ErrInvalid)
	}
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: bad payload encoding", ErrInvalid)
	}
	if !hmac.Equal(got, s.mac(secret, purpose, id, payload)) {
		return nil, fmt.Errorf("%w: signature mismatch", ErrInvalid)
	}
	return payload, nil
}

// mac computes the truncated HMAC. The key is derived per purpose so that a
// signature for one purpose says nothing about another.
func (s *Signer) mac(secret []byte, purpose, id string, payload []byte) []byte {
	slot := macSlot{id, purpose}
	v, ok := s.macs.Load(slot)
	if !ok {
		dk := hmac.New(sha256.New, secret)
		dk.Write([]byte("nurture-token-key/v1\x00"))
		dk.Write([]byte(purpose))
		key := dk.Sum(nil)
		v, _ = s.macs.LoadOrStore(slot, &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }})
	}
	pool := v.(*sync.Pool)
	h := pool.Get().(hash.Hash)
	defer pool.Put(h)
	h.Reset()
	h.Write([]byte("v1\x00"))
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write(payload)
	return h.Sum(make([]byte, 0, sha256.Size))[:macLen]
}
