package smtp_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/internal/outbox"
)

// injection is a corpus of hostile lead traits.
var injection = []string{
	"<script>alert(1)</script>",
	`"><img src=x onerror=alert(1)>`,
	"{{ .Secret }}", "{{template \"x\"}}", "${jndi:ldap://evil}",
	"Eve\r\nBcc: victim@evil.example",
	"Eve\nSubject: hijacked",
	"Eve\r\n\r\n<html>body injection",
	"Eve\x00NUL", "Eve\u2028line\u2029sep", "\u202eevil\u202c RTL", "zero\u200bwidth", "emoji 🎉👩‍💻",
	"=?UTF-8?B?SGVsbG8=?= encoded-word", "Ève Ünïcödé Ελληνικά 日本語",
	strings.Repeat("A", 20000),
	strings.Repeat("é", 5000) + "\r\nX-Injected: yes",
	string([]byte{0xff, 0xfe, 'b', 'a', 'd'}),
}

func TestInjectionCorpus(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	for i, evil := range injection {
		p := payload("snd-inj-"+string(rune('a'+i)), "welcome", map[string]any{"first_name": evil, "company": evil})
		require.NoError(t, b.mailer.Deliver(context.Background(), item(t, p)), "payload %d", i)
	}
	msgs := b.sink.Wait(len(injection), 10*time.Second)
	require.Len(t, msgs, len(injection))
	allowed := map[string]bool{
		"Date": true, "Mime-Version": true, "Message-Id": true, "Subject": true, "User-Agent": true,
		"X-Mailer": true, "X-Nurture-Ref": true, "List-Unsubscribe": true, "List-Unsubscribe-Post": true,
		"From": true, "To": true, "Content-Type": true,
	}
	for i, m := range msgs {
		require.Equal(t, []string{"lead@customer.example"}, m.To, "message %d: only the lead is a recipient", i)
		got := parse(t, m.Data)
		for k, v := range got.msg.Header {
			require.True(t, allowed[k], "message %d: unexpected header %q", i, k)
			require.Len(t, v, 1, "message %d: header %s repeated", i, k)
		}
		subj := decodeHeader(t, got.msg.Header.Get("Subject"))
		require.NotContains(t, subj, "\r")
		require.NotContains(t, subj, "\n")
		require.NotContains(t, subj, "\x00")
		require.True(t, utf8.ValidString(subj))
		require.LessOrEqual(t, utf8.RuneCountInString(subj), 510, "cut to 500 runes (+ folding)")
		// HTML: nothing hostile survives unescaped.
		require.NotContains(t, got.html, "<script>")
		require.NotContains(t, got.html, "<img src=x")
		require.NotContains(t, got.html, "<html>body injection")
		// Template syntax in data stays data.
		if strings.Contains(injection[i], "{{ .Secret }}") {
			require.Contains(t, got.html, "{{ .Secret }}")
			require.Contains(t, subj, "{{ .Secret }}")
		}
	}
}

func TestBadRecipientIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	for _, to := range []string{"", "not-an-address", "a@b.example\r\nBcc: x@evil.example", "Eve <eve@evil.example>, bob@evil.example"} {
		p := payload("snd-bad", "welcome", nil)
		p.To, p.Send.To = to, to
		err := b.mailer.Deliver(context.Background(), item(t, p))
		require.Equal(t, outbox.Permanent, outbox.Classify(err), "to=%q err=%v", to, err)
	}
	require.Empty(t, b.sink.Messages())
}

func TestUnknownTemplateIsPermanent(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	err := b.mailer.Deliver(context.Background(), item(t, payload("snd-x", "nope", nil)))
	require.ErrorIs(t, err, smtp.ErrCompose)
	require.ErrorIs(t, err, outbox.ErrPermanent)
}

func TestPoolConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{pool: 4})
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- b.mailer.Deliver(context.Background(), item(t, payload("snd-p"+string(rune('A'+i)), "welcome", nil)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, b.sink.Wait(n, 5*time.Second), n)
	require.LessOrEqual(t, b.sink.Connections(), 4, "connections are reused")
}

func TestDomainThrottleDefers(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{throttle: smtp.ThrottleConfig{DomainPerMinute: 60, MaxWait: 10 * time.Millisecond}})
	require.NoError(t, b.mailer.Deliver(context.Background(), item(t, payload("snd-1", "welcome", nil))))
	start := time.Now()
	err := b.mailer.Deliver(context.Background(), item(t, payload("snd-2", "welcome", nil)))
	until, ok := outbox.DeferUntil(err)
	require.True(t, ok, "second send to the same domain within a second is deferred: %v", err)
	require.WithinDuration(t, start.Add(time.Second), until, 200*time.Millisecond)
	var de *outbox.DeferError
	require.True(t, errors.As(err, &de))
	require.Equal(t, "domain_rate", de.Reason)
	// Another domain is not held back.
	p := payload("snd-3", "welcome", nil)
	p.To = "someone@other.example"
	require.NoError(t, b.mailer.Deliver(context.Background(), item(t, p)))
	require.Len(t, b.sink.Messages(), 2)
}

func TestGlobalThrottleWaits(t *testing.T) {
	t.Parallel()
	th := smtp.NewThrottle(smtp.ThrottleConfig{GlobalPerSecond: 20, MaxWait: time.Second})
	start := time.Now()
	for range 11 {
		require.NoError(t, th.Wait(context.Background(), "x.example"))
	}
	// Burst of 2, then 20/s: 9 more need about 450ms.
	require.GreaterOrEqual(t, time.Since(start), 350*time.Millisecond)
}

func TestCapture(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{})
	c, err := smtp.NewCapture(t.TempDir(), b.composer)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.Deliver(ctx, item(t, payload("snd-1", "welcome", map[string]any{"first_name": "Cap"}))))
	require.NoError(t, c.Deliver(ctx, item(t, payload("snd-2", "with-text", map[string]any{"first_name": "Cap"}))))
	require.NoError(t, c.Deliver(ctx, item(t, payload("snd-1", "welcome", map[string]any{"first_name": "Cap"})))) // retry: same entry
	list, err := c.List(ctx, 0)
	require.NoError(t, err)
	require.Len(t, list, 2)
	sends := map[string]smtp.Captured{}
	for _, e := range list {
		sends[e.Send] = e
	}
	require.Equal(t, "Welcome, Cap!", sends["snd-1"].Subject)
	require.Equal(t, "snd-1@example.com", sends["snd-1"].MessageID)
	require.Len(t, sends["snd-1"].Links, 2)
	raw, err := c.Read(ctx, sends["snd-1"].ID)
	require.NoError(t, err)
	got := parse(t, raw)
	require.Contains(t, got.html, "Hi Cap")
	require.Contains(t, got.msg.Header.Get("List-Unsubscribe"), "/u/")
	_, err = c.Read(ctx, "../../etc/passwd")
	require.ErrorIs(t, err, smtp.ErrNotCaptured)
	require.Empty(t, b.sink.Messages(), "capture never sends")
}
