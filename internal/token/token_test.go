package token_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/internal/token"
)

func signer(t testing.TB, keys ...token.Key) *token.Signer {
	t.Helper()
	if len(keys) == 0 {
		keys = []token.Key{{ID: "k1", Secret: []byte("0123456789abcdef")}}
	}
	s, err := token.New(keys...)
	require.NoError(t, err)
	return s
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := signer(t)
	for _, p := range [][]byte{nil, []byte("x"), []byte(`{"l":"lead"}`), make([]byte, 1000)} {
		tok := s.Sign(token.PurposeAck, p)
		require.NotContains(t, tok, "=")
		require.NotContains(t, tok, "/")
		require.NotContains(t, tok, "+")
		got, err := s.Verify(token.PurposeAck, tok)
		require.NoError(t, err)
		require.Equal(t, string(p), string(got))
		require.Equal(t, tok, s.Sign(token.PurposeAck, p), "deterministic")
	}
}

func TestRejects(t *testing.T) {
	t.Parallel()
	s := signer(t)
	tok := s.Sign(token.PurposeClick, []byte("payload"))
	parts := strings.Split(tok, ".")
	other := signer(t, token.Key{ID: "k1", Secret: []byte("another-secret-16b")})
	tests := map[string]string{
		"cross purpose":      "",
		"truncated":          tok[:len(tok)-1],
		"extra part":         tok + ".x",
		"unknown key":        "k2." + parts[1] + "." + parts[2],
		"other secret":       other.Sign(token.PurposeClick, []byte("payload")),
		"payload swapped":    parts[0] + "." + strings.Split(s.Sign(token.PurposeClick, []byte("other")), ".")[1] + "." + parts[2],
		"non-canonical b64":  parts[0] + "." + parts[1][:len(parts[1])-1] + "f." + parts[2],
		"padding":            parts[0] + "." + parts[1] + "=." + parts[2],
		"empty":              "",
		"dots only":          "..",
		"too long":           strings.Repeat("a", token.MaxLen+1),
		"signature too long": tok + "AA",
	}
	for name, bad := range tests {
		purpose := token.PurposeClick
		if name == "cross purpose" {
			bad, purpose = tok, token.PurposeUnsubscribe
		}
		_, err := s.Verify(purpose, bad)
		require.ErrorIs(t, err, token.ErrInvalid, name)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	old := signer(t, token.Key{ID: "k1", Secret: []byte("old-secret-0123456")})
	rotated := signer(t, token.Key{ID: "k2", Secret: []byte("new-secret-0123456")}, token.Key{ID: "k1", Secret: []byte("old-secret-0123456")})
	oldTok := old.Sign(token.PurposeOpen, []byte("p"))
	_, err := rotated.Verify(token.PurposeOpen, oldTok)
	require.NoError(t, err, "old tokens verify after rotation")
	newTok := rotated.Sign(token.PurposeOpen, []byte("p"))
	require.True(t, strings.HasPrefix(newTok, "k2."), "the newest key signs")
	_, err = old.Verify(token.PurposeOpen, newTok)
	require.ErrorIs(t, err, token.ErrInvalid)
}

func TestNewAndParseKeys(t *testing.T) {
	t.Parallel()
	_, err := token.New()
	require.Error(t, err)
	_, err = token.New(token.Key{ID: "k1", Secret: []byte("short")})
	require.Error(t, err)
	_, err = token.New(token.Key{ID: "bad.id", Secret: []byte("0123456789abcdef")})
	require.Error(t, err)
	_, err = token.New(token.Key{ID: "a", Secret: []byte("0123456789abcdef")}, token.Key{ID: "a", Secret: []byte("0123456789abcdef")})
	require.Error(t, err)

	keys, err := token.ParseKeys("just-one-long-secret")
	require.NoError(t, err)
	require.Equal(t, []token.Key{{ID: "k0", Secret: []byte("just-one-long-secret")}}, keys)
	keys, err = token.ParseKeys("k2:new-secret-aaaaaaa, k1:old-secret-bbbbbbb")
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, "k2", keys[0].ID)
	_, err = token.ParseKeys("k2:,k1:x")
	require.Error(t, err)
}

