package smtp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"

	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/redact"
	"github.com/nurture-oss/nurture/internal/store"
)

// Dial holds what an SMTP URL says.
type Dial struct {
	Host     string
	Port     int
	Username string
	Password string
	// ImplicitTLS is smtps:// (TLS from the first byte, port 465 default).
	ImplicitTLS bool
	// StartTLS policy for smtp://: "required", "opportunistic" (default) or
	// "none".
	StartTLS           string
	InsecureSkipVerify bool
	// HELO name; default: the local host name.
	HELO string
}

// ParseURL reads an SMTP URL:
//
//	smtp://user:pass@host:port?starttls=required|opportunistic|none
//	smtps://user:pass@host:port      (implicit TLS)
//
// Other query parameters: insecure_skip_verify=true (tests only),
// helo=<name>. User and password are URL-decoded. Default ports: 587 for
// smtp (25 is for server-to-server relay), 465 for smtps.
func ParseURL(raw string) (Dial, error) {
	var d Dial
	u, err := url.Parse(raw)
	if err != nil {
		return d, fmt.Errorf("parse SMTP URL: %w", redactURLError(err))
	}
	switch u.Scheme {
	case "smtp":
		d.Port = 587
	case "smtps":
		d.Port, d.ImplicitTLS = 465, true
	default:
		return d, fmt.Errorf("parse SMTP URL: scheme %q, want smtp or smtps", u.Scheme)
	}
	d.Host = u.Hostname()
	if d.Host == "" {
		return d, errors.New("parse SMTP URL: missing host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return d, fmt.Errorf("parse SMTP URL: bad port %q", p)
		}
		d.Port = n
	}
	if u.User != nil {
		d.Username = u.User.Username()
		d.Password, _ = u.User.Password()
	}
	q := u.Query()
	d.StartTLS = "opportunistic"
	if v := q.Get("starttls"); v != "" {
		switch v {
		case "required", "opportunistic", "none":
			d.StartTLS = v
		default:
			return d, fmt.Errorf("parse SMTP URL: starttls=%q, want required, opportunistic or none", v)
		}
	}
	if v := q.Get("insecure_skip_verify"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return d, fmt.Errorf("parse SMTP URL: insecure_skip_verify=%q: %w", v, err)
		}
		d.InsecureSkipVerify = b
	}
	d.HELO = q.Get("helo")
	return d, nil
}

// redactURLError drops the URL (which may hold a password) from a parse error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Config configures the SMTP mailer.
type Config struct {
	Dial Dial
	// Pool is the number of SMTP connections kept open (default 4). Each
	// carries one message at a time.
	Pool int
	// Timeout bounds dialing and each SMTP command (default 30s).
	Timeout time.Duration
	// IdleCheck: a connection idle for longer is checked with NOOP before
	// use (default 10s). MaxIdle: one idle for longer is closed and
	// re-dialled (default 60s).
	IdleCheck, MaxIdle time.Duration
	Throttle           ThrottleConfig
	Logger             *slog.Logger
	// Observe, when set, is called after every delivery attempt with its
	// outcome: "sent", "transient", "permanent", "suppressed", "policy"
	// (5.7.x), "unknown", "deferred". Wire it to a metric.
	Observe func(outcome string)
}

// Mailer sends email outbox items over SMTP with go-mail. It implements
// outbox.Handler for store.KindEmail. Safe for concurrent use: up to
// Config.Pool messages are in flight at once.
type Mailer struct {
	cfg      Config
	compose  *Composer
	client   *gomail.Client
	slots    chan *conn
	throttle *Throttle
	log      *slog.Logger

	closeOnce sync.Once
}

type conn struct {
	c        *gosmtp.Client
	lastUsed time.Time
}

// New returns a Mailer. Connections are dialled lazily.
func New(cfg Config, compose *Composer) (*Mailer, error) {
	if compose == nil {
		return nil, errors.New("smtp: composer is required")
	}
	if cfg.Pool <= 0 {
		cfg.Pool = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.IdleCheck <= 0 {
		cfg.IdleCheck = 10 * time.Second
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string) {}
	}
	d := cfg.Dial
	opts := []gomail.Option{
		gomail.WithPort(d.Port),
		gomail.WithTimeout(cfg.Timeout),
		// Liveness is checked here (IdleCheck), not with a NOOP per message.
		gomail.WithoutNoop(),
	}
	if d.ImplicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else {
		switch d.StartTLS {
		case "required":
			opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
		case "none":
			opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
		default:
			opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
		}
	}
	if d.InsecureSkipVerify {
		// #nosec G402 -- opt-in for tests against self-signed servers.
		opts = append(opts, gomail.WithTLSConfig(insecureTLS(d.Host)))
	}
	if d.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(d.Username), gomail.WithPassword(d.Password))
	}
	if d.HELO != "" {
		opts = append(opts, gomail.WithHELO(d.HELO))
	}
	client, err := gomail.NewClient(d.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp: new client for %s: %w", d.Host, err)
	}
	m := &Mailer{
		cfg: cfg, compose: compose, client: client,
		slots:    make(chan *conn, cfg.Pool),
		throttle: NewThrottle(cfg.Throttle),
		log:      cfg.Logger,
	}
	for range cfg.Pool {
		m.slots <- &conn{}
	}
	return m, nil
}

