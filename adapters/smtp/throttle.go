package smtp

import (
	"context"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/nurture-oss/nurture/internal/outbox"
)

// ThrottleConfig limits send rates. Zero values mean unlimited.
type ThrottleConfig struct {
	// GlobalPerSecond caps all sends of this process.
	GlobalPerSecond float64
	// DomainPerMinute caps sends to one recipient domain (per process).
	DomainPerMinute float64
	// Domains overrides DomainPerMinute for named domains
	// ("gmail.com": 600).
	Domains map[string]float64
	// MaxWait is how long a send may block waiting for a slot before it is
	// deferred instead (default 2s).
	MaxWait time.Duration
}

// Throttle is a global and a per-recipient-domain token bucket. A send
// whose slot is less than MaxWait away waits for it; one further away is
// deferred with *outbox.DeferError, which the dispatcher retries at Until
// without counting an attempt. Nothing is dropped.
//
// Limits are per process: N workers sending to the same relay allow N times
// the configured rates. Recipient domains are about as many as leads, so
// per-domain buckets do not live forever: at most once per sweepEvery, the
// buckets that are full again (idle for at least their refill time) are
// dropped. A full bucket behaves exactly like a new one, so eviction never
// lets a send through early.
type Throttle struct {
	cfg    ThrottleConfig
	global *rate.Limiter
	mu     sync.Mutex
	domain map[string]*rate.Limiter
	swept  time.Time
	now    func() time.Time
}

// sweepEvery is how often idle per-domain buckets are evicted.
const sweepEvery = time.Minute

// NewThrottle returns a Throttle for cfg.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 2 * time.Second
	}
	t := &Throttle{cfg: cfg, domain: map[string]*rate.Limiter{}, now: time.Now}
	if cfg.GlobalPerSecond > 0 {
		burst := int(cfg.GlobalPerSecond / 10)
		t.global = rate.NewLimiter(rate.Limit(cfg.GlobalPerSecond), max(burst, 1))
	}
	return t
}

func (t *Throttle) domainLimiter(d string) *rate.Limiter {
	perMin := t.cfg.DomainPerMinute
	if v, ok := t.cfg.Domains[d]; ok {
		perMin = v
	}
	if perMin <= 0 {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Sub(t.swept) >= sweepEvery {
		t.sweep(now)
	}
	l, ok := t.domain[d]
	if !ok {
		l = rate.NewLimiter(rate.Limit(perMin/60), max(int(perMin/60), 1))
		t.domain[d] = l
	}
	return l
}

// sweep drops the per-domain buckets that are full at now. t.mu is held.
func (t *Throttle) sweep(now time.Time) {
	t.swept = now
	for d, l := range t.domain {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(t.domain, d)
		}
	}
}

// Wait takes one slot for a send to domain: it returns nil once the send
// may go, a *outbox.DeferError when the wait would exceed MaxWait, or the
// context's error.
func (t *Throttle) Wait(ctx context.Context, domain string) error {
	domain = strings.ToLower(domain)
	now := t.now()
	var rs []*rate.Reservation
	var wait time.Duration
	reason := ""
	for _, l := range []*rate.Limiter{t.domainLimiter(domain), t.global} {
		if l == nil {
			continue
		}
		r := l.ReserveN(now, 1)
		if !r.OK() {
			continue
		}
		rs = append(rs, r)
		if d := r.DelayFrom(now); d > wait {
			wait = d
			if l == t.global {
				reason = "global_rate"
			} else {
				reason = "domain_rate"
			}
		}
	}
	if wait <= 0 {
		return nil
	}
	if wait > t.cfg.MaxWait {
		for _, r := range rs {
			r.CancelAt(now)
		}
		return &outbox.DeferError{Until: now.Add(wait), Reason: reason}
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		for _, r := range rs {
			r.CancelAt(t.now())
		}
		return ctx.Err()
	}
}
