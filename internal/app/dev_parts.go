package app

// Parts of `nurture dev` that serve does not have: the sped-up clock, the
// console a person reads, rep emails written next to captured mail, and the
// adapters that show captured mail on the HTTP pages and to the demo.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	httpapi "github.com/nurture-oss/nurture/adapters/http"
	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/sequences"
)

// --- clock -------------------------------------------------------------------

// devClock is a clock running speed times faster than the wall clock:
// now = virtual start + (wall − wall start) × speed. It is saved in the data
// directory so a restart continues from where the last run stopped, never
// earlier than the real time.
type devClock struct {
	wallStart time.Time
	virtStart time.Time
	speed     float64
	path      string
}

// newDevClock resumes the clock saved at path, or starts it at first (when
// later than now) on a fresh data directory.
func newDevClock(path string, speed float64, first time.Time) (*devClock, error) {
	wall := time.Now()
	c := &devClock{wallStart: wall, virtStart: wall.UTC(), speed: speed, path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if first.After(c.virtStart) {
			c.virtStart = first.UTC()
		}
	case err != nil:
		return nil, fmt.Errorf("read clock %s: %w", path, err)
	default:
		saved, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("read clock %s: %w", path, err)
		}
		if saved.After(c.virtStart) {
			c.virtStart = saved.UTC()
		}
	}
	return c, nil
}

// Now is the virtual time.
func (c *devClock) Now() time.Time {
	return c.virtStart.Add(scaleDur(time.Since(c.wallStart), c.speed))
}

// save records the current virtual time.
func (c *devClock) save() error {
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(c.Now().Format(time.RFC3339Nano)+"\n"), 0o640); err != nil {
		return fmt.Errorf("save clock: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("save clock: %w", err)
	}
	return nil
}

// run saves the clock every second until ctx ends (the caller saves it
// once more after everything stopped).
func (c *devClock) run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := c.save(); err != nil {
				return err
			}
		}
	}
}

