package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/internal/store"
)

// serveSettings are the settings serve reads.
var serveSettings = []string{
	"database-url", "nats-url", "smtp-url", "smtp-pool", "send-rate", "domain-rate", "http-addr", "public-url", "content-dir", "secret", "api-tokens",
	"bounce-tokens", "ses-topic-arns",
	"batch-size", "sweep-interval", "stream-max-age", "stream-replicas", "duplicate-window", "resend-unknown",
	"give-up-after", "shutdown-timeout", "max-body", "log-level", "log-format",
	"dkim-key-file", "dkim-selector", "dkim-domain", "from", "postal-address",
}

func newServeCmd() *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a production worker: PostgreSQL, NATS JetStream, SMTP, HTTP",
		Long: `Run one Nurture worker. It consumes lead events from the NATS stream LEADS
(created or updated at start), applies them in batches to lead state in the
database, fires due timers, sends email over SMTP and escalation
notifications, and serves HTTP: the ingest API (/v1/events, /v1/track,
/v1/identify), tracking and unsubscribe links, /livez, /readyz and /metrics.

Run "nurture migrate" first: serve refuses a database whose schema is behind.
Any number of serve processes may share one database and one NATS: they
split the work and never apply an event or send a step twice.

On SIGTERM or SIGINT it stops taking HTTP requests and fetching events,
finishes the batch in hand, lets deliveries in progress finish, then closes
NATS and the database (bounded by --shutdown-timeout).

Required: NURTURE_DATABASE_URL, NURTURE_SMTP_URL, NURTURE_CONTENT_DIR,
NURTURE_SECRET. Every setting is in docs/operators.md. Escalation channels
also read the variables the content's scoring.yaml names (url_env,
secret_env); a channel whose variables are unset is disabled with a warning.`,
		Example: `  export NURTURE_DATABASE_URL=postgres://nurture:secret@db:5432/nurture?sslmode=disable
  export NURTURE_NATS_URL=nats://nats:4222
  export NURTURE_SMTP_URL=smtp://apikey:secret@smtp.relay.example:587
  export NURTURE_CONTENT_DIR=./content NURTURE_SECRET=$(openssl rand -hex 32)
  export NURTURE_PUBLIC_URL=https://nurture.example.com NURTURE_API_TOKENS=$(openssl rand -hex 16)
  nurture migrate && nurture serve

  nurture serve --http-addr 0.0.0.0:8080 --log-format text --batch-size 200`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadConfig(cmd, &cfg); err != nil {
				return err
			}
			if err := cfg.require("database-url", "smtp-url", "content-dir", "secret"); err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, serveDeps{stderr: cmd.ErrOrStderr(), getenv: envFrom(cmd.Context())})
		},
	}
	configFlags(cmd, &cfg, serveSettings...)
	return cmd
}

// serveDeps are serve's process-level inputs.
type serveDeps struct {
	stderr io.Writer
	getenv func(string) string
	// listening, when set, receives the HTTP listener's address once bound.
	listening func(addr string)
}

// serve runs a worker until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg Config, deps serveDeps) (err error) {
	log := cfg.newLogger(deps.stderr)

	// Everything that can be checked without the network is checked first.
	signer, err := cfg.signer()
	if err != nil {
		return fmt.Errorf("serve: NURTURE_SECRET: %w", err)
	}
	dial, err := smtp.ParseURL(cfg.SMTPURL)
	if err != nil {
		return fmt.Errorf("serve: NURTURE_SMTP_URL: %w", err)
	}
	dkim, err := cfg.dkim()
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	publicURL := cfg.resolvePublicURL()

	// Resources are opened in order and closed in reverse by the defers:
	// store, NATS, mailer.
	st, err := openStore(ctx, cfg.DatabaseURL, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("store", st.Close())) }()
	if err := st.CheckSchema(ctx); err != nil {
		if errors.Is(err, store.ErrSchemaBehind) {
			return fmt.Errorf("serve: %w", err)
		}
		return fmt.Errorf("serve: check schema: %w", err)
	}

	bundle, err := loadContent(ctx, cfg.ContentDir, st, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	conn, err := natsadapter.Connect(ctx, natsadapter.Options{
		URL: cfg.resolveNATSURL(), Name: "nurture-serve",
		Duplicates: cfg.DuplicateWindow, LeadsMaxAge: cfg.StreamMaxAge, NurtureMaxAge: cfg.StreamMaxAge,
		Replicas: cfg.StreamReplicas,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("nats", conn.Close())) }()
	if err := conn.EnsureStreams(ctx); err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	smtpAttempts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nurture_smtp_attempts_total",
		Help: "Marketing email delivery attempts over SMTP by outcome: sent, transient, permanent, suppressed, policy, unknown, deferred.",
	}, []string{"outcome"})
	reg.MustRegister(smtpAttempts)

	composer, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: publicURL, Signer: signer, Renderer: bundleRenderer{b: bundle},
		DefaultFrom: firstSet(cfg.From, bundle.Project.From), PostalAddress: cfg.PostalAddress, DKIM: dkim,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	mailer, err := smtp.New(cfg.mailerConfig(dial, log, func(o string) { smtpAttempts.WithLabelValues(o).Inc() }), composer)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("smtp", mailer.Close())) }()

	repMail := newRepMailer(mailer, repFrom(bundle, cfg), dkim, time.Now)

	// After the first SIGINT/SIGTERM, a second one kills the process at once.
	stopReset := context.AfterFunc(ctx, func() { signal.Reset(syscall.SIGINT, syscall.SIGTERM) })
	defer stopReset()

	return runWorker(ctx, worker{
		cfg: cfg, log: log, st: st, bundle: bundle, conn: conn, signer: signer, composer: composer,
		mail: mailer, repMail: repMail, getenv: deps.getenv, reg: reg, name: "serve", listening: deps.listening,
	})
}

func closeErr(what string, err error) error {
	if err != nil {
		return fmt.Errorf("close %s: %w", what, err)
	}
	return nil
}

func firstSet(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
