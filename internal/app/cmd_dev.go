package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	natsadapter "github.com/nurture-oss/nurture/adapters/nats"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/examples"
	"github.com/nurture-oss/nurture/internal/demo"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/notify"
	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/runner"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/sequences"
)

// devSettings are the shared settings dev reads.
var devSettings = []string{
	"data-dir", "content-dir", "http-addr", "public-url", "database-url", "nats-url", "smtp-url", "smtp-pool", "send-rate", "domain-rate", "secret",
	"api-tokens", "from", "postal-address", "dkim-key-file", "dkim-selector", "dkim-domain", "batch-size", "sweep-interval", "shutdown-timeout", "log-level", "log-format",
}

// Demo defaults.
const (
	// DefaultDemoSpeed plays two virtual hours per wall second: a two-week
	// trial in under three minutes.
	DefaultDemoSpeed = 7200
	DefaultDemoLeads = 12
	// DefaultDevNATSPort is the embedded server's port (any free port when
	// it is taken).
	DefaultDevNATSPort = 4222
)

// devRepFrom sends rep emails in dev when the content and NURTURE_FROM name
// no sender.
const devRepFrom = "Nurture <nurture@localhost>"

// devOptions are dev's own flags.
type devOptions struct {
	demo     bool
	speed    float64
	seed     int64
	leads    int
	natsPort int
}

func newDevCmd() *cobra.Command {
	cfg := DefaultConfig()
	cfg.LogFormat, cfg.LogLevel = "text", "warn"
	cfg.ShutdownTimeout = 10 * time.Second
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process on embedded defaults (the first command to try)",
		Long: `Run Nurture in one process with nothing to install: an embedded NATS
JetStream server, a SQLite database and captured (not sent) mail, all kept in
the data directory (./.nurture), loaded with the example content (./examples,
or the copy built into the binary when that directory does not exist).

It serves the captured-mail page, lead pages, the ingest API and the
tracking links on the HTTP address, and prints, for a person, what happens
to each lead: enrollments, emails, score changes, escalations.

--demo publishes a realistic stream of lead events (deterministic for
--seed) on a sped-up clock (--speed, default 7200: two virtual hours per
second), so the example sequences play out in a few minutes: sign-ups, page
views, webinars, opens and clicks through the real tracking links, score
changes and escalations to reps. The clock is kept in the data directory.

Stop with Ctrl-C; run again on the same data directory and it continues
where it stopped: the outbox never sends a step's email twice.

Each embedded part can be swapped for a real one: --database-url (e.g.
PostgreSQL), --nats-url (an external NATS server instead of the embedded
one), --smtp-url (send mail instead of capturing it).

Without --log-format json, logs are warnings and errors only (as text on
stderr); the console lines go to stdout.`,
		Example: `  nurture dev --demo                 # watch leads flow; open http://127.0.0.1:8080/
  nurture dev --demo --speed 20000   # faster
  nurture dev                        # no demo: send your own events
  nurture dev --data-dir /tmp/nurture-try --http-addr 127.0.0.1:9090`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			getenv := envFrom(cmd.Context())
			if err := loadConfig(cmd, &cfg); err != nil {
				return err
			}
			if cfg.LogFormat == "json" && !cmd.Flags().Changed("log-level") && getenv("NURTURE_LOG_LEVEL") == "" {
				cfg.LogLevel = "info"
			}
			if o.speed < 0 || o.speed > 1e6 {
				return fmt.Errorf("--speed %g: want 1 to 1000000", o.speed)
			}
			if o.speed == 0 {
				o.speed = 1
				if o.demo {
					o.speed = DefaultDemoSpeed
				}
			}
			return dev(cmd.Context(), cfg, o, devDeps{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), getenv: getenv})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.demo, "demo", false, "publish a realistic stream of demo lead events")
	f.Float64Var(&o.speed, "speed", 0, fmt.Sprintf("clock speed: virtual seconds per second (default 1, or %d with --demo)", DefaultDemoSpeed))
	f.Int64Var(&o.seed, "seed", 1, "seed of the demo stream (same seed, same leads and events)")
	f.IntVar(&o.leads, "leads", DefaultDemoLeads, "number of demo leads")
	f.IntVar(&o.natsPort, "nats-port", DefaultDevNATSPort, "port of the embedded NATS server (-1: any free port; a taken port falls back to any)")
	configFlags(cmd, &cfg, devSettings...)
	return cmd
}

// devDeps are dev's process-level inputs.
type devDeps struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// listening, when set, receives the HTTP address once bound.
	listening func(addr string)
}

