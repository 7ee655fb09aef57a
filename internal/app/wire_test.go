package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/smtp/smtptest"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/examples"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/sequences"
)

func TestMailerSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    smtp.Config
		wantErr []string
	}{
		{name: "defaults: 4 connections, no rate limit", want: smtp.Config{Pool: 4}},
		{
			name: "from the environment",
			env:  map[string]string{"NURTURE_SMTP_POOL": "8", "NURTURE_SEND_RATE": "2.5", "NURTURE_DOMAIN_RATE": "120"},
			want: smtp.Config{Pool: 8, Throttle: smtp.ThrottleConfig{GlobalPerSecond: 2.5, DomainPerMinute: 120}},
		},
		{
			name: "flags win",
			args: []string{"--smtp-pool", "2", "--send-rate=10", "--domain-rate", "30"},
			env:  map[string]string{"NURTURE_SMTP_POOL": "8", "NURTURE_SEND_RATE": "2.5"},
			want: smtp.Config{Pool: 2, Throttle: smtp.ThrottleConfig{GlobalPerSecond: 10, DomainPerMinute: 30}},
		},
		{
			name:    "invalid values are reported",
			env:     map[string]string{"NURTURE_SMTP_POOL": "0", "NURTURE_SEND_RATE": "-1", "NURTURE_DOMAIN_RATE": "NaN"},
			wantErr: []string{"NURTURE_SMTP_POOL", "NURTURE_SEND_RATE", "NURTURE_DOMAIN_RATE"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(t, tt.args, tt.env)
			if tt.wantErr != nil {
				for _, want := range tt.wantErr {
					require.ErrorContains(t, err, want)
				}
				return
			}
			require.NoError(t, err)
			got := c.mailerConfig(smtp.Dial{Host: "relay.example"}, nil, nil)
			require.Equal(t, tt.want.Pool, got.Pool)
			require.Equal(t, tt.want.Throttle, got.Throttle)
			require.Equal(t, "relay.example", got.Dial.Host)
		})
	}
	for _, s := range serveSettings {
		_, ok := lookupSetting(s)
		require.True(t, ok, s)
	}
	require.Subset(t, serveSettings, []string{"smtp-pool", "send-rate", "domain-rate"})
	require.Subset(t, devSettings, []string{"smtp-pool", "send-rate", "domain-rate", "dkim-key-file", "dkim-selector", "dkim-domain"})
}

// TestRepMailerSignsDKIM sends a rep escalation email through the SMTP
// mailer (the path serve and dev with an SMTP URL share) and verifies its
// DKIM signature independently.
func TestRepMailerSignsDKIM(t *testing.T) {
	t.Parallel()
	sink := smtptest.Start(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)

	cfg := DefaultConfig()
	cfg.Secret = "wire-test-secret-0123456789"
	signer, err := cfg.signer()
	require.NoError(t, err)
	dial, err := smtp.ParseURL(sink.URL())
	require.NoError(t, err)
	composer, err := smtp.NewComposer(smtp.ComposeConfig{PublicURL: "https://n.example.com", Signer: signer,
		Renderer: smtp.RendererFunc(func(context.Context, engine.SendEmail, smtp.RenderData) (*smtp.Rendered, error) {
			return nil, errors.New("not used")
		})})
	require.NoError(t, err)
	mailer, err := smtp.New(cfg.mailerConfig(dial, nil, nil), composer)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mailer.Close() })

	now := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	rm := newRepMailer(mailer, "Lead Desk <desk@lumen.example>",
		&smtp.DKIM{Domain: "lumen.example", Selector: "nurture", Key: key}, func() time.Time { return now })
	require.NotNil(t, rm)
	require.NoError(t, rm.SendRepEmail(context.Background(), leadview.Email{
		To: "sam@lumen.example", ToName: "Sam", Subject: "Hot lead: Ana", MessageID: "ana.escalation-1",
		Text: "Ana scored 120.", HTML: "<p>Ana scored <b>120</b>.</p>",
	}))
	msgs := sink.Wait(1, 10*time.Second)
	require.Len(t, msgs, 1)
	require.Equal(t, []string{"sam@lumen.example"}, msgs[0].To)
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msgs[0].Data), &dkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if domain != "nurture._domainkey.lumen.example" {
				return nil, errors.New("no such record " + domain)
			}
			return []string{record}, nil
		},
	})
	require.NoError(t, err)
	require.Len(t, verifs, 1, "the rep email carries one DKIM signature")
	require.NoError(t, verifs[0].Err)
	require.Equal(t, "lumen.example", verifs[0].Domain)

	// Without a sender there is no rep mailer (email_rep is disabled).
	require.Nil(t, newRepMailer(mailer, "", nil, time.Now))
}