func TestRefs(t *testing.T) {
	t.Parallel()
	s := signer(t)
	u := token.URLs{Base: "https://mail.example.com/", Signer: s}
	ref := token.Ref{Lead: "lead-1", Send: "snd-1", Sequence: "seq", Step: "st", SentAt: 1700000000}
	click := u.Click(ref, 3, "https://example.com/a")
	require.True(t, strings.HasPrefix(click, "https://mail.example.com/t/c/"))
	got, err := s.VerifyRef(token.PurposeClick, strings.TrimPrefix(click, "https://mail.example.com/t/c/"))
	require.NoError(t, err)
	require.Equal(t, 3, got.Link)
	require.Equal(t, token.LinkHash("https://example.com/a"), got.LinkHash)
	require.Equal(t, int64(1700000000), got.SentAt)

	// Unsubscribe URLs are the same for every rendering (no time in them).
	r2 := ref
	r2.SentAt = 1800000000
	require.Equal(t, u.Unsubscribe(ref), u.Unsubscribe(r2))

	// A signed ref without lead or send is invalid.
	_, err = s.VerifyRef(token.PurposeOpen, s.SignRef(token.PurposeOpen, token.Ref{Send: "x"}))
	require.ErrorIs(t, err, token.ErrInvalid)
	_, err = s.VerifyRef(token.PurposeOpen, s.Sign(token.PurposeOpen, []byte("not json")))
	require.True(t, errors.Is(err, token.ErrInvalid))
}

func FuzzVerify(f *testing.F) {
	s, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef")}, token.Key{ID: "k0", Secret: []byte("fedcba9876543210")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.Sign(token.PurposeClick, []byte(`{"l":"a","s":"b","i":1,"h":"x"}`)))
	f.Add(s.Sign(token.PurposeOpen, nil))
	f.Add("k1..")
	f.Add("k1.AAAA.AAAAAAAAAAAAAAAAAAAAAA")
	f.Add(strings.Repeat(".", 10))
	f.Fuzz(func(t *testing.T, tok string) {
		for _, purpose := range []string{token.PurposeClick, token.PurposeOpen} {
			p, err := s.Verify(purpose, tok)
			if err != nil {
				if !errors.Is(err, token.ErrInvalid) {
					t.Fatalf("error not ErrInvalid: %v", err)
				}
				continue
			}
			// Whatever verifies is exactly what we would sign: no malleability.
			if kid, _, _ := strings.Cut(tok, "."); kid == "k1" && s.Sign(purpose, p) != tok {
				t.Fatalf("verified token %q is not canonical", tok)
			}
			_, _ = s.VerifyRef(purpose, tok)
		}
	})
}

// The token format is a promise to every link already sent: the MAC is
// computed as the package comment says, whatever caching Sign does, and
// stays the same on repeated and concurrent use.
func TestTokenFormatIsStable(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	s, err := token.New(token.Key{ID: "k1", Secret: secret})
	require.NoError(t, err)
	b64 := base64.RawURLEncoding
	spec := func(purpose string, payload []byte) string {
		dk := hmac.New(sha256.New, secret)
		dk.Write([]byte("nurture-token-key/v1\x00" + purpose))
		h := hmac.New(sha256.New, dk.Sum(nil))
		h.Write([]byte("v1\x00" + purpose + "\x00k1\x00"))
		h.Write(payload)
		return "k1." + b64.EncodeToString(payload) + "." + b64.EncodeToString(h.Sum(nil)[:16])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				for _, purpose := range []string{token.PurposeOpen, token.PurposeClick, token.PurposeUnsubscribe} {
					payload := fmt.Appendf(nil, "send-%d-%d", g, i)
					tok := s.Sign(purpose, payload)
					if want := spec(purpose, payload); tok != want {
						t.Errorf("Sign(%s, %s) = %s, want %s", purpose, payload, tok, want)
						return
					}
					if got, err := s.Verify(purpose, tok); err != nil || string(got) != string(payload) {
						t.Errorf("Verify(%s) = %q, %v", tok, got, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
