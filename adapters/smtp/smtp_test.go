package smtp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
)

// tmpl is a test template rendered the way the sequences package does:
// text/template for the subject, html/template (auto-escaping) for HTML.
type tmpl struct {
	Subject, From, ReplyTo, Preheader, HTML, Text string
}

var templates = map[string]tmpl{
	"welcome": {
		Subject:   `Welcome, {{.Lead.Traits.first_name}}!`,
		From:      `Nurture Team <team@example.com>`,
		Preheader: `Getting started at {{.Lead.Traits.company}}`,
		HTML: `<!doctype html><html><head><title>x</title><style>p{color:red}</style></head><body>` +
			`<h1>Hi {{.Lead.Traits.first_name}}</h1>` +
			`<p>Your company: {{.Lead.Traits.company}}</p>` +
			`<p><a href="https://docs.example.com/start?utm=1&amp;x=2">Read the docs</a> or ` +
			`<a href="https://example.com/pricing">see pricing</a>.</p>` +
			`<p><a href="mailto:help@example.com">mail us</a> <a href="#top">top</a></p>` +
			`<p><a href="{{.UnsubscribeURL}}">Unsubscribe here</a></p>` +
			`</body></html>`,
	},
	"with-text": {
		Subject: `Tips for {{.Lead.Traits.first_name}}`,
		HTML:    `<html><body><p>Tip: <a href="https://example.com/tip">tip</a></p></body></html>`,
		Text:    "Hi {{.Lead.Traits.first_name}},\nTip: https://example.com/tip.\nBye\n",
	},
}

func renderer() smtp.Renderer {
	var mu sync.Mutex
	textCache := map[string]*texttemplate.Template{}
	htmlCache := map[string]*htmltemplate.Template{}
	return smtp.RendererFunc(func(ctx context.Context, s engine.SendEmail, d smtp.RenderData) (*smtp.Rendered, error) {
		t, ok := templates[s.Template]
		if !ok {
			return nil, errors.New("unknown template " + s.Template)
		}
		txt := func(src string) (string, error) {
			mu.Lock()
			tt, ok := textCache[src]
			mu.Unlock()
			if !ok {
				var err error
				if tt, err = texttemplate.New("").Option("missingkey=zero").Parse(src); err != nil {
					return "", err
				}
				mu.Lock()
				textCache[src] = tt
				mu.Unlock()
			}
			var b strings.Builder
			err := tt.Execute(&b, d)
			return b.String(), err
		}
		var out smtp.Rendered
		var err error
		if out.Subject, err = txt(t.Subject); err != nil {
			return nil, err
		}
		if out.Preheader, err = txt(t.Preheader); err != nil {
			return nil, err
		}
		if t.Text != "" {
			if out.Text, err = txt(t.Text); err != nil {
				return nil, err
			}
		}
		mu.Lock()
		ht, ok := htmlCache[t.HTML]
		mu.Unlock()
		if !ok {
			if ht, err = htmltemplate.New("").Parse(t.HTML); err != nil {
				return nil, err
			}
			mu.Lock()
			htmlCache[t.HTML] = ht
			mu.Unlock()
		}
		var b strings.Builder
		if err := ht.Execute(&b, d); err != nil {
			return nil, err
		}
		out.HTML, out.From, out.ReplyTo = b.String(), t.From, t.ReplyTo
		return &out, nil
	})
}

type bundle struct {
	sink     *smtptest.Sink
	mailer   *smtp.Mailer
	composer *smtp.Composer
	signer   *token.Signer
	dkimPub  string // TXT record
	reg      *prometheus.Registry
}