// Close quits every idle connection. Sends in flight finish on their own
// connection, which is then closed when returned.
func (m *Mailer) Close() error {
	m.closeOnce.Do(func() {
		for range cap(m.slots) {
			c := <-m.slots
			if c.c != nil {
				_ = c.c.Quit()
				_ = c.c.Close()
				c.c = nil
			}
			// Put back a dead slot so concurrent Deliver calls fail fast
			// by dialling (and Close stays idempotent).
			defer func(c *conn) { m.slots <- c }(c)
		}
	})
	return nil
}

// Deliver implements outbox.Handler.
func (m *Mailer) Deliver(ctx context.Context, item store.OutboxItem) error {
	return m.DeliverChecked(ctx, item, nil)
}

// DeliverChecked implements outbox.CheckedHandler: check runs after the
// throttle wait and the composition, right before the message is sent.
func (m *Mailer) DeliverChecked(ctx context.Context, item store.OutboxItem, check func(ctx context.Context) error) error {
	if item.Kind != store.KindEmail {
		return fmt.Errorf("smtp: deliver item %d: kind %q: %w", item.ID, item.Kind, outbox.ErrPermanent)
	}
	p, err := DecodePayload(item.Payload)
	if err != nil {
		m.cfg.Observe("permanent")
		return fmt.Errorf("smtp: deliver item %d: %w: %w", item.ID, err, outbox.ErrPermanent)
	}
	if err := m.throttle.Wait(ctx, domainOf(p.To)); err != nil {
		if _, ok := outbox.DeferUntil(err); ok {
			m.cfg.Observe("deferred")
		}
		return fmt.Errorf("smtp: deliver send %s: %w", p.Send.SendID, err)
	}
	// Composed before the check: the check takes one of the dispatcher's
	// delivery slots and marks the hand-off, and the slot is held until
	// the send ends, so the handed-off window is the SMTP exchange alone.
	msg, err := m.compose.Compose(ctx, p)
	if err != nil {
		m.cfg.Observe("permanent")
		return fmt.Errorf("smtp: deliver send %s: %w: %w", p.Send.SendID, err, outbox.ErrPermanent)
	}
	if check != nil {
		if err := check(ctx); err != nil {
			return err
		}
	}
	err = m.Send(ctx, msg)
	outcome := outcomeOf(err)
	m.cfg.Observe(outcome)
	switch outcome {
	case "policy":
		m.log.Warn("smtp policy rejection (5.7.x): check SPF/DKIM/DMARC and sender reputation",
			"send_id", redact.Email(p.Send.SendID), "lead_id", redact.Email(p.Lead), "sequence", p.Send.Sequence, "step", p.Send.Step, "error", redact.Error(err))
	case "unknown":
		m.log.Warn("smtp connection lost after end of data: outcome unknown",
			"send_id", redact.Email(p.Send.SendID), "lead_id", redact.Email(p.Lead), "error", redact.Error(err))
	}
	if err != nil {
		return fmt.Errorf("smtp: deliver send %s: %w", p.Send.SendID, err)
	}
	return nil
}

func outcomeOf(err error) string {
	var se *outbox.SuppressError
	switch {
	case err == nil:
		return "sent"
	case errors.As(err, &se):
		return "suppressed"
	case errors.Is(err, errPolicy):
		return "policy"
	}
	switch outbox.Classify(err) {
	case outbox.Permanent:
		return "permanent"
	case outbox.Unknown:
		return "unknown"
	}
	return "transient"
}

// errPolicy marks 5.7.x rejections (authentication, policy, reputation):
// permanent, not the recipient's fault, so the address is not suppressed.
var errPolicy = errors.New("rejected by policy (5.7.x)")

