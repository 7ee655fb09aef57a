package app

// Wiring shared by the commands that run the engine (serve, and dev where it
// wants the same parts): content loading with version publishing, template
// rendering for the mailers, and the escalation channels.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"sort"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/nurture-oss/nurture/adapters/slack"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/adapters/webhook"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/notify"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
)

// versionStore is what loadContent needs of the store.
type versionStore interface {
	PublishVersions(ctx context.Context, vs []store.SequenceVersion) error
	Versions(ctx context.Context) ([]store.SequenceVersion, error)
}

// loadContent loads and validates the content directory, then records and
// compiles its versions (publishVersions).
func loadContent(ctx context.Context, dir string, st versionStore, now time.Time) (*sequences.Bundle, error) {
	b, err := sequences.Load(dir)
	if err != nil {
		var pe *sequences.ProblemsError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("content %s has %d problem(s) (run nurture validate):\n%w", dir, len(pe.Problems), err)
		}
		return nil, err
	}
	if err := publishVersions(ctx, b, dir, st, now); err != nil {
		return nil, err
	}
	return b, nil
}

// publishVersions records the version of every sequence of the loaded
// bundle b in st, and compiles every version ever recorded into b, so leads
// pinned to an older version keep running. A recorded version that no
// longer compiles against this content (say, its template was deleted) is an
// error: leads pinned to it would be stuck. where names the content in
// that error.
func publishVersions(ctx context.Context, b *sequences.Bundle, where string, st versionStore, now time.Time) error {
	vs := make([]store.SequenceVersion, 0, len(b.Sources))
	for _, src := range b.Sources {
		vs = append(vs, store.SequenceVersion{Sequence: src.Sequence, Version: src.Version, Source: src.Raw, PublishedAt: now})
	}
	if err := st.PublishVersions(ctx, vs); err != nil {
		return fmt.Errorf("publish sequence versions: %w", err)
	}
	recorded, err := st.Versions(ctx)
	if err != nil {
		return fmt.Errorf("load published sequence versions: %w", err)
	}
	srcs := make([]sequences.Source, 0, len(recorded))
	for _, v := range recorded {
		srcs = append(srcs, sequences.Source{Sequence: v.Sequence, Version: v.Version, Raw: v.Source})
	}
	if err := b.LoadVersions(srcs); err != nil {
		return fmt.Errorf("earlier published sequence versions no longer compile against %s (leads are pinned to them; restore what they use): %w", where, err)
	}
	return nil
}

// bundleRenderer renders a send's template from the content bundle for the
// SMTP and capture mailers.
type bundleRenderer struct{ b *sequences.Bundle }

func (r bundleRenderer) Render(_ context.Context, send engine.SendEmail, d smtp.RenderData) (*smtp.Rendered, error) {
	t := r.b.Templates[send.Template]
	if t == nil {
		return nil, fmt.Errorf("render send %s: template %q is not in the content: %w", send.SendID, send.Template, outbox.ErrPermanent)
	}
	lead := map[string]any{}
	if d.Lead != nil {
		for k, v := range d.Lead.Traits {
			lead[k] = v
		}
		lead["email"] = d.Lead.Email
	}
	out, err := t.Render(sequences.RenderData{Lead: lead, UnsubscribeURL: d.UnsubscribeURL, Extra: d.Extra})
	if err != nil {
		return nil, fmt.Errorf("render send %s: %w: %w", send.SendID, err, outbox.ErrPermanent)
	}
	return &smtp.Rendered{Subject: out.Subject, From: out.From, ReplyTo: out.ReplyTo, Preheader: out.Preheader,
		HTML: out.HTML, Text: out.Text}, nil
}

// escalationChannels are the notification channels built from the content.
type escalationChannels struct {
	slack    map[string]notify.Notifier
	webhooks map[string]notify.Notifier
	// channels are what the runner fans each escalation out to.
	channels []runner.Channel
	// disabled explains each declared channel that could not be built.
	disabled []string
}

