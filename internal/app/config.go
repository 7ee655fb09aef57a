package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/mail"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nurture-oss/nurture/internal/token"
)

// Config is everything a Nurture process can be configured with. Each field
// has a flag and a NURTURE_* environment variable (see settings); a value
// comes from the flag when given, else from the environment variable when
// set and non-empty, else from the default below. Environment variables and
// flags are read only in this package.
type Config struct {
	// DatabaseURL selects the store by scheme: postgres:// or postgresql://
	// (PostgreSQL) or sqlite://path (SQLite). Required by serve and migrate;
	// dev defaults to SQLite in DataDir.
	DatabaseURL string
	// NATSURL is the NATS server (nats://host:port). serve and publish use
	// nats://127.0.0.1:4222 when empty; dev starts an embedded server.
	NATSURL string
	// SMTPURL is the mail server: smtp://user:pass@host:port (STARTTLS when
	// offered) or smtps://… (implicit TLS). Required by serve; dev captures
	// mail instead when empty.
	SMTPURL string
	// SMTPPool is the number of SMTP connections each process keeps open
	// (each carries one message at a time).
	SMTPPool int
	// DispatchWorkers is how many outbox deliveries a process has under
	// way at once, from the hand-off to the receiver's answer: also the
	// most emails one crash can leave unknown without their having reached
	// the relay. Eight times as many items are kept in flight.
	DispatchWorkers int
	// SendRate caps marketing emails per second, per process (0: no cap).
	SendRate float64
	// DomainRate caps marketing emails per minute to one recipient domain,
	// per process (0: no cap). N workers allow N times both rates.
	DomainRate float64
	// HTTPAddr is the listen address of the HTTP server.
	HTTPAddr string
	// PublicURL is the base URL written into emails (tracking, unsubscribe).
	// Empty means "http://" + HTTPAddr.
	PublicURL string
	// ContentDir is the content directory (sequences, scoring, templates).
	ContentDir string
	// DataDir is where dev keeps its state.
	DataDir string
	// Secret keys signed links and tokens. Required by serve: one secret of
	// at least 16 bytes, or "id:secret,id:secret" pairs for rotation (the
	// first signs, all verify). dev generates one and keeps it in DataDir.
	Secret string
	// APITokens are the bearer tokens the ingest API accepts. None means the
	// ingest API is closed.
	APITokens []string
	// BounceTokens are the tokens POST /v1/bounces accepts (DSN, ARF and
	// SES reports). None: bounce intake is closed.
	BounceTokens []string
	// SESTopicARNs are the SNS topics whose SES notifications are accepted.
	SESTopicARNs []string

	// BatchSize is how many events a worker fetches and applies per
	// transaction, and how many due timers a sweep claims per transaction.
	BatchSize int
	// SweepInterval is how often due timers are swept.
	SweepInterval time.Duration
	// StreamMaxAge is how long the LEADS stream keeps messages.
	StreamMaxAge time.Duration
	// StreamReplicas is the replica count of the LEADS and NURTURE streams.
	StreamReplicas int
	// DuplicateWindow is how long JetStream remembers message ids to drop
	// republished events (the database dedupes forever regardless).
	DuplicateWindow time.Duration
	// ResendUnknown resends emails whose hand-off outcome is unknown (the
	// process died after handing the message over). Off by default: a rare
	// missing email is better than a duplicate.
	ResendUnknown bool
	// GiveUpAfter is how long transient delivery failures are retried.
	GiveUpAfter time.Duration
	// ShutdownTimeout bounds graceful shutdown (finish the batch, drain).
	ShutdownTimeout time.Duration
	// MaxBody limits HTTP request bodies (bytes).
	MaxBody int64

	// LogLevel is debug, info, warn or error; LogFormat is json or text.
	LogLevel  string
	LogFormat string

	// DKIM signing: all three set to sign, none to not sign.
	DKIMKeyFile  string
	DKIMSelector string
	DKIMDomain   string
	// From is the sender of emails whose template, sequence and nurture.yaml
	// set none.
	From string
	// PostalAddress is the sender's physical address printed in every
	// marketing email footer (CAN-SPAM).
	PostalAddress string
}

// Default values.
const (
	DefaultHTTPAddr        = "127.0.0.1:8080"
	DefaultNATSURL         = "nats://127.0.0.1:4222"
	DefaultDataDir         = "./.nurture"
	DefaultBatchSize       = 500
	DefaultSweepInterval   = time.Second
	DefaultStreamMaxAge    = 7 * 24 * time.Hour
	DefaultDuplicateWindow = 2 * time.Hour
	DefaultGiveUpAfter     = 24 * time.Hour
	DefaultShutdownTimeout = 30 * time.Second
	DefaultMaxBody         = 1 << 20
	DefaultSMTPPool        = 4
	DefaultDispatchWorkers = 8
)