// dev runs everything in one process until ctx ends.
func dev(ctx context.Context, cfg Config, o devOptions, deps devDeps) (err error) {
	start := time.Now()
	log := cfg.newLogger(deps.stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("dev: data directory: %w", err)
	}
	dataDir := filepath.Clean(cfg.DataDir)

	if cfg.Secret == "" {
		if cfg.Secret, err = keptSecret(filepath.Join(dataDir, "secret"), 32); err != nil {
			return fmt.Errorf("dev: %w", err)
		}
	}
	signer, err := cfg.signer()
	if err != nil {
		return fmt.Errorf("dev: NURTURE_SECRET: %w", err)
	}
	tokenNote := "from NURTURE_API_TOKENS"
	if len(cfg.APITokens) == 0 {
		tok, err := keptSecret(filepath.Join(dataDir, "api-token"), 16)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		cfg.APITokens = []string{tok}
		tokenNote = "kept in " + filepath.Join(dataDir, "api-token")
	}

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		dbURL = "sqlite://" + filepath.Join(dataDir, "nurture.db")
	}
	st, err := openStore(ctx, dbURL, log)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("store", st.Close())) }()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("dev: migrate: %w", err)
	}

	bundle, contentName, err := devContent(ctx, cfg.ContentDir, st, time.Now().UTC())
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	var first time.Time
	if o.demo {
		first = demoMorning(time.Now(), bundle.Calendars)
	}
	clock, err := newDevClock(filepath.Join(dataDir, "clock"), o.speed, first)
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}

	natsURL, natsNote := cfg.NATSURL, "external"
	if natsURL == "" {
		port := o.natsPort
		taken := port > 0 && !portFree(port)
		if taken {
			port = -1
		}
		emb, err := natsadapter.StartEmbedded(natsadapter.Options{StoreDir: filepath.Join(dataDir, "nats"), Port: port})
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		defer emb.Shutdown()
		natsURL, natsNote = emb.URL(), "embedded, data in "+filepath.Join(dataDir, "nats")
		if taken {
			natsNote += fmt.Sprintf("; port %d was taken", o.natsPort)
		}
	}
	conn, err := natsadapter.Connect(ctx, natsadapter.Options{
		URL: natsURL, Name: "nurture-dev", Duplicates: cfg.DuplicateWindow,
		LeadsMaxAge: cfg.StreamMaxAge, NurtureMaxAge: cfg.StreamMaxAge,
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	defer func() { err = errors.Join(err, closeErr("nats", conn.Close())) }()
	if err := conn.EnsureStreams(ctx); err != nil {
		return fmt.Errorf("dev: %w", err)
	}

	publicURL := cfg.resolvePublicURL()
	dkim, err := cfg.dkim()
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	composer, err := smtp.NewComposer(smtp.ComposeConfig{
		PublicURL: publicURL, Signer: signer, Renderer: bundleRenderer{b: bundle},
		DefaultFrom: firstSet(cfg.From, bundle.Project.From), PostalAddress: cfg.PostalAddress, Now: clock.Now, DKIM: dkim,
	})
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var (
		mail     outbox.Handler
		repMail  notify.Mailer
		box      *mailBox
		mailNote string
	)
	if cfg.SMTPURL != "" {
		dial, err := smtp.ParseURL(cfg.SMTPURL)
		if err != nil {
			return fmt.Errorf("dev: NURTURE_SMTP_URL: %w", err)
		}
		mailer, err := smtp.New(cfg.mailerConfig(dial, log, nil), composer)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		defer func() { err = errors.Join(err, closeErr("smtp", mailer.Close())) }()
		mail = mailer
		// The same rep mailer as serve (pool, classification, DKIM).
		repMail = newRepMailer(mailer, firstSet(repFrom(bundle, cfg), devRepFrom), dkim, clock.Now)
		mailNote = "sent to " + redactURL(cfg.SMTPURL)
	} else {
		mailDir := filepath.Join(dataDir, "mail")
		capture, err := smtp.NewCapture(mailDir, composer)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		repDir := filepath.Join(mailDir, "reps")
		reps, err := smtp.NewCapture(repDir, nil)
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		mail = capture
		repMail = &repCapture{dir: repDir, now: clock.Now, from: firstSet(repFrom(bundle, cfg), devRepFrom)}
		box = &mailBox{marketing: capture, reps: reps}
		mailNote = "captured in " + mailDir
	}

	var reps []engine.Rep
	if sc := bundle.Content.Scoring; sc != nil {
		reps = sc.Routing.Reps
	}
	con := newConsole(deps.stdout, st, reps)
	observers := []runner.Observer{con}

	var dm *demo.Demo
	if o.demo {
		demoStart, err := demoAnchor(filepath.Join(dataDir, "demo.json"), o.seed, clock.Now())
		if err != nil {
			return fmt.Errorf("dev: %w", err)
		}
		dm = demo.New(demo.Config{
			Seed: o.seed, Leads: o.leads, Now: clock.Now, Start: demoStart,
			Publisher: conn.Publisher("demo"), Out: deps.stdout, Logger: log, Say: con.say,
		})
		observers = append(observers, dm)
	}

	mb := &httpapi.MailboxConfig{
		Leads: st, Views: leadview.NewBuilder(publicURL, bundle.Content.Scoring), Now: clock.Now,
		Refresh: 5 * time.Second,
		Banner:  fmt.Sprintf("nurture dev: content %s, data in %s, clock ×%s.", contentName, dataDir, speedText(o.speed)),
	}
	if box != nil {
		mb.Mail = box
	}

	g, gctx := errgroup.WithContext(ctx)
	bound := make(chan string, 1)
	g.Go(func() error {
		return runWorker(gctx, worker{
			cfg: cfg, log: log, st: st, bundle: bundle, conn: conn, signer: signer, composer: composer,
			mail: mail, repMail: repMail, getenv: deps.getenv, reg: reg, now: clock.Now,
			observer: multiObserver(observers), mailbox: mb, openPages: loopback(cfg.HTTPAddr), name: "dev", quietChannels: true,
			tune: func(rc *runner.Config) { scaleRunner(rc, o.speed) },
			listening: func(addr string) {
				// The banner is out before the server answers its first
				// request: whoever sees /readyz answer can read it.
				printBanner(deps.stdout, bannerInfo{
					base: "http://" + addr, dataDir: dataDir, content: contentName, sequences: len(bundle.Content.Current),
					nats: natsURL, natsNote: natsNote, mail: mailNote, hasMailbox: box != nil,
					token: cfg.APITokens[0], tokenNote: tokenNote, speed: o.speed, now: clock.Now(),
					demo: o.demo, leads: o.leads, seed: o.seed, startup: time.Since(start),
					channels: buildChannels(bundle.Notify, deps.getenv, repMail != nil), captured: box != nil,
					local: loopback(addr),
				})
				bound <- addr
				if deps.listening != nil {
					deps.listening(addr)
				}
			},
		})
	})
	g.Go(func() error { return clock.run(gctx) })
	g.Go(func() error {
		var addr string
		select {
		case <-gctx.Done():
			return nil
		case addr = <-bound:
		}
		base := "http://" + addr
		if dm == nil {
			return nil
		}
		if box != nil {
			dm.SetEngager(demo.NewHTTPEngager(box, base, cfg.APITokens[0]))
		}
		return dm.Run(gctx)
	})
	err = g.Wait()
	// Saved last, so a restart never starts before anything this run did.
	return errors.Join(err, clock.save())
}

// multiObserver tells every observer, in order.
type multiObserver []runner.Observer

func (m multiObserver) Observe(lead string, at time.Time, effects []engine.Effect) {
	for _, o := range m {
		o.Observe(lead, at, effects)
	}
}

// scaleRunner stretches the runner's durations that are measured on its
// clock, so they keep their wall-time meaning on a sped-up clock: a lease
// still lasts two real minutes, retries back off in real seconds, and
// processed event ids are kept for real days.
func scaleRunner(rc *runner.Config, speed float64) {
	if speed <= 1 {
		return
	}
	rc.Lease = scaleDur(2*time.Minute, speed)
	rc.RetryBase = scaleDur(10*time.Second, speed)
	rc.RetryMax = scaleDur(10*time.Minute, speed)
	rc.GiveUp = scaleDur(rc.GiveUp, speed)
	rc.TickRetry = scaleDur(time.Minute, speed)
	rc.EventRetention = scaleDur(rc.EventRetention, speed)
}

// devContent loads the content directory dir, or, when dir is empty, the
// examples directory when it exists and the copy built into the binary
// otherwise; it records the sequence versions like serve does.
func devContent(ctx context.Context, dir string, st versionStore, now time.Time) (*sequences.Bundle, string, error) {
	if dir == "" {
		if fi, err := os.Stat("examples"); err == nil && fi.IsDir() {
			dir = "examples"
		}
	}
	if dir != "" {
		b, err := loadContent(ctx, dir, st, now)
		return b, dir, err
	}
	const name = "built-in copy of the examples"
	b, err := sequences.LoadFS(examples.FS)
	if err != nil {
		return nil, name, fmt.Errorf("%s: %w", name, err)
	}
	if err := publishVersions(ctx, b, "the "+name, st, now); err != nil {
		return nil, name, err
	}
	return b, name, nil
}

// demoAnchor returns the demo's time zero for seed, kept in path so a
// restart continues the same script; a new seed starts a new script at now.
func demoAnchor(path string, seed int64, now time.Time) (time.Time, error) {
	var saved struct {
		Seed  int64     `json:"seed"`
		Start time.Time `json:"start"`
	}
	b, err := os.ReadFile(path)
	if err == nil && json.Unmarshal(b, &saved) == nil && saved.Seed == seed && !saved.Start.IsZero() {
		return saved.Start, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("read %s: %w", path, err)
	}
	saved.Seed, saved.Start = seed, now.UTC()
	b, _ = json.Marshal(saved)
	if err := os.WriteFile(path, b, 0o640); err != nil {
		return time.Time{}, fmt.Errorf("write %s: %w", path, err)
	}
	return saved.Start, nil
}

// loopback reports whether a listen address only accepts local
// connections. Lead pages (personal data) are open without a token only
// then.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = ln.Close()
	return true
}