// buildChannels turns the content's notify section into notifiers, reading
// the URLs and secrets it names through getenv. A channel whose variables
// are not set is left out (and listed in disabled) rather than stopping the
// process, so content can declare channels that only production configures.
// repMail says whether rep emails can be sent.
func buildChannels(n sequences.Notify, getenv func(string) string, repMail bool) escalationChannels {
	ec := escalationChannels{slack: map[string]notify.Notifier{}, webhooks: map[string]notify.Notifier{}}
	for _, ch := range n.Slack {
		u, err := ch.ResolveURL(getenv)
		if err == nil {
			var nt *slack.Notifier
			if nt, err = slack.New(slack.Config{WebhookURL: u}); err == nil {
				ec.slack[ch.Name] = nt
				ec.channels = append(ec.channels, runner.Channel{Kind: store.KindNotifySlack, Name: ch.Name})
				continue
			}
		}
		ec.disabled = append(ec.disabled, fmt.Sprintf("slack %s: %v", ch.Name, err))
	}
	for _, ch := range n.Webhooks {
		u, err := ch.ResolveURL(getenv)
		if err == nil {
			secret := ""
			if ch.SecretEnv != "" {
				secret = getenv(ch.SecretEnv)
			}
			if secret == "" {
				err = fmt.Errorf("signing secret variable %s is not set", ch.SecretEnv)
			} else {
				var ep *webhook.Endpoint
				if ep, err = webhook.New(webhook.Config{Name: ch.Name, URL: u, Secret: secret, Timeout: ch.Timeout, Format: webhookFormat(ch.Format)}); err == nil {
					ec.webhooks[ch.Name] = ep
					ec.channels = append(ec.channels, runner.Channel{Kind: store.KindNotifyWebhook, Name: ch.Name})
					continue
				}
			}
		}
		ec.disabled = append(ec.disabled, fmt.Sprintf("webhook %s: %v", ch.Name, err))
	}
	if n.EmailRep {
		if repMail {
			ec.channels = append(ec.channels, runner.Channel{Kind: store.KindNotifyEmail, Name: "email"})
		} else {
			ec.disabled = append(ec.disabled, "email_rep: no rep mailer available")
		}
	}
	sort.Strings(ec.disabled)
	return ec
}

// webhookFormat maps scoring.yaml's webhook format to the adapter's.
func webhookFormat(f string) string {
	switch f {
	case sequences.WebhookFormatHubSpotTask:
		return webhook.FormatHubSpotTask
	case sequences.WebhookFormatStandard:
		return webhook.FormatStandard
	}
	return f // "" (the default) or unknown: webhook.New decides
}

// warnDisabled logs each disabled escalation channel.
func (ec escalationChannels) warnDisabled(log *slog.Logger) {
	for _, d := range ec.disabled {
		log.Warn("escalation channel disabled", "channel", d)
	}
}

// leadViews builds the rep's view of leads (notifications, lead pages) with
// signed lead page and acknowledgement links (unsigned when signer is nil).
func leadViews(publicURL string, s *engine.Scoring, signer *token.Signer) *leadview.Builder {
	b := leadview.NewBuilder(publicURL, s)
	if signer == nil {
		return b
	}
	b.AckToken = func(c leadview.AckClaim) (string, error) { return signer.Sign(leadview.AckPurpose, c.Encode()), nil }
	b.LeadToken = func(key string) (string, error) { return signer.Sign(leadview.PagePurpose, []byte(key)), nil }
	return b
}

// dkim reads the DKIM key the configuration names; nil when DKIM is not
// configured (validate makes sure the three settings come together).
func (c *Config) dkim() (*smtp.DKIM, error) {
	if c.DKIMKeyFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.DKIMKeyFile)
	if err != nil {
		return nil, fmt.Errorf("NURTURE_DKIM_KEY_FILE: %w", err)
	}
	key, err := smtp.ParseDKIMKey(pem)
	if err != nil {
		return nil, fmt.Errorf("NURTURE_DKIM_KEY_FILE %s: %w", c.DKIMKeyFile, err)
	}
	return &smtp.DKIM{Domain: c.DKIMDomain, Selector: c.DKIMSelector, Key: key}, nil
}

