package smtp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/nurture-oss/nurture/internal/outbox"
	"github.com/nurture-oss/nurture/internal/store"
)

// Capture is the mailer of `nurture dev`: it composes each email exactly as
// the SMTP mailer would (same rendering, tracking, headers, DKIM) and writes
// it to Dir as <id>.eml, plus one line in Dir/index.jsonl. It implements
// outbox.Handler, and lists and reads what it captured for the captured-mail
// page. A send delivered again (a retry) overwrites its file.
type Capture struct {
	dir     string
	compose *Composer
	mu      sync.Mutex
}

// Captured describes one captured message.
type Captured struct {
	ID        string    `json:"id"` // file name without .eml
	Send      string    `json:"send"`
	Lead      string    `json:"lead"`
	Sequence  string    `json:"sequence,omitempty"`
	Step      string    `json:"step,omitempty"`
	Template  string    `json:"template,omitempty"`
	To        string    `json:"to"`
	From      string    `json:"from"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Links     []string  `json:"links,omitempty"`
	At        time.Time `json:"at"`
	Size      int       `json:"size"`
}

// ErrNotCaptured is returned by Read for an unknown id.
var ErrNotCaptured = errors.New("no such captured message")

const captureIndex = "index.jsonl"

// NewCapture creates dir if needed. compose may be nil for a read-only
// Capture (List and Read only).
func NewCapture(dir string, compose *Composer) (*Capture, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("capture: create %s: %w", dir, err)
	}
	return &Capture{dir: dir, compose: compose}, nil
}

// Dir is the capture directory.
func (c *Capture) Dir() string { return c.dir }

// Deliver implements outbox.Handler.
func (c *Capture) Deliver(ctx context.Context, item store.OutboxItem) error {
	if c.compose == nil {
		return fmt.Errorf("capture: read-only: %w", outbox.ErrPermanent)
	}
	p, err := DecodePayload(item.Payload)
	if err != nil {
		return fmt.Errorf("capture: item %d: %w: %w", item.ID, err, outbox.ErrPermanent)
	}
	m, err := c.compose.Compose(ctx, p)
	if err != nil {
		return fmt.Errorf("capture: send %s: %w: %w", p.Send.SendID, err, outbox.ErrPermanent)
	}
	var buf bytes.Buffer
	if _, err := m.Msg.WriteTo(&buf); err != nil {
		return fmt.Errorf("capture: write send %s: %w: %w", p.Send.SendID, err, outbox.ErrPermanent)
	}
	sum := sha256.Sum256([]byte(p.Send.SendID))
	e := Captured{
		ID: hex.EncodeToString(sum[:12]), Send: p.Send.SendID, Lead: p.Lead,
		Sequence: p.Send.Sequence, Step: p.Send.Step, Template: p.Send.Template,
		To: m.To, From: m.From, Subject: m.Subject, MessageID: m.MessageID, Links: m.Links,
		At: m.Ref.Sent(), Size: buf.Len(),
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("capture: index send %s: %w", p.Send.SendID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	tmp := filepath.Join(c.dir, e.ID+".eml.tmp")
	if err := os.WriteFile(tmp, buf.Bytes(), 0o640); err != nil {
		return fmt.Errorf("capture: write send %s: %w", p.Send.SendID, err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, e.ID+".eml")); err != nil {
		return fmt.Errorf("capture: write send %s: %w", p.Send.SendID, err)
	}
	f, err := os.OpenFile(filepath.Join(c.dir, captureIndex), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("capture: open index: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("capture: append index: %w", err)
	}
	return nil
}

// List returns up to limit captured messages, newest first (limit <= 0:
// all). Each send appears once, as last captured.
func (c *Capture) List(ctx context.Context, limit int) ([]Captured, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.Open(filepath.Join(c.dir, captureIndex))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("capture: open index: %w", err)
	}
	defer f.Close()
	var all []Captured
	pos := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e Captured
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.ID == "" {
			continue // a torn last line after a crash
		}
		if i, ok := pos[e.ID]; ok {
			all[i] = e
			continue
		}
		pos[e.ID] = len(all)
		all = append(all, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("capture: read index: %w", err)
	}
	slices.SortStableFunc(all, func(a, b Captured) int { return b.At.Compare(a.At) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}

// Read returns the raw RFC 5322 bytes of a captured message.
func (c *Capture) Read(ctx context.Context, id string) ([]byte, error) {
	if len(id) != 24 {
		return nil, fmt.Errorf("capture: read %q: %w", id, ErrNotCaptured)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return nil, fmt.Errorf("capture: read %q: %w", id, ErrNotCaptured)
	}
	b, err := os.ReadFile(filepath.Join(c.dir, id+".eml"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("capture: read %s: %w", id, ErrNotCaptured)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: read %s: %w", id, err)
	}
	return b, nil
}