// DefaultConfig returns a Config holding every default.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:        DefaultHTTPAddr,
		SMTPPool:        DefaultSMTPPool,
		DispatchWorkers: DefaultDispatchWorkers,
		DataDir:         DefaultDataDir,
		BatchSize:       DefaultBatchSize,
		SweepInterval:   DefaultSweepInterval,
		StreamMaxAge:    DefaultStreamMaxAge,
		DuplicateWindow: DefaultDuplicateWindow,
		StreamReplicas:  1,
		GiveUpAfter:     DefaultGiveUpAfter,
		ShutdownTimeout: DefaultShutdownTimeout,
		MaxBody:         DefaultMaxBody,
		LogLevel:        "info",
		LogFormat:       "json",
	}
}

// setting ties one Config field to its flag and environment variable.
type setting struct {
	flag  string
	env   string
	usage string
	// bind registers the flag on fs, pointing at the field of c, with the
	// field's current value as the default.
	bind func(fs *pflag.FlagSet, c *Config, name, usage string)
}

func strSetting(flag, env, usage string, field func(*Config) *string) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.StringVar(p, name, *p, u)
	}}
}

func intSetting(flag, env, usage string, field func(*Config) *int) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.IntVar(p, name, *p, u)
	}}
}

func int64Setting(flag, env, usage string, field func(*Config) *int64) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.Int64Var(p, name, *p, u)
	}}
}

func floatSetting(flag, env, usage string, field func(*Config) *float64) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.Float64Var(p, name, *p, u)
	}}
}

func durSetting(flag, env, usage string, field func(*Config) *time.Duration) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.DurationVar(p, name, *p, u)
	}}
}

func boolSetting(flag, env, usage string, field func(*Config) *bool) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.BoolVar(p, name, *p, u)
	}}
}

func listSetting(flag, env, usage string, field func(*Config) *[]string) setting {
	return setting{flag: flag, env: env, usage: usage, bind: func(fs *pflag.FlagSet, c *Config, name, u string) {
		p := field(c)
		fs.StringSliceVar(p, name, *p, u)
	}}
}

