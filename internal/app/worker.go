package app

// runWorker is the part of an engine process that does not depend on where
// its parts come from: given an open store, a NATS connection, loaded
// content and an email handler, it builds the engine, the escalation
// channels, the runner and the HTTP server, runs them under one errgroup
// and shuts down gracefully. `nurture dev` calls it with embedded parts and
// its own clock; `serve` builds the same pieces (cmd_serve.go) and can call
// it too.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/notify"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
	"github.com/nurture-oss/nurture/sequences"
)

// worker is everything runWorker runs with.
type worker struct {
	cfg    Config
	log    *slog.Logger
	st     *openedStore
	bundle *sequences.Bundle
	conn   *natsadapter.Conn
	signer *token.Signer
	// composer re-renders sends for click resolution.
	composer *smtp.Composer
	// mail delivers store.KindEmail items (SMTP mailer or capture).
	mail outbox.Handler
	// repMail sends escalation emails to reps; nil disables email_rep.
	repMail notify.Mailer
	getenv  func(string) string
	reg     *prometheus.Registry
	// now is the clock of the runner and the HTTP surface (nil: time.Now).
	now func() time.Time
	// observer is told what happened to each lead after commit.
	observer runner.Observer
	// mailbox mounts the captured-mail and lead list pages (dev).
	mailbox *httpapi.MailboxConfig
	// openPages serves lead pages without a token (dev on localhost).
	openPages bool
	// tune adjusts the runner config before the runner is built (dev
	// scales its durations to the sped-up clock).
	tune func(*runner.Config)
	// listening is called with the bound HTTP address before serving.
	listening func(addr string)
	name      string // "serve" or "dev", for log messages
	// quietChannels: do not log disabled escalation channels (dev lists
	// them in its banner instead).
	quietChannels bool
}

// runWorker runs w until ctx ends, then stops HTTP intake and event
// fetching, finishes the batch in hand, lets deliveries finish and returns.
// The caller closes the store, the NATS connection and the mailer after it
// returns.
func runWorker(ctx context.Context, w worker) error {
	start := time.Now()
	if w.now == nil {
		w.now = time.Now
	}
	if w.name == "" {
		w.name = "worker"
	}
	log, cfg := w.log, w.cfg
	publicURL := cfg.resolvePublicURL()

	eng, err := engine.New(w.bundle.Content)
	if err != nil {
		return fmt.Errorf("build engine: %w", err)
	}
	cons, err := w.conn.Consumer(ctx)
	if err != nil {
		return err
	}

	handlers := map[string]outbox.Handler{store.KindEmail: w.mail}
	views := leadViews(publicURL, w.bundle.Content.Scoring, w.signer)
	ec := buildChannels(w.bundle.Notify, w.getenv, w.repMail != nil)
	if !w.quietChannels {
		ec.warnDisabled(log)
	}
	if len(ec.channels) > 0 {
		nh := notify.New(notify.Config{
			Store: w.st, Views: views, Slack: ec.slack, Webhooks: ec.webhooks, Mailer: w.repMail,
			Logger: log, Now: w.now,
		})
		for k, h := range nh.Handlers() {
			handlers[k] = h
		}
	}

	rc := runner.Config{
		Store: w.st, Engine: eng, Consumer: runner.AdaptConsumer[*natsadapter.Msg](cons),
		Publisher: w.conn.Publisher(natsadapter.Source), Handlers: handlers, Channels: ec.channels,
		Logger: log, Registerer: w.reg, Observer: w.observer, Now: w.now,
		BatchSize: cfg.BatchSize, SweepInterval: cfg.SweepInterval, SweepBatch: cfg.BatchSize,
		GiveUp: cfg.GiveUpAfter, ResendUnknown: cfg.ResendUnknown, DispatchWorkers: cfg.DispatchWorkers,
		// Processed ids must outlive everything the stream can replay.
		StreamMaxAge:   cfg.StreamMaxAge,
		EventRetention: max(7*24*time.Hour, cfg.DuplicateWindow, cfg.StreamMaxAge+runner.RetentionMargin),
	}
	if w.tune != nil {
		w.tune(&rc)
	}
	rn, err := runner.New(rc)
	if err != nil {
		return err
	}

	var stopping atomic.Bool
	ready := func() error {
		if stopping.Load() {
			return errors.New("shutting down")
		}
		if !w.conn.Connected() {
			return errors.New("nats: not connected")
		}
		pctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := w.st.ping(pctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		return nil
	}
	api := httpapi.New(httpapi.Config{
		Logger: log, PublicURL: publicURL, MaxBody: cfg.MaxBody,
		Ready: ready, Metrics: promhttp.HandlerFor(w.reg, promhttp.HandlerOpts{Registry: w.reg}),
		Ingest: &httpapi.IngestConfig{Publisher: w.conn.Publisher("http"), Tokens: cfg.APITokens, Registerer: w.reg},
		Tracking: &httpapi.TrackingConfig{
			Signer: w.signer, Publisher: w.conn.Publisher("nurture-tracking"),
			Sends: httpapi.OutboxSends{Reader: w.st}, Links: w.composer, Suppressor: w.st, Leads: w.st,
			BounceTokens: cfg.BounceTokens, SESTopicARNs: cfg.SESTopicARNs, Now: w.now,
		},
		Leads: &httpapi.LeadsConfig{
			Store: w.st, Views: views, Tokens: cfg.APITokens, Links: w.signer,
			Publisher: w.conn.Publisher("nurture-leads"), Reps: w.st, OpenPages: w.openPages, Now: w.now,
		},
		Mailbox: w.mailbox,
	})
	if len(cfg.APITokens) == 0 {
		log.Warn("ingest API closed: no NURTURE_API_TOKENS configured")
	}
	srv := api.HTTPServer(cfg.HTTPAddr)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	if w.listening != nil {
		w.listening(ln.Addr().String())
	}
	log.Info(w.name+" started", "http_addr", ln.Addr().String(), "public_url", publicURL, "store", w.st.kind,
		"sequences", len(w.bundle.Content.Current), "versions", len(w.bundle.Content.Sequences),
		"channels", len(ec.channels), "batch_size", cfg.BatchSize, "startup_ms", time.Since(start).Milliseconds())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		stopping.Store(true)
		log.Info("shutting down: stopping HTTP intake and event fetching")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			return fmt.Errorf("http shutdown: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := rn.Run(gctx); err != nil {
			return fmt.Errorf("runner: %w", err)
		}
		return nil
	})

	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err = <-done:
	case <-gctx.Done():
		select {
		case err = <-done:
		case <-time.After(cfg.ShutdownTimeout):
			return fmt.Errorf("shutdown did not finish within %s", cfg.ShutdownTimeout)
		}
	}
	if err != nil {
		return err
	}
	log.Info(w.name+" stopped", "uptime_s", int(time.Since(start).Seconds()))
	return nil
}

// discardLogger is a logger that drops everything.
func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