// mailerConfig is the SMTP mailer's configuration: the connection pool and
// the send rates (per process) come from c.
func (c *Config) mailerConfig(dial smtp.Dial, log *slog.Logger, observe func(string)) smtp.Config {
	return smtp.Config{
		Dial: dial, Pool: c.SMTPPool, Logger: log, Observe: observe,
		Throttle: smtp.ThrottleConfig{GlobalPerSecond: c.SendRate, DomainPerMinute: c.DomainRate},
	}
}

// repFrom is the sender of rep escalation emails: scoring.yaml's
// notify.email_from, else nurture.yaml's from, else NURTURE_FROM.
func repFrom(b *sequences.Bundle, c Config) string {
	return firstSet(b.Notify.EmailFrom, b.Project.From, c.From)
}

// repSender is what smtpRepMailer needs of the SMTP mailer.
type repSender interface {
	Send(ctx context.Context, c *smtp.Composed) error
}

// newRepMailer returns the mailer of rep escalation emails over SMTP (serve,
// and dev with an SMTP URL): through m's connection pool and error
// classification, DKIM-signed with d when set. nil when from is empty
// (email_rep is then disabled).
func newRepMailer(m repSender, from string, d *smtp.DKIM, now func() time.Time) notify.Mailer {
	if from == "" {
		return nil
	}
	return &smtpRepMailer{m: m, from: from, dkim: d, now: now}
}

// smtpRepMailer sends escalation emails to reps through the SMTP mailer's
// connection pool (and its error classification). It implements
// notify.Mailer.
type smtpRepMailer struct {
	m    repSender
	from string
	dkim *smtp.DKIM
	now  func() time.Time
}

// SendRepEmail implements notify.Mailer.
func (r *smtpRepMailer) SendRepEmail(ctx context.Context, e leadview.Email) error {
	msg, id, err := repMessage(r.from, e, r.now())
	if err != nil {
		return fmt.Errorf("rep email %s: %w: %w", e.MessageID, err, outbox.ErrPermanent)
	}
	if r.dkim != nil {
		if err := smtp.SignDKIM(msg, r.dkim); err != nil {
			return fmt.Errorf("rep email %s: %w: %w", e.MessageID, err, outbox.ErrPermanent)
		}
	}
	return r.m.Send(ctx, &smtp.Composed{Msg: msg, MessageID: id, To: e.To, From: r.from, Subject: e.Subject})
}

// repMessage builds the multipart/alternative rep email. Its Message-ID is
// stable per escalation attempt, so a resent notification threads. Date,
// Message-ID and boundary are fixed, so the message writes the same bytes
// every time (what DKIM signing needs).
func repMessage(from string, e leadview.Email, now time.Time) (*gomail.Msg, string, error) {
	m := gomail.NewMsg()
	if err := m.From(from); err != nil {
		return nil, "", fmt.Errorf("from %q: %w", from, err)
	}
	if err := m.AddToFormat(e.ToName, e.To); err != nil {
		return nil, "", fmt.Errorf("to: %w", err)
	}
	m.Subject(e.Subject)
	m.SetDateWithValue(now)
	domain := "nurture.invalid"
	if addr, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(addr.Address, "@"); ok {
			domain = d
		}
	}
	id := e.MessageID + "@" + domain
	m.SetMessageIDWithValue(id)
	m.SetBodyString(gomail.TypeTextPlain, e.Text)
	m.AddAlternativeString(gomail.TypeTextHTML, e.HTML)
	sum := sha256.Sum256([]byte(e.MessageID + "\x00" + now.UTC().Format(time.RFC3339Nano)))
	m.SetBoundary("nurture-rep-" + hex.EncodeToString(sum[:12]))
	return m, id, nil
}