// settings lists every configurable value. docs/operators.md documents the
// same table; TestSettingsDocumented keeps them in step.
var settings = []setting{
	strSetting("database-url", "NURTURE_DATABASE_URL", "database: postgres://… or sqlite://path", func(c *Config) *string { return &c.DatabaseURL }),
	strSetting("nats-url", "NURTURE_NATS_URL", "NATS server (empty: "+DefaultNATSURL+")", func(c *Config) *string { return &c.NATSURL }),
	strSetting("smtp-url", "NURTURE_SMTP_URL", "mail server: smtp://user:pass@host:port or smtps://…", func(c *Config) *string { return &c.SMTPURL }),
	intSetting("smtp-pool", "NURTURE_SMTP_POOL", "SMTP connections kept open per process", func(c *Config) *int { return &c.SMTPPool }),
	intSetting("dispatch-workers", "NURTURE_DISPATCH_WORKERS", "outbox deliveries under way at once per process; also the most emails a crash can leave unknown unsent", func(c *Config) *int { return &c.DispatchWorkers }),
	floatSetting("send-rate", "NURTURE_SEND_RATE", "marketing emails per second, per process (0: no limit)", func(c *Config) *float64 { return &c.SendRate }),
	floatSetting("domain-rate", "NURTURE_DOMAIN_RATE", "marketing emails per minute to one recipient domain, per process (0: no limit)", func(c *Config) *float64 { return &c.DomainRate }),
	strSetting("http-addr", "NURTURE_HTTP_ADDR", "listen address of the HTTP server", func(c *Config) *string { return &c.HTTPAddr }),
	strSetting("public-url", "NURTURE_PUBLIC_URL", "base URL written into emails (empty: http:// + the HTTP address)", func(c *Config) *string { return &c.PublicURL }),
	strSetting("content-dir", "NURTURE_CONTENT_DIR", "content directory (sequences, scoring, templates)", func(c *Config) *string { return &c.ContentDir }),
	strSetting("data-dir", "NURTURE_DATA_DIR", "where dev keeps its state", func(c *Config) *string { return &c.DataDir }),
	strSetting("secret", "NURTURE_SECRET", "key for signed links and tokens (at least 16 bytes)", func(c *Config) *string { return &c.Secret }),
	listSetting("api-tokens", "NURTURE_API_TOKENS", "bearer tokens accepted by the ingest API, comma-separated (none: ingest API closed)", func(c *Config) *[]string { return &c.APITokens }),
	listSetting("bounce-tokens", "NURTURE_BOUNCE_TOKENS", "tokens accepted by the bounce intake POST /v1/bounces, comma-separated (none: closed)", func(c *Config) *[]string { return &c.BounceTokens }),
	listSetting("ses-topic-arns", "NURTURE_SES_TOPIC_ARNS", "SNS topic ARNs whose Amazon SES bounce and complaint notifications are accepted", func(c *Config) *[]string { return &c.SESTopicARNs }),
	intSetting("batch-size", "NURTURE_BATCH_SIZE", "events per fetch and transaction; due timers per sweep transaction", func(c *Config) *int { return &c.BatchSize }),
	durSetting("sweep-interval", "NURTURE_SWEEP_INTERVAL", "how often due timers are swept", func(c *Config) *time.Duration { return &c.SweepInterval }),
	durSetting("stream-max-age", "NURTURE_STREAM_MAX_AGE", "how long the LEADS stream keeps messages", func(c *Config) *time.Duration { return &c.StreamMaxAge }),
	intSetting("stream-replicas", "NURTURE_STREAM_REPLICAS", "replicas of the LEADS and NURTURE streams (3 on a NATS cluster)", func(c *Config) *int { return &c.StreamReplicas }),
	durSetting("duplicate-window", "NURTURE_DUPLICATE_WINDOW", "how long JetStream drops republished event ids", func(c *Config) *time.Duration { return &c.DuplicateWindow }),
	boolSetting("resend-unknown", "NURTURE_RESEND_UNKNOWN", "resend emails whose hand-off outcome is unknown", func(c *Config) *bool { return &c.ResendUnknown }),
	durSetting("give-up-after", "NURTURE_GIVE_UP_AFTER", "how long transient delivery failures are retried", func(c *Config) *time.Duration { return &c.GiveUpAfter }),
	durSetting("shutdown-timeout", "NURTURE_SHUTDOWN_TIMEOUT", "bound on graceful shutdown", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	int64Setting("max-body", "NURTURE_MAX_BODY", "largest HTTP request body in bytes", func(c *Config) *int64 { return &c.MaxBody }),
	strSetting("log-level", "NURTURE_LOG_LEVEL", "debug, info, warn or error", func(c *Config) *string { return &c.LogLevel }),
	strSetting("log-format", "NURTURE_LOG_FORMAT", "json or text", func(c *Config) *string { return &c.LogFormat }),
	strSetting("dkim-key-file", "NURTURE_DKIM_KEY_FILE", "PEM private key (RSA or Ed25519) to DKIM-sign emails", func(c *Config) *string { return &c.DKIMKeyFile }),
	strSetting("dkim-selector", "NURTURE_DKIM_SELECTOR", "DKIM selector (the s= tag)", func(c *Config) *string { return &c.DKIMSelector }),
	strSetting("dkim-domain", "NURTURE_DKIM_DOMAIN", "DKIM signing domain (the d= tag)", func(c *Config) *string { return &c.DKIMDomain }),
	strSetting("from", "NURTURE_FROM", "default sender, e.g. 'Acme <hello@acme.example>'", func(c *Config) *string { return &c.From }),
	strSetting("postal-address", "NURTURE_POSTAL_ADDRESS", "sender's postal address for email footers (CAN-SPAM)", func(c *Config) *string { return &c.PostalAddress }),
}

func lookupSetting(flag string) (setting, bool) {
	for _, s := range settings {
		if s.flag == flag {
			return s, true
		}
	}
	return setting{}, false
}

// envAnnotation marks a flag bound by configFlags with its variable.
const envAnnotation = "nurture_env"

// configFlags binds the named settings of c to cmd's flags and appends an
// "Environment" section to cmd's help. Call loadEnv after flags are parsed
// (in PreRunE/RunE) to fill what flags did not give.
func configFlags(cmd *cobra.Command, c *Config, flags ...string) {
	var env strings.Builder
	env.WriteString("\n\nEnvironment (a flag wins over its variable; an empty variable counts as unset):\n")
	for _, name := range flags {
		s, ok := lookupSetting(name)
		if !ok {
			panic("app: unknown setting " + name)
		}
		s.bind(cmd.Flags(), c, s.flag, s.usage+" ["+s.env+"]")
		_ = cmd.Flags().SetAnnotation(s.flag, envAnnotation, []string{s.env})
		fmt.Fprintf(&env, "  %-26s --%s\n", s.env, s.flag)
	}
	cmd.Long = strings.TrimRight(cmd.Long, "\n") + strings.TrimRight(env.String(), "\n")
}

// loadEnv sets every bound setting whose flag was not given from its
// environment variable (via getenv), using the flag's own parser.
func loadEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var errs []error
	for _, s := range settings {
		f := fs.Lookup(s.flag)
		if f == nil || f.Changed || len(f.Annotations[envAnnotation]) == 0 {
			continue
		}
		v := strings.TrimSpace(getenv(s.env))
		if v == "" {
			continue
		}
		if err := fs.Set(s.flag, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.env, err))
		}
	}
	return errors.Join(errs...)
}