// outcome reads nurture_smtp_deliveries_total{outcome=o}.
func (b *bundle) outcome(t testing.TB, o string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == o {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

type opts struct {
	pool     int
	dkim     bool
	throttle smtp.ThrottleConfig
	public   string
}

func setup(t testing.TB, o opts) *bundle {
	t.Helper()
	b := &bundle{sink: smtptest.Start(t)}
	var err error
	b.signer, err = token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")})
	require.NoError(t, err)
	if o.public == "" {
		o.public = "https://mail.example.com"
	}
	cc := smtp.ComposeConfig{
		PublicURL: o.public, Signer: b.signer, Renderer: renderer(),
		DefaultFrom: "Default <default@example.com>", PostalAddress: "ACME Inc.\n1 Main St, Springfield",
		UnsubscribeMailto: "unsubscribe@example.com",
	}
	if o.dkim {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		require.NoError(t, err)
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		require.NoError(t, err)
		b.dkimPub = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
		cc.DKIM = &smtp.DKIM{Domain: "example.com", Selector: "nurture", Key: key}
	}
	b.composer, err = smtp.NewComposer(cc)
	require.NoError(t, err)
	d, err := smtp.ParseURL(b.sink.URL())
	require.NoError(t, err)
	b.reg = prometheus.NewRegistry()
	observe, err := smtp.Outcomes(b.reg)
	require.NoError(t, err)
	b.mailer, err = smtp.New(smtp.Config{Dial: d, Pool: max(o.pool, 1), Timeout: 5 * time.Second, Throttle: o.throttle,
		Observe: observe}, b.composer)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.mailer.Close() })
	return b
}

func payload(sendID, template string, traits map[string]any) outbox.EmailPayload {
	return outbox.EmailPayload{
		Send: engine.SendEmail{
			SendID: sendID, Enrollment: "enr-1", Sequence: "trial-nurture", Version: "v1",
			Step: "welcome", Template: template, To: "lead@customer.example",
			From: "Sequence <seq@example.com>",
		},
		Lead: "lead-42", To: "lead@customer.example", Traits: traits,
	}
}

func item(t testing.TB, p outbox.EmailPayload) store.OutboxItem {
	raw, err := json.Marshal(p)
	require.NoError(t, err)
	return store.OutboxItem{ID: 1, Kind: store.KindEmail, DedupeKey: p.Send.SendID, LeadKey: p.Lead, Payload: raw}
}

type parsed struct {
	msg  *mail.Message
	raw  []byte
	text string
	html string
}

func parse(t testing.TB, raw []byte) parsed {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	mr := multipart.NewReader(m.Body, params["boundary"])
	out := parsed{msg: m, raw: raw}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		body, err := io.ReadAll(r)
		require.NoError(t, err)
		body = bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			out.text = string(body)
		case "text/html":
			out.html = string(body)
		default:
			t.Fatalf("unexpected part %s", ct)
		}
	}
	return out
}

func decodeHeader(t testing.TB, v string) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(v)
	require.NoError(t, err)
	return s
}

