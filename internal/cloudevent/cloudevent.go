// Package cloudevent reads and writes lead events in the CloudEvents 1.0
// structured JSON format, the envelope every lead event travels in (NATS
// and HTTP alike):
//
//	{
//	  "specversion": "1.0",
//	  "id": "evt-123",                 // the event id; also the Nats-Msg-Id
//	  "source": "crm",                 // who produced it
//	  "type": "trial.started",         // the event name
//	  "subject": "lead-42",            // the lead's key upstream
//	  "time": "2026-03-02T08:00:00Z",  // when it happened
//	  "datacontenttype": "application/json",
//	  "data": {"email": "…", "traits": {…}, "properties": {…}, "machine": false}
//	}
//
// Parse is strict about what the engine needs and lenient about the rest:
// unknown envelope attributes (extensions) are ignored.
package cloudevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nurture-oss/nurture/engine"
)

// Content types.
const (
	ContentType      = "application/cloudevents+json"
	BatchContentType = "application/cloudevents-batch+json"
)

// Limits on envelope fields.
const (
	MaxSize       = 256 << 10 // bytes of one encoded event
	maxIDLen      = 256
	maxTypeLen    = 128
	maxSubjectLen = 256
)

// ErrInvalid is returned (wrapped, with the reason) for an event that can
// never apply. Callers dead-letter it; retrying cannot help.
var ErrInvalid = errors.New("invalid event")

// Envelope is the wire form.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// Data is the payload of a lead event.
type Data struct {
	Email      string         `json:"email,omitempty"`
	Traits     map[string]any `json:"traits,omitempty"`
	Properties map[string]any `json:"properties,omitempty"`
	Machine    bool           `json:"machine,omitempty"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse decodes one structured-mode CloudEvent into an engine event.
// A missing time is left zero; the caller decides (usually: received now).
func Parse(b []byte) (*engine.Event, error) {
	if len(b) > MaxSize {
		return nil, invalid("event is %d bytes, over the %d byte limit", len(b), MaxSize)
	}
	var env Envelope
	var d Data
	hasData, ok := scan(b, &env, &d)
	if !ok {
		return parseSlow(b)
	}
	ev, err := checkEnvelope(&env)
	if err != nil {
		return nil, err
	}
	if hasData {
		ev.Email = strings.TrimSpace(d.Email)
		ev.Traits, ev.Properties, ev.Machine = d.Traits, d.Properties, d.Machine
	}
	return ev, nil
}

// parseSlow is Parse through encoding/json: the reference scan must agree
// with, and the path for whatever scan leaves to it.
func parseSlow(b []byte) (*engine.Event, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil {
		return nil, invalid("not a JSON CloudEvent: %v", err)
	}
	if dec.More() {
		return nil, invalid("trailing data after the event")
	}
	return fromEnvelope(&env)
}

// ParseBatch decodes a JSON array of structured CloudEvents. Each element is
// parsed on its own: the result has one entry per element, with either an
// event or the reason it is invalid.
func ParseBatch(b []byte) ([]Result, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, invalid("not a JSON array of CloudEvents: %v", err)
	}
	out := make([]Result, len(raws))
	for i, r := range raws {
		out[i].Raw = r
		out[i].Event, out[i].Err = Parse(r)
	}
	return out, nil
}

// Result is one element of a parsed batch.
type Result struct {
	Raw   json.RawMessage
	Event *engine.Event
	Err   error
}

func fromEnvelope(env *Envelope) (*engine.Event, error) {
	ev, err := checkEnvelope(env)
	if err != nil {
		return nil, err
	}
	if len(env.Data) > 0 && !bytes.Equal(bytes.TrimSpace(env.Data), []byte("null")) {
		var d Data
		dec := json.NewDecoder(bytes.NewReader(env.Data))
		dec.UseNumber()
		if err := dec.Decode(&d); err != nil {
			return nil, invalid("data: %v", err)
		}
		ev.Email = strings.TrimSpace(d.Email)
		ev.Traits = normalize(d.Traits)
		ev.Properties = normalize(d.Properties)
		ev.Machine = d.Machine
	}
	return ev, nil
}

// checkEnvelope validates the envelope attributes (env.Data aside) and
// returns the event without its data.
func checkEnvelope(env *Envelope) (*engine.Event, error) {
	if env.SpecVersion != "1.0" {
		return nil, invalid("specversion %q, want \"1.0\"", env.SpecVersion)
	}
	if err := checkAttr("id", env.ID, maxIDLen); err != nil {
		return nil, err
	}
	if err := checkAttr("type", env.Type, maxTypeLen); err != nil {
		return nil, err
	}
	if err := checkAttr("subject", env.Subject, maxSubjectLen); err != nil {
		return nil, err
	}
	if ct := env.DataContentType; ct != "" && !strings.HasPrefix(ct, "application/json") {
		return nil, invalid("datacontenttype %q, want application/json", ct)
	}
	ev := &engine.Event{ID: env.ID, Type: env.Type, Lead: env.Subject}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, env.Time)
		if err != nil {
			return nil, invalid("time %q is not RFC 3339", env.Time)
		}
		ev.Time = t.UTC()
	}
	return ev, nil
}

func checkAttr(name, v string, max int) error {
	switch {
	case v == "":
		return invalid("missing %s", name)
	case len(v) > max:
		return invalid("%s is %d bytes, over the %d byte limit", name, len(v), max)
	case !utf8.ValidString(v):
		return invalid("%s is not valid UTF-8", name)
	case strings.ContainsAny(v, "\x00\r\n"):
		return invalid("%s contains control characters", name)
	}
	return nil
}

// normalize turns json.Number into int64 when integral, else float64, so
// the engine and expression language see ordinary Go numbers.
func normalize(m map[string]any) map[string]any {
	for k, v := range m {
		m[k] = normalizeValue(v)
	}
	return m
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		return normalize(x)
	case []any:
		for i := range x {
			x[i] = normalizeValue(x[i])
		}
		return x
	}
	return v
}

// Encode writes ev as a structured CloudEvent from source.
func Encode(ev *engine.Event, source string) ([]byte, error) {
	data, err := json.Marshal(Data{Email: ev.Email, Traits: ev.Traits, Properties: ev.Properties, Machine: ev.Machine})
	if err != nil {
		return nil, fmt.Errorf("encode event %s data: %w", ev.ID, err)
	}
	env := Envelope{
		SpecVersion:     "1.0",
		ID:              ev.ID,
		Source:          source,
		Type:            ev.Type,
		Subject:         ev.Lead,
		DataContentType: "application/json",
		Data:            data,
	}
	if !ev.Time.IsZero() {
		env.Time = ev.Time.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	return b, nil
}

// Subject is the NATS subject a lead event of type t is published to:
// "leads.<type>" with characters NATS treats specially replaced.
func Subject(prefix, t string) string {
	r := strings.NewReplacer(" ", "_", "*", "_", ">", "_", "\t", "_")
	return prefix + "." + r.Replace(t)
}