type envKey struct{}

// withEnv makes commands run under ctx read environment variables through
// getenv instead of the process environment (tests).
func withEnv(ctx context.Context, getenv func(string) string) context.Context {
	return context.WithValue(ctx, envKey{}, getenv)
}

// envFrom returns the environment commands under ctx read.
func envFrom(ctx context.Context) func(string) string {
	if ctx != nil {
		if f, ok := ctx.Value(envKey{}).(func(string) string); ok {
			return f
		}
	}
	return os.Getenv
}

// loadConfig completes c for cmd after flag parsing: environment variables
// for flags not given, then validate.
func loadConfig(cmd *cobra.Command, c *Config) error {
	if err := loadEnv(cmd.Flags(), envFrom(cmd.Context())); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	return nil
}

// signer returns the token signer for Secret.
func (c *Config) signer() (*token.Signer, error) {
	keys, err := token.ParseKeys(c.Secret)
	if err != nil {
		return nil, err
	}
	return token.New(keys...)
}

// resolveNATSURL returns the NATS URL with its default applied.
func (c *Config) resolveNATSURL() string {
	if c.NATSURL == "" {
		return DefaultNATSURL
	}
	return c.NATSURL
}

// resolvePublicURL returns the public base URL with its default applied,
// without a trailing slash.
func (c *Config) resolvePublicURL() string {
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	return "http://" + c.HTTPAddr
}