func TestSendReachesServer(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{dkim: true})
	traits := map[string]any{"first_name": "Ada <b>&", "company": "Lovelace & Co <script>alert(1)</script>"}
	p := payload("snd-abc123", "welcome", traits)
	require.NoError(t, b.mailer.Deliver(context.Background(), item(t, p)))

	msgs := b.sink.Wait(1, 5*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"lead@customer.example"}, msgs[0].To)
	got := parse(t, msgs[0].Data)
	h := got.msg.Header

	// Addresses: the template's From overrides the sequence's.
	from, err := mail.ParseAddress(h.Get("From"))
	require.NoError(t, err)
	require.Equal(t, "team@example.com", from.Address)
	require.Equal(t, "Nurture Team", from.Name)
	require.Equal(t, "<lead@customer.example>", h.Get("To"))
	require.Equal(t, "Welcome, Ada <b>&!", decodeHeader(t, h.Get("Subject")))
	require.Equal(t, "<snd-abc123@example.com>", h.Get("Message-Id"))
	require.NotEmpty(t, h.Get("Date"))

	// RFC 8058 one-click unsubscribe + mailto.
	lu := h.Get("List-Unsubscribe")
	require.Contains(t, lu, "<https://mail.example.com/u/")
	require.Contains(t, lu, "<mailto:unsubscribe@example.com?subject=unsubscribe>")
	require.Equal(t, "List-Unsubscribe=One-Click", h.Get("List-Unsubscribe-Post"))
	unsubURL := strings.TrimSuffix(strings.TrimPrefix(strings.Split(lu, ",")[0], "<"), ">")
	ref, err := b.signer.VerifyRef(token.PurposeUnsubscribe, strings.TrimPrefix(unsubURL, "https://mail.example.com/u/"))
	require.NoError(t, err)
	require.Equal(t, "lead-42", ref.Lead)
	require.Equal(t, "snd-abc123", ref.Send)
	bref, err := b.signer.VerifyRef(token.PurposeRef, h.Get("X-Nurture-Ref"))
	require.NoError(t, err)
	require.Equal(t, "snd-abc123", bref.Send)

	// HTML part: escaped personalisation, tracked links, pixel, footer.
	require.Contains(t, got.html, "Hi Ada &lt;b&gt;&amp;</h1>")
	require.Contains(t, got.html, "Lovelace &amp; Co &lt;script&gt;alert(1)&lt;/script&gt;")
	require.NotContains(t, got.html, "<script>")
	require.NotContains(t, got.html, "https://docs.example.com/start")
	require.NotContains(t, got.html, `href="https://example.com/pricing"`)
	require.Contains(t, got.html, `href="https://mail.example.com/t/c/`)
	require.Contains(t, got.html, `<img src="https://mail.example.com/t/o/`)
	require.Contains(t, got.html, `href="mailto:help@example.com"`)
	require.Contains(t, got.html, `href="#top"`)
	require.Contains(t, got.html, `href="`+unsubURL+`"`, "the template's own unsubscribe link stays untracked")
	require.Contains(t, got.html, "ACME Inc.<br>1 Main St, Springfield")
	require.Contains(t, got.html, "Getting started at Lovelace &amp; Co")

	// Text part, generated from the HTML: raw text, no tags, tracked links.
	require.Contains(t, got.text, "Hi Ada <b>&")
	require.NotContains(t, got.text, "<h1>")
	require.NotContains(t, got.text, "p{color:red}")
	require.Contains(t, got.text, "Read the docs (https://mail.example.com/t/c/")
	require.Contains(t, got.text, "ACME Inc.\n1 Main St, Springfield")

	// Click tokens name the link position; the composer re-renders the same targets.
	links, err := b.composer.Links(context.Background(), p)
	require.NoError(t, err)
	require.Equal(t, []string{"https://docs.example.com/start?utm=1&x=2", "https://example.com/pricing"}, links)
	i := strings.Index(got.html, `href="https://mail.example.com/t/c/`)
	tok := got.html[i+len(`href="https://mail.example.com/t/c/`):]
	tok = tok[:strings.IndexByte(tok, '"')]
	cref, err := b.signer.VerifyRef(token.PurposeClick, tok)
	require.NoError(t, err)
	require.Equal(t, 0, cref.Link)
	require.Equal(t, token.LinkHash(links[0]), cref.LinkHash)

	// DKIM: verified, with the key served through the lookup hook.
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msgs[0].Data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "nurture._domainkey.example.com" {
				return nil, errors.New("no such record " + domain)
			}
			return []string{b.dkimPub}, nil
		},
	})
	require.NoError(t, err)
	require.Len(t, verifs, 1)
	require.NoError(t, verifs[0].Err)
	require.Equal(t, "example.com", verifs[0].Domain)
	signed := strings.ToLower(strings.Join(verifs[0].HeaderKeys, ":"))
	for _, k := range []string{"from", "subject", "list-unsubscribe", "list-unsubscribe-post", "message-id"} {
		require.Contains(t, signed, k)
	}

	// A tampered copy fails verification.
	bad := bytes.Replace(msgs[0].Data, []byte("Lovelace"), []byte("Lovelase"), 1)
	verifs, err = dkim.VerifyWithOptions(bytes.NewReader(bad), &dkim.VerifyOptions{
		LookupTXT: func(string) ([]string, error) { return []string{b.dkimPub}, nil },
	})
	require.NoError(t, err)
	require.Error(t, verifs[0].Err)
}