// Send sends a composed message on a pooled connection and classifies the
// result: nil (accepted), *outbox.SuppressError (5.1.x), outbox.ErrPermanent
// (other 5xx), outbox.ErrUnknown (connection lost after the end of data) or
// a plain (transient) error.
func (m *Mailer) Send(ctx context.Context, c *Composed) error {
	var slot *conn
	select {
	case slot = <-m.slots:
	case <-ctx.Done():
		return fmt.Errorf("wait for SMTP connection: %w", ctx.Err())
	}
	defer func() { m.slots <- slot }()

	for attempt := 0; ; attempt++ {
		reused := slot.c != nil
		if err := m.ready(ctx, slot); err != nil {
			return fmt.Errorf("dial SMTP %s:%d: %w", m.cfg.Dial.Host, m.cfg.Dial.Port, err)
		}
		// The context bounds the whole exchange: on cancel the connection
		// is closed, which fails whatever command is in flight.
		sc := slot.c
		stop := context.AfterFunc(ctx, func() { _ = sc.Close() })
		err := m.client.SendWithSMTPClient(sc, c.Msg)
		stopped := stop()
		slot.lastUsed = time.Now()
		if !stopped || (err != nil && connBroken(err)) {
			_ = sc.Close()
			slot.c = nil
		}
		if err != nil && stopped && reused && attempt == 0 && staleConn(err) {
			// The server closed a pooled connection while it sat idle;
			// nothing of this message was sent. Redial once.
			continue
		}
		cerr := classify(err, c.Msg.IsDelivered(), c.To)
		if cerr != nil && !stopped && !errors.Is(cerr, outbox.ErrUnknown) {
			return fmt.Errorf("%w (%v)", ctx.Err(), cerr)
		}
		return cerr
	}
}

// staleConn reports a transport failure before any recipient was accepted
// or any data sent: safe to retry on a fresh connection.
func staleConn(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) || se.ErrorCode() != 0 {
		return false
	}
	switch se.Reason {
	case gomail.ErrConnCheck, gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData:
		return true
	}
	return false
}

// ready makes sure slot holds a usable connection.
func (m *Mailer) ready(ctx context.Context, slot *conn) error {
	if slot.c != nil {
		idle := time.Since(slot.lastUsed)
		switch {
		case !slot.c.HasConnection() || idle > m.cfg.MaxIdle:
			_ = slot.c.Close()
			slot.c = nil
		case idle > m.cfg.IdleCheck:
			if err := slot.c.Noop(); err != nil {
				_ = slot.c.Close()
				slot.c = nil
			}
		}
	}
	if slot.c != nil {
		return nil
	}
	c, err := m.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return err
	}
	slot.c, slot.lastUsed = c, time.Now()
	return nil
}

// connBroken reports whether err leaves the connection unusable (no SMTP
// reply code: the transport failed).
func connBroken(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode() == 0 || se.Reason == gomail.ErrSMTPReset || se.Reason == gomail.ErrConnCheck
	}
	return true
}

var enhancedRe = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// classify maps a go-mail send result to the outbox error classes.
//
//   - accepted (the server said 250 after the data, even if the following
//     RSET failed) → nil
//   - 4xx reply, or a connection error before the end of data → transient
//   - 5.1.x (bad mailbox/address) at RCPT or end of data → *outbox.SuppressError;
//     a bare 550/551/553 at RCPT without an enhanced code counts as 5.1.x
//   - 5.7.x → permanent (errPolicy), not suppressed
//   - other 5xx → permanent
//   - connection lost after the end of data, before the reply → outbox.ErrUnknown
func classify(err error, delivered bool, rcpt string) error {
	if err == nil {
		return nil
	}
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return err // dial/auth/TLS errors: transient
	}
	if delivered || se.Reason == gomail.ErrSMTPReset {
		// 250 after DATA was received; only the follow-up RSET failed.
		return nil
	}
	code := se.ErrorCode()
	esc := se.EnhancedStatusCode()
	if esc == "" {
		esc = enhancedRe.FindString(se.Error())
	}
	switch se.Reason {
	case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
		return fmt.Errorf("%w: %w", outbox.ErrPermanent, err)
	case gomail.ErrSMTPDataClose:
		if code == 0 {
			// The data went out; the reply never came.
			return fmt.Errorf("%w: %w", outbox.ErrUnknown, err)
		}
	}
	switch {
	case code >= 500:
		rcptStage := se.Reason == gomail.ErrSMTPRcptTo || se.Reason == gomail.ErrSMTPDataClose
		switch {
		case strings.HasPrefix(esc, "5.7."):
			return fmt.Errorf("%w: %w: %w", outbox.ErrPermanent, errPolicy, err)
		case rcptStage && strings.HasPrefix(esc, "5.1."),
			se.Reason == gomail.ErrSMTPRcptTo && esc == "" && (code == 550 || code == 551 || code == 553):
			reason := "smtp " + strconv.Itoa(code)
			if esc != "" {
				reason += " " + esc
			}
			return &outbox.SuppressError{Email: rcpt, Reason: reason, Err: err}
		}
		return fmt.Errorf("%w: %w", outbox.ErrPermanent, err)
	case code >= 400:
		return err
	}
	// No reply code: the connection failed before the end of data.
	return err
}