func speedText(speed float64) string {
	return strconv.FormatFloat(speed, 'f', -1, 64)
}

type bannerInfo struct {
	base, dataDir, content string
	sequences              int
	nats, natsNote, mail   string
	hasMailbox             bool
	token, tokenNote       string
	speed                  float64
	now                    time.Time
	demo                   bool
	leads                  int
	seed                   int64
	startup                time.Duration
	channels               escalationChannels
	captured               bool
	local                  bool
}

func printBanner(w io.Writer, b bannerInfo) {
	var s strings.Builder
	fmt.Fprintf(&s, "\nNurture dev is running (started in %s). Open %s/\n\n", b.startup.Round(10*time.Millisecond), b.base)
	if b.hasMailbox {
		fmt.Fprintf(&s, "  Captured mail  %s/mail\n", b.base)
	}
	fmt.Fprintf(&s, "  Leads          %s/leads\n", b.base)
	fmt.Fprintf(&s, "  Ingest API     POST %s/v1/events  (Authorization: Bearer %s, %s)\n", b.base, b.token, b.tokenNote)
	fmt.Fprintf(&s, "  NATS           %s (%s)\n", b.nats, b.natsNote)
	fmt.Fprintf(&s, "  Mail           %s\n", b.mail)
	fmt.Fprintf(&s, "  Content        %s (%d sequences)\n", b.content, b.sequences)
	var esc []string
	for _, ch := range b.channels.channels {
		switch {
		case ch.Kind == store.KindNotifyEmail && b.captured:
			esc = append(esc, "rep email (captured)")
		case ch.Kind == store.KindNotifyEmail:
			esc = append(esc, "rep email")
		default:
			esc = append(esc, strings.TrimPrefix(ch.Kind, "notify.")+" "+ch.Name)
		}
	}
	if len(esc) == 0 {
		esc = append(esc, "none")
	}
	line := strings.Join(esc, ", ")
	if len(b.channels.disabled) > 0 {
		var off []string
		for _, d := range b.channels.disabled {
			name, _, _ := strings.Cut(d, ":")
			off = append(off, name)
		}
		line += "; off until their variables are set (see scoring.yaml): " + strings.Join(off, ", ")
	}
	fmt.Fprintf(&s, "  Escalations    %s\n", line)
	fmt.Fprintf(&s, "  Data           %s\n", b.dataDir)
	clock := "real time"
	if b.speed != 1 {
		clock = fmt.Sprintf("×%s (one real second is %s)", speedText(b.speed), scaleDur(time.Second, b.speed))
	}
	fmt.Fprintf(&s, "  Clock          %s, now %s\n", clock, b.now.Format("Mon Jan 02 15:04 MST"))
	if b.demo {
		fmt.Fprintf(&s, "  Demo           %d leads, seed %d\n", b.leads, b.seed)
	}
	if !b.local {
		s.WriteString("\nThe HTTP address is not loopback: lead pages need the API token (?t= links or a bearer\ntoken), but the captured-mail and lead list pages have no login. Keep it off public networks.\n")
	}
	s.WriteString("\nCtrl-C stops; run it again on the same data directory to continue.\n\n")
	_, _ = io.WriteString(w, s.String())
}