// memVersions is an in-memory versionStore.
type memVersions struct{ vs []store.SequenceVersion }

func (m *memVersions) PublishVersions(_ context.Context, vs []store.SequenceVersion) error {
	for _, v := range vs {
		dup := false
		for _, have := range m.vs {
			dup = dup || (have.Sequence == v.Sequence && have.Version == v.Version)
		}
		if !dup {
			m.vs = append(m.vs, v)
		}
	}
	return nil
}

func (m *memVersions) Versions(context.Context) ([]store.SequenceVersion, error) { return m.vs, nil }

// TestPublishVersions: the directory and the built-in content go through
// the same version publishing; an old version that no longer compiles is an
// error naming the content.
func TestPublishVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	st := &memVersions{}
	b, name, err := devContent(ctx, "", st, now)
	require.NoError(t, err)
	require.Equal(t, "built-in copy of the examples", name)
	require.NotEmpty(t, st.vs)
	require.Len(t, st.vs, len(b.Sources))

	// A recorded version that uses a template the content no longer has.
	bad := st.vs[0]
	bad.Version = "old-version"
	bad.Source = append([]byte(nil), bad.Source...)
	bad.Source = bytes.ReplaceAll(bad.Source, []byte("email: "), []byte("email: gone-"))
	st.vs = append(st.vs, bad)
	b2, err := sequences.LoadFS(examples.FS)
	require.NoError(t, err)
	err = publishVersions(ctx, b2, "the built-in copy", st, now)
	require.ErrorContains(t, err, "no longer compile against the built-in copy")
}

// TestWebhookFormatWired: scoring.yaml's webhook format reaches the
// endpoint; a hubspot_task channel posts HubSpot's create-a-task body.
func TestWebhookFormatWired(t *testing.T) {
	t.Parallel()
	bodies := make(chan map[string]any, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]any
		_ = json.NewDecoder(r.Body).Decode(&v)
		bodies <- v
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	n := sequences.Notify{Webhooks: []sequences.WebhookChannel{
		{Name: "hubspot", URL: srv.URL, SecretEnv: "HOOK_SECRET", Format: sequences.WebhookFormatHubSpotTask},
		{Name: "crm", URL: srv.URL, SecretEnv: "HOOK_SECRET", Format: sequences.WebhookFormatStandard},
	}}
	env := map[string]string{"HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	ec := buildChannels(n, func(k string) string { return env[k] }, false)
	require.Empty(t, ec.disabled)
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	v := leadview.View{Key: "ana", Name: "Ana", Score: 120, Threshold: 100, Now: at,
		Escalation: &leadview.Escalation{ID: "ana.escalation-1", Attempt: 1, Rep: "sam", At: at, AckDueAt: at.Add(time.Hour)}}

	require.NoError(t, ec.webhooks["hubspot"].Notify(context.Background(), v))
	hs := <-bodies
	props, ok := hs["properties"].(map[string]any)
	require.True(t, ok, "HubSpot task body: %v", hs)
	require.Equal(t, "NOT_STARTED", props["hs_task_status"])

	require.NoError(t, ec.webhooks["crm"].Notify(context.Background(), v))
	std := <-bodies
	require.NotContains(t, std, "properties", "the standard payload is Nurture's own")
}