func TestDKIMEd25519(t *testing.T) {
	t.Parallel()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef")})
	require.NoError(t, err)
	c, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: "https://m.example.com", Signer: signer, Renderer: renderer(),
		DKIM: &smtp.DKIM{Domain: "example.com", Selector: "ed", Key: priv},
	})
	require.NoError(t, err)
	m, err := c.Compose(context.Background(), payload("s1", "welcome", map[string]any{"first_name": "Zoë"}))
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = m.Msg.WriteTo(&buf)
	require.NoError(t, err)
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(buf.Bytes()), &dkim.VerifyOptions{
		LookupTXT: func(string) ([]string, error) {
			return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
		},
	})
	require.NoError(t, err)
	require.Len(t, verifs, 1)
	require.NoError(t, verifs[0].Err)
}

func TestTemplateTextPartAndOverrides(t *testing.T) {
	t.Parallel()
	b := setup(t, opts{public: "http://127.0.0.1:8080"})
	p := payload("snd-2", "with-text", map[string]any{"first_name": "Bob"})
	p.Send.ReplyTo = "Replies <replies@example.com>"
	require.NoError(t, b.mailer.Deliver(context.Background(), item(t, p)))
	msgs := b.sink.Wait(1, 5*time.Second)
	require.Len(t, msgs, 1)
	got := parse(t, msgs[0].Data)
	// The sequence From applies when the template has none.
	require.Contains(t, got.msg.Header.Get("From"), "seq@example.com")
	require.Contains(t, got.msg.Header.Get("Reply-To"), "replies@example.com")
	// The template's text part is used, with its link tracked.
	require.True(t, strings.HasPrefix(got.text, "Hi Bob,\nTip: http://127.0.0.1:8080/t/c/"), got.text)
	require.Contains(t, got.text, ".\nBye\n")
	require.NotContains(t, got.text, "https://example.com/tip")
	// http public URL (dev): headers still present.
	require.Contains(t, got.msg.Header.Get("List-Unsubscribe"), "<http://127.0.0.1:8080/u/")
	require.Equal(t, "List-Unsubscribe=One-Click", got.msg.Header.Get("List-Unsubscribe-Post"))
	// Footer carries the unsubscribe link because the template has none.
	require.Contains(t, got.text, "Unsubscribe: http://127.0.0.1:8080/u/")
	require.Contains(t, got.html, `>Unsubscribe</a>`)
}

func TestMessageIDStable(t *testing.T) {
	t.Parallel()
	signer, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef")})
	require.NoError(t, err)
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: "https://m.example.com", Signer: signer, Renderer: renderer(),
		MessageIDDomain: "mail.example.com", Now: func() time.Time { now = now.Add(time.Hour); return now },
	})
	require.NoError(t, err)
	ids := map[string]bool{}
	for range 3 {
		m, err := c.Compose(context.Background(), payload("enr-1.welcome", "welcome", nil))
		require.NoError(t, err)
		ids[m.MessageID] = true
	}
	require.Equal(t, map[string]bool{"enr-1.welcome@mail.example.com": true}, ids)
	// A send id that is not a dot-atom still gives a stable, valid id.
	m1, err := c.Compose(context.Background(), payload("enr 1/step<x>", "welcome", nil))
	require.NoError(t, err)
	m2, err := c.Compose(context.Background(), payload("enr 1/step<x>", "welcome", nil))
	require.NoError(t, err)
	require.Equal(t, m1.MessageID, m2.MessageID)
	require.NotContains(t, m1.MessageID, " ")
	m3, err := c.Compose(context.Background(), payload("enr 1/step<y>", "welcome", nil))
	require.NoError(t, err)
	require.NotEqual(t, m1.MessageID, m3.MessageID)
}