// validate checks every value set, collecting all problems.
func (c *Config) validate() error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	if c.DatabaseURL != "" {
		if _, _, err := storeKind(c.DatabaseURL); err != nil {
			bad("NURTURE_DATABASE_URL", "%v", err)
		}
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if pu, err := url.Parse(strings.TrimSpace(u)); err != nil || pu.Host == "" {
				bad("NURTURE_NATS_URL", "%q is not a URL like nats://host:4222", u)
			}
		}
	}
	if c.SMTPURL != "" {
		u, err := url.Parse(c.SMTPURL)
		switch {
		case err != nil:
			bad("NURTURE_SMTP_URL", "not a URL (want smtp://user:pass@host:port)")
		case u.Scheme != "smtp" && u.Scheme != "smtps":
			bad("NURTURE_SMTP_URL", "scheme %q, want smtp or smtps", u.Scheme)
		case u.Hostname() == "":
			bad("NURTURE_SMTP_URL", "no host")
		}
	}
	if c.SMTPPool < 1 || c.SMTPPool > 100 {
		bad("NURTURE_SMTP_POOL", "%d, want 1 to 100", c.SMTPPool)
	}
	if c.DispatchWorkers < 1 || c.DispatchWorkers > 256 {
		bad("NURTURE_DISPATCH_WORKERS", "%d, want 1 to 256", c.DispatchWorkers)
	}
	if c.SendRate < 0 || math.IsNaN(c.SendRate) || math.IsInf(c.SendRate, 0) {
		bad("NURTURE_SEND_RATE", "%v, want 0 (no limit) or a positive number of emails per second", c.SendRate)
	}
	if c.DomainRate < 0 || math.IsNaN(c.DomainRate) || math.IsInf(c.DomainRate, 0) {
		bad("NURTURE_DOMAIN_RATE", "%v, want 0 (no limit) or a positive number of emails per minute", c.DomainRate)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("NURTURE_HTTP_ADDR", "%q is not host:port", c.HTTPAddr)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("NURTURE_PUBLIC_URL", "%q is not an http(s) URL", c.PublicURL)
		}
	}
	if c.Secret != "" {
		if _, err := c.signer(); err != nil {
			bad("NURTURE_SECRET", "%v (use at least 16 random bytes, e.g. `openssl rand -hex 32`)", err)
		}
	}
	for i, tok := range c.APITokens {
		if len(strings.TrimSpace(tok)) < 8 {
			bad("NURTURE_API_TOKENS", "token %d is shorter than 8 characters", i+1)
		}
	}
	for i, tok := range c.BounceTokens {
		if len(strings.TrimSpace(tok)) < 8 {
			bad("NURTURE_BOUNCE_TOKENS", "token %d is shorter than 8 characters", i+1)
		}
	}
	for _, arn := range c.SESTopicARNs {
		if !strings.HasPrefix(arn, "arn:") {
			bad("NURTURE_SES_TOPIC_ARNS", "%q is not an ARN (arn:aws:sns:region:account:topic)", arn)
		}
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		bad("NURTURE_BATCH_SIZE", "%d, want 1 to 10000", c.BatchSize)
	}
	if c.SweepInterval < 10*time.Millisecond {
		bad("NURTURE_SWEEP_INTERVAL", "%s, want at least 10ms", c.SweepInterval)
	}
	if c.StreamMaxAge <= 0 {
		bad("NURTURE_STREAM_MAX_AGE", "%s, want a positive duration", c.StreamMaxAge)
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		bad("NURTURE_STREAM_REPLICAS", "%d, want 1 to 5", c.StreamReplicas)
	}
	if c.DuplicateWindow <= 0 {
		bad("NURTURE_DUPLICATE_WINDOW", "%s, want a positive duration", c.DuplicateWindow)
	} else if c.StreamMaxAge > 0 && c.DuplicateWindow > c.StreamMaxAge {
		bad("NURTURE_DUPLICATE_WINDOW", "%s is longer than NURTURE_STREAM_MAX_AGE %s", c.DuplicateWindow, c.StreamMaxAge)
	}
	if c.GiveUpAfter <= 0 {
		bad("NURTURE_GIVE_UP_AFTER", "%s, want a positive duration", c.GiveUpAfter)
	}
	if c.ShutdownTimeout <= 0 {
		bad("NURTURE_SHUTDOWN_TIMEOUT", "%s, want a positive duration", c.ShutdownTimeout)
	}
	if c.MaxBody < 1024 {
		bad("NURTURE_MAX_BODY", "%d, want at least 1024 bytes", c.MaxBody)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("NURTURE_LOG_LEVEL", "%v", err)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("NURTURE_LOG_FORMAT", "%q, want json or text", c.LogFormat)
	}
	dkim := []string{c.DKIMKeyFile, c.DKIMSelector, c.DKIMDomain}
	set := 0
	for _, v := range dkim {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != len(dkim) {
		bad("NURTURE_DKIM_KEY_FILE", "DKIM needs NURTURE_DKIM_KEY_FILE, NURTURE_DKIM_SELECTOR and NURTURE_DKIM_DOMAIN together")
	}
	if c.From != "" {
		if _, err := mail.ParseAddress(c.From); err != nil {
			bad("NURTURE_FROM", "%q is not an address: %v", c.From, err)
		}
	}
	return errors.Join(errs...)
}

// require reports the named settings that are empty, as one error.
func (c *Config) require(flags ...string) error {
	var missing []string
	for _, name := range flags {
		var empty bool
		switch name {
		case "database-url":
			empty = c.DatabaseURL == ""
		case "smtp-url":
			empty = c.SMTPURL == ""
		case "content-dir":
			empty = c.ContentDir == ""
		case "secret":
			empty = c.Secret == ""
		default:
			panic("app: require: unhandled setting " + name)
		}
		if empty {
			s, _ := lookupSetting(name)
			missing = append(missing, s.env+" (--"+s.flag+")")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("missing configuration: %s", strings.Join(missing, ", "))
}

// storeKind splits a database URL into the store kind ("postgres" or
// "sqlite") and what that store's Open takes.
func storeKind(raw string) (kind, arg string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", "", fmt.Errorf("%q has no scheme: want postgres://… or sqlite://path", redactURL(raw))
	}
	switch strings.ToLower(scheme) {
	case "postgres", "postgresql":
		return "postgres", raw, nil
	case "sqlite", "sqlite3":
		if rest == "" {
			return "", "", errors.New("sqlite:// needs a path, e.g. sqlite://./nurture.db")
		}
		return "sqlite", rest, nil
	default:
		return "", "", fmt.Errorf("scheme %q is not supported: want postgres://… or sqlite://path", scheme)
	}
}

// redactURL hides the password of a URL for messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q, want debug, info, warn or error", s)
	}
	return l, nil
}

// newLogger builds the process logger from c.
func (c *Config) newLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// contextWithTimeout is context.WithTimeout, with d <= 0 meaning no timeout.
func contextWithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