// demoMorning is when a fresh demo's clock starts: 06:00 UTC on the next
// Monday to Thursday after now that no content calendar marks as a holiday,
// so the example sequences' office-hours send windows open within virtual
// hours, not after a weekend or a holiday.
func demoMorning(now time.Time, calendars map[string]*sequences.Calendar) time.Time {
	d := time.Date(now.Year(), now.Month(), now.Day(), 6, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	for range 60 {
		ok := d.Weekday() >= time.Monday && d.Weekday() <= time.Thursday
		for _, c := range calendars {
			if c.Holiday(d.Year(), d.Month(), d.Day()) {
				ok = false
			}
		}
		if ok {
			return d
		}
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// scaleDur multiplies d by f, saturating at about 290 years.
func scaleDur(d time.Duration, f float64) time.Duration {
	v := float64(d) * f
	if v >= math.MaxInt64/2 {
		return math.MaxInt64 / 2
	}
	return time.Duration(v)
}

// --- console -----------------------------------------------------------------

// leadGetter loads a lead (the store).
type leadGetter interface {
	Lead(ctx context.Context, key string) (*engine.Lead, error)
}

// console prints what happens to leads as lines a person reads:
//
//	Mar 02 09:00 EST  lead-7 (Ana)        ✉ trial-welcome  trial-onboarding/welcome
//
// The time is the lead's local time when its time zone is known.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	leads leadGetter
	reps  map[string]string
	info  map[string]leadInfo
}

type leadInfo struct {
	name string
	loc  *time.Location
}

func newConsole(w io.Writer, leads leadGetter, reps []engine.Rep) *console {
	c := &console{w: w, leads: leads, reps: map[string]string{}, info: map[string]leadInfo{}}
	for _, r := range reps {
		c.reps[r.ID] = r.Name
	}
	return c
}

func (c *console) lead(key string) leadInfo {
	c.mu.Lock()
	li, ok := c.info[key]
	c.mu.Unlock()
	if ok && li.name != "" && li.loc != nil {
		return li
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l, err := c.leads.Lead(ctx, key)
	if err != nil {
		return li
	}
	if s, _ := l.Traits["first_name"].(string); s != "" {
		li.name = s
	}
	if s, _ := l.Traits["timezone"].(string); s != "" {
		if loc, err := time.LoadLocation(s); err == nil {
			li.loc = loc
		}
	}
	c.mu.Lock()
	c.info[key] = li
	c.mu.Unlock()
	return li
}

// say prints one line about a lead.
func (c *console) say(key string, at time.Time, what string) {
	li := c.lead(key)
	loc := li.loc
	if loc == nil {
		loc = time.UTC
	}
	who := key
	if li.name != "" {
		who += " (" + li.name + ")"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, "%s  %-20s %s\n", at.In(loc).Format("Jan 02 15:04 MST"), who, what)
}

func (c *console) rep(id string) string {
	if n := c.reps[id]; n != "" {
		return n
	}
	return id
}

// Observe implements runner.Observer.
func (c *console) Observe(lead string, at time.Time, effects []engine.Effect) {
	for _, ef := range effects {
		if line := c.line(ef); line != "" {
			c.say(lead, at, line)
		}
	}
}

func deref[T any](ef engine.Effect) (T, bool) {
	if v, ok := any(ef).(T); ok {
		return v, true
	}
	if p, ok := any(ef).(*T); ok && p != nil {
		return *p, true
	}
	var zero T
	return zero, false
}

// line is the console text of one effect ("" for effects not worth a line).
func (c *console) line(ef engine.Effect) string {
	if e, ok := deref[engine.Enrolled](ef); ok {
		return "→ enrolled in " + e.Sequence
	}
	if e, ok := deref[engine.SendEmail](ef); ok {
		return fmt.Sprintf("✉ %s  %s/%s", e.Template, e.Sequence, e.Step)
	}
	if e, ok := deref[engine.Waiting](ef); ok && (e.Reason == "send_window" || e.Reason == "frequency_cap") {
		why := "send window"
		if e.Reason == "frequency_cap" {
			why = "frequency cap"
		}
		return fmt.Sprintf("⏳ %s/%s waits for the %s until %s UTC", e.Sequence, e.Step, why, e.Until.UTC().Format("Jan 02 15:04"))
	}
	if e, ok := deref[engine.EmailSuppressed](ef); ok {
		return fmt.Sprintf("⊘ not sent (%s): %s  %s/%s", e.Reason, e.Template, e.Sequence, e.Step)
	}
	if e, ok := deref[engine.ScoreChanged](ef); ok {
		if e.Delta == 0 {
			return ""
		}
		capped := ""
		if e.Capped {
			capped = ", capped"
		}
		return fmt.Sprintf("★ score %s → %s  (%s%s)", leadview.Signed(e.Delta), leadview.Num(e.Score), e.Rule, capped)
	}
	if e, ok := deref[engine.Escalated](ef); ok {
		verb := "escalated to"
		if e.Attempt > 1 {
			verb = "re-routed to"
		}
		return fmt.Sprintf("🔥 %s %s at score %s: %s", verb, c.rep(e.Rep), leadview.Num(e.Score), e.Reason)
	}
	if e, ok := deref[engine.Acknowledged](ef); ok {
		return "✔ escalation acknowledged by " + c.rep(e.Rep)
	}
	if e, ok := deref[engine.Exited](ef); ok {
		return fmt.Sprintf("← left %s at %s (%s)", e.Sequence, e.Step, e.Reason)
	}
	if e, ok := deref[engine.Completed](ef); ok {
		return "✓ completed " + e.Sequence
	}
	if e, ok := deref[engine.Paused](ef); ok {
		return fmt.Sprintf("⏸ paused %s at %s (%s)", e.Sequence, e.Step, e.Reason)
	}
	if e, ok := deref[engine.Resumed](ef); ok {
		return fmt.Sprintf("▶ resumed %s at %s", e.Sequence, e.Step)
	}
	if e, ok := deref[engine.StatusChanged](ef); ok {
		return fmt.Sprintf("status %s → %s", e.From, e.To)
	}
	if e, ok := deref[engine.Migrated](ef); ok {
		return fmt.Sprintf("⇄ moved to version %s of %s", e.To, e.Sequence)
	}
	if e, ok := deref[engine.ConditionFailed](ef); ok {
		return fmt.Sprintf("! condition failed (%s %s/%s): %s", e.Where, e.Sequence, e.Step, e.Error)
	}
	return ""
}

// --- captured mail -----------------------------------------------------------

// mailBox shows captured marketing mail and rep emails to the HTTP pages
// (httpapi.Mailbox) and the demo (demo.Mail).
type mailBox struct {
	marketing *smtp.Capture
	reps      *smtp.Capture // read side of the rep email capture
}

func toMailMessage(c smtp.Captured) httpapi.MailMessage {
	send := c.Send
	if strings.HasPrefix(send, "rep:") {
		send = ""
	}
	return httpapi.MailMessage{ID: c.ID, Lead: c.Lead, Send: send, Sequence: c.Sequence, Step: c.Step, Template: c.Template,
		To: c.To, From: c.From, Subject: c.Subject, At: c.At}
}

func (m mailBox) all(ctx context.Context) ([]smtp.Captured, error) {
	a, err := m.marketing.List(ctx, 0)
	if err != nil {
		return nil, err
	}
	b, err := m.reps.List(ctx, 0)
	if err != nil {
		return nil, err
	}
	all := append(a, b...)
	slices.SortStableFunc(all, func(x, y smtp.Captured) int { return y.At.Compare(x.At) })
	return all, nil
}

// Messages implements httpapi.Mailbox.
func (m mailBox) Messages(ctx context.Context, limit int) ([]httpapi.MailMessage, error) {
	all, err := m.all(ctx)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	out := make([]httpapi.MailMessage, len(all))
	for i, c := range all {
		out[i] = toMailMessage(c)
	}
	return out, nil
}

// Raw implements httpapi.Mailbox.
func (m mailBox) Raw(ctx context.Context, id string) ([]byte, error) {
	for _, c := range []*smtp.Capture{m.marketing, m.reps} {
		b, err := c.Read(ctx, id)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, smtp.ErrNotCaptured) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("captured mail %s: %w", id, httpapi.ErrNoMessage)
}

// BySend implements demo.Mail.
func (m mailBox) BySend(ctx context.Context, sendID string) ([]byte, bool, error) {
	all, err := m.marketing.List(ctx, 0)
	if err != nil {
		return nil, false, err
	}
	for _, c := range all {
		if c.Send == sendID {
			b, err := m.marketing.Read(ctx, c.ID)
			if err != nil {
				return nil, false, err
			}
			return b, true, nil
		}
	}
	return nil, false, nil
}

// repCapture writes escalation emails to reps into a directory, in the
// capture mailer's format (<id>.eml plus index.jsonl), so the captured-mail
// page lists them next to the marketing emails.
type repCapture struct {
	dir  string
	from string
	now  func() time.Time
	mu   sync.Mutex
}

// SendRepEmail implements notify.Mailer.
func (c *repCapture) SendRepEmail(_ context.Context, e leadview.Email) error {
	m := gomail.NewMsg()
	if err := m.From(c.from); err != nil {
		return fmt.Errorf("rep email from %q: %w", c.from, err)
	}
	if err := m.AddToFormat(e.ToName, e.To); err != nil {
		return fmt.Errorf("rep email to: %w", err)
	}
	m.Subject(e.Subject)
	now := c.now()
	m.SetDateWithValue(now)
	domain := "nurture.dev"
	if _, d, ok := strings.Cut(e.To, "@"); ok {
		domain = d
	}
	msgID := e.MessageID + "@" + domain
	m.SetMessageIDWithValue(msgID)
	m.SetBodyString(gomail.TypeTextPlain, e.Text)
	m.AddAlternativeString(gomail.TypeTextHTML, e.HTML)
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		return fmt.Errorf("rep email: %w", err)
	}
	sum := sha256.Sum256([]byte("rep:" + e.MessageID))
	entry := smtp.Captured{
		ID: hex.EncodeToString(sum[:12]), Send: "rep:" + e.MessageID, Lead: leadOfEscalationMessage(e.MessageID),
		Template: "rep escalation", To: e.To, From: c.from, Subject: e.Subject, MessageID: msgID, At: now, Size: buf.Len(),
	}
	line, err := json.Marshal(entry)
	if err != nil {
		return fmt.Errorf("rep email index: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.WriteFile(filepath.Join(c.dir, entry.ID+".eml"), buf.Bytes(), 0o640); err != nil {
		return fmt.Errorf("rep email: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.dir, "index.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("rep email index: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("rep email index: %w", err)
	}
	return nil
}

// leadOfEscalationMessage recovers the lead key from a rep email's
// MessageID ("escalation.<lead>.escalation-<n>.<attempt>"); "" if it does
// not parse.
func leadOfEscalationMessage(id string) string {
	rest, ok := strings.CutPrefix(id, "escalation.")
	if !ok {
		return ""
	}
	i := strings.LastIndex(rest, ".escalation-")
	if i < 0 {
		return ""
	}
	key, err := httpapi.LeadOfEscalation(rest[:i] + ".escalation-1")
	if err != nil {
		return ""
	}
	return key
}

// --- files in the data directory -------------------------------------------------

// keptSecret returns the content of the file at path, creating it with n
// random bytes (hex) when it does not exist.
func keptSecret(path string, n int) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate %s: %w", path, err)
	}
	s := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}
