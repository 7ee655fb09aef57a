package store

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/jsonscan"
)

// The lead document codec. A lead is stored as the JSON encoding/json makes
// of an engine.Lead; decoding and encoding it through reflection is most of
// the CPU a worker spends per event, so the hot types are coded by hand
// here, with the same format:
//
//   - EncodeLead returns byte for byte what json.Marshal returns (same field
//     order, omitempty/omitzero, HTML-safe string escaping, float format,
//     sorted map keys, RFC 3339 times), and the same error for a lead
//     encoding/json refuses (it falls back to json.Marshal for anything
//     unusual: NaN, a year past 9999, a trait of an exotic type).
//   - DecodeLead returns exactly what json.Unmarshal into a new engine.Lead
//     returns. The fast path accepts the documents we write (and any
//     reordering, whitespace or unknown field); whatever it is not sure
//     about (a duplicate or case-folded key, a type mismatch, a syntax
//     error, very deep traits) is handed to json.Unmarshal, so errors are
//     encoding/json's too.

// EncodeLead encodes l as its stored JSON document, identical to
// json.Marshal(l).
func EncodeLead(l *engine.Lead) ([]byte, error) {
	if l == nil {
		return []byte("null"), nil
	}
	bp := encodeBufs.Get().(*[]byte)
	e := leadEncoder{b: (*bp)[:0]}
	ok := e.lead(l)
	var out []byte
	if ok {
		out = bytes.Clone(e.b)
	}
	if cap(e.b) <= 64<<10 {
		*bp = e.b
		encodeBufs.Put(bp)
	}
	if ok {
		return out, nil
	}
	return json.Marshal(l)
}

// encodeBufs holds scratch buffers: a document is encoded into one, then
// copied out at its exact size.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// DecodeLead decodes a stored lead document, identical to json.Unmarshal
// into a new engine.Lead. It does not retain b (the lead's strings share
// one copy of it, so the copy lives as long as any of them).
func DecodeLead(b []byte) (*engine.Lead, error) {
	// Strings are sliced from one copy of the document: one allocation
	// instead of one per string.
	d := newLeadDecoder(b)
	l := new(engine.Lead)
	if d.lead(l) {
		return l, nil
	}
	l = new(engine.Lead)
	if err := json.Unmarshal(b, l); err != nil {
		return nil, err
	}
	return l, nil
}

// maxDepth bounds trait nesting on the fast paths (the decoder's is
// jsonscan's); deeper documents take encoding/json's path (which has its
// own limits and errors).
const maxDepth = jsonscan.MaxDepth

// ---------------------------------------------------------------- encoding

// leadEncoder appends to b; its methods return false when the value needs
// encoding/json (an error, or a type not coded here).
type leadEncoder struct {
	b []byte
}

func (e *leadEncoder) lead(l *engine.Lead) bool {
	e.b = append(e.b, `{"key":`...)
	e.str(l.Key)
	if l.Email != "" {
		e.b = append(e.b, `,"email":`...)
		e.str(l.Email)
	}
	if len(l.Traits) > 0 {
		e.b = append(e.b, `,"traits":`...)
		if !e.object(l.Traits, 0) {
			return false
		}
	}
	e.b = append(e.b, `,"status":`...)
	e.str(string(l.Status))
	if l.Owner != "" {
		e.b = append(e.b, `,"owner":`...)
		e.str(l.Owner)
	}
	e.b = append(e.b, `,"score":{"value":`...)
	if !e.float(l.Score.Value) {
		return false
	}
	if !l.Score.At.IsZero() {
		e.b = append(e.b, `,"at":`...)
		if !e.time(l.Score.At) {
			return false
		}
	}
	e.b = append(e.b, `},"armed":`...)
	e.b = strconv.AppendBool(e.b, l.Armed)
	if l.Crossings != 0 {
		e.b = append(e.b, `,"crossings":`...)
		e.b = strconv.AppendInt(e.b, int64(l.Crossings), 10)
	}
	if l.Escalation != nil {
		e.b = append(e.b, `,"escalation":`...)
		if !e.escalation(l.Escalation) {
			return false
		}
	}
	if len(l.Enrollments) > 0 {
		e.b = append(e.b, `,"enrollments":[`...)
		for i, en := range l.Enrollments {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			if !e.enrollment(en) {
				return false
			}
		}
		e.b = append(e.b, ']')
	}
	if len(l.RuleUse) > 0 {
		e.b = append(e.b, `,"rule_use":[`...)
		for i := range l.RuleUse {
			ru := &l.RuleUse[i]
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, `{"rule":`...)
			e.str(ru.Rule)
			e.b = append(e.b, `,"period_start":`...)
			if !e.time(ru.PeriodStart) {
				return false
			}
			e.b = append(e.b, `,"points":`...)
			if !e.float(ru.Points) {
				return false
			}
			e.b = append(e.b, '}')
		}
		e.b = append(e.b, ']')
	}
	if len(l.Sends) > 0 {
		e.b = append(e.b, `,"sends":`...)
		if !e.times(l.Sends) {
			return false
		}
	}
	e.b = append(e.b, `,"created_at":`...)
	if !e.time(l.CreatedAt) {
		return false
	}
	e.b = append(e.b, `,"updated_at":`...)
	if !e.time(l.UpdatedAt) {
		return false
	}
	if !l.NextRunAt.IsZero() {
		e.b = append(e.b, `,"next_run_at":`...)
		if !e.time(l.NextRunAt) {
			return false
		}
	}
	if len(l.RecentEvents) > 0 {
		e.b = append(e.b, `,"recent_events":`...)
		e.strs(l.RecentEvents)
	}
	if l.RecentNext != 0 {
		e.b = append(e.b, `,"recent_next":`...)
		e.b = strconv.AppendInt(e.b, int64(l.RecentNext), 10)
	}
	if l.TickFailures != 0 {
		e.b = append(e.b, `,"tick_failures":`...)
		e.b = strconv.AppendInt(e.b, int64(l.TickFailures), 10)
	}
	e.b = append(e.b, '}')
	return true
}

func (e *leadEncoder) escalation(x *engine.Escalation) bool {
	e.b = append(e.b, `{"id":`...)
	e.str(x.ID)
	e.b = append(e.b, `,"rep":`...)
	e.str(x.Rep)
	e.b = append(e.b, `,"at":`...)
	if !e.time(x.At) {
		return false
	}
	e.b = append(e.b, `,"attempt":`...)
	e.b = strconv.AppendInt(e.b, int64(x.Attempt), 10)
	if len(x.Tried) > 0 {
		e.b = append(e.b, `,"tried":`...)
		e.strs(x.Tried)
	}
	if x.AckedBy != "" {
		e.b = append(e.b, `,"acked_by":`...)
		e.str(x.AckedBy)
	}
	if !x.AckedAt.IsZero() {
		e.b = append(e.b, `,"acked_at":`...)
		if !e.time(x.AckedAt) {
			return false
		}
	}
	if !x.AckDueAt.IsZero() {
		e.b = append(e.b, `,"ack_due_at":`...)
		if !e.time(x.AckDueAt) {
			return false
		}
	}
	e.b = append(e.b, '}')
	return true
}

func (e *leadEncoder) enrollment(en *engine.Enrollment) bool {
	if en == nil {
		e.b = append(e.b, "null"...)
		return true
	}
	e.b = append(e.b, `{"id":`...)
	e.str(en.ID)
	e.b = append(e.b, `,"sequence":`...)
	e.str(en.Sequence)
	e.b = append(e.b, `,"version":`...)
	e.str(en.Version)
	e.b = append(e.b, `,"step":`...)
	e.str(en.Step)
	e.b = append(e.b, `,"status":`...)
	e.str(string(en.Status))
	if !en.NextRunAt.IsZero() {
		e.b = append(e.b, `,"next_run_at":`...)
		if !e.time(en.NextRunAt) {
			return false
		}
	}
	if en.WaitingFor != "" {
		e.b = append(e.b, `,"waiting_for":`...)
		e.str(en.WaitingFor)
	}
	e.b = append(e.b, `,"started_at":`...)
	if !e.time(en.StartedAt) {
		return false
	}
	if !en.EndedAt.IsZero() {
		e.b = append(e.b, `,"ended_at":`...)
		if !e.time(en.EndedAt) {
			return false
		}
	}
	if en.Reason != "" {
		e.b = append(e.b, `,"reason":`...)
		e.str(en.Reason)
	}
	if len(en.Sent) > 0 {
		e.b = append(e.b, `,"sent":`...)
		e.strs(en.Sent)
	}
	if len(en.Opened) > 0 {
		e.b = append(e.b, `,"opened":`...)
		e.strs(en.Opened)
	}
	if len(en.Clicked) > 0 {
		e.b = append(e.b, `,"clicked":`...)
		e.strs(en.Clicked)
	}
	if len(en.SentAt) > 0 {
		e.b = append(e.b, `,"sent_at":`...)
		if !e.times(en.SentAt) {
			return false
		}
	}
	if en.PausedLeft != 0 {
		e.b = append(e.b, `,"paused_left":`...)
		e.b = strconv.AppendInt(e.b, int64(en.PausedLeft), 10)
	}
	e.b = append(e.b, '}')
	return true
}

func (e *leadEncoder) strs(ss []string) {
	e.b = append(e.b, '[')
	for i, s := range ss {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(s)
	}
	e.b = append(e.b, ']')
}

func (e *leadEncoder) times(ts []time.Time) bool {
	e.b = append(e.b, '[')
	for i, t := range ts {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		if !e.time(t) {
			return false
		}
	}
	e.b = append(e.b, ']')
	return true
}

// time appends t as time.Time.MarshalJSON does; false for a time it
// refuses (year outside [0,9999], zone offset of 24h or more).
func (e *leadEncoder) time(t time.Time) bool {
	e.b = append(e.b, '"')
	n0 := len(e.b)
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	b := e.b
	if len(b) < n0+5 || b[n0+4] != '-' {
		return false
	}
	if b[len(b)-1] != 'Z' {
		// ...±hh:mm
		c := b[len(b)-6]
		h := b[len(b)-5 : len(b)-3]
		if '0' <= c && c <= '9' || (h[0]-'0')*10+(h[1]-'0') >= 24 {
			return false
		}
	}
	e.b = append(e.b, '"')
	return true
}

// float appends f as encoding/json formats a float64.
func (e *leadEncoder) float(f float64) bool {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 → e-9
		n := len(e.b)
		if n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
	return true
}

// object appends a map[string]any with its keys sorted.
func (e *leadEncoder) object(m map[string]any, depth int) bool {
	if m == nil {
		e.b = append(e.b, "null"...)
		return true
	}
	if depth > maxDepth {
		return false
	}
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	e.b = append(e.b, '{')
	for i, k := range keys {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.str(k)
		e.b = append(e.b, ':')
		if !e.value(m[k], depth+1) {
			return false
		}
	}
	e.b = append(e.b, '}')
	return true
}

// value appends a trait value.
func (e *leadEncoder) value(v any, depth int) bool {
	switch x := v.(type) {
	case nil:
		e.b = append(e.b, "null"...)
	case string:
		e.str(x)
	case float64:
		return e.float(x)
	case bool:
		e.b = strconv.AppendBool(e.b, x)
	case int:
		e.b = strconv.AppendInt(e.b, int64(x), 10)
	case int64:
		e.b = strconv.AppendInt(e.b, x, 10)
	case map[string]any:
		return e.object(x, depth)
	case []any:
		if x == nil {
			e.b = append(e.b, "null"...)
			return true
		}
		if depth > maxDepth {
			return false
		}
		e.b = append(e.b, '[')
		for i, y := range x {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			if !e.value(y, depth+1) {
				return false
			}
		}
		e.b = append(e.b, ']')
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return false
		}
		e.b = append(e.b, b...)
	}
	return true
}

const hexDigits = "0123456789abcdef"

// htmlSafe[c] is true for ASCII bytes encoding/json copies into a string
// unescaped (it escapes <, > and & for HTML).
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// str appends s quoted as encoding/json does: short escapes for \b \f \n
// \r \t, \u00XX for other control bytes and <>&, \ufffd for each invalid
// UTF-8 byte, \u2028 and \u2029 escaped.
func (e *leadEncoder) str(s string) {
	b := append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	e.b = append(b, '"')
}

// ---------------------------------------------------------------- decoding

// leadDecoder reads a lead document with the shared low-level reader; its
// methods return false when the input needs encoding/json (which then
// decides: a value or an error).
type leadDecoder struct {
	jsonscan.Decoder
}

// newLeadDecoder reads b, with numbers in traits as float64 (as
// encoding/json decodes them into a map[string]any).
func newLeadDecoder(b []byte) leadDecoder {
	return leadDecoder{jsonscan.NewDecoder(b, jsonscan.Float64)}
}

// Field names per struct, for telling an unknown key (skipped) from one
// encoding/json would match case-insensitively (left to it).
var (
	leadFields = []string{"key", "email", "traits", "status", "owner", "score", "armed", "crossings",
		"escalation", "enrollments", "rule_use", "sends", "created_at", "updated_at", "next_run_at",
		"recent_events", "recent_next", "tick_failures"}
	scoreFields      = []string{"value", "at"}
	escalationFields = []string{"id", "rep", "at", "attempt", "tried", "acked_by", "acked_at", "ack_due_at"}
	ruleUseFields    = []string{"rule", "period_start", "points"}
	enrollmentFields = []string{"id", "sequence", "version", "step", "status", "next_run_at", "waiting_for",
		"started_at", "ended_at", "reason", "sent", "opened", "clicked", "sent_at", "paused_left"}
)

func (d *leadDecoder) lead(l *engine.Lead) bool {
	ok := d.Fields(leadFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			l.Key, ok = d.Str()
		case 1:
			l.Email, ok = d.Str()
		case 2:
			l.Traits, ok = d.Object(0)
		case 3:
			var s string
			s, ok = d.Str()
			l.Status = engine.LeadStatus(s)
		case 4:
			l.Owner, ok = d.Str()
		case 5:
			ok = d.Fields(scoreFields, func(k int) bool {
				if k == 0 {
					var ok bool
					l.Score.Value, ok = d.Float()
					return ok
				}
				return d.time(&l.Score.At)
			})
		case 6:
			l.Armed, ok = d.Bool()
		case 7:
			l.Crossings, ok = d.Int()
		case 8:
			l.Escalation = new(engine.Escalation)
			ok = d.escalation(l.Escalation)
		case 9:
			l.Enrollments, ok = d.enrollments()
		case 10:
			l.RuleUse = []engine.RuleUse{}
			ok = d.Array(func() bool {
				l.RuleUse = append(l.RuleUse, engine.RuleUse{})
				if d.Null() {
					return true
				}
				ru := &l.RuleUse[len(l.RuleUse)-1]
				return d.Fields(ruleUseFields, func(k int) bool {
					var ok bool
					switch k {
					case 0:
						ru.Rule, ok = d.Str()
					case 1:
						ok = d.time(&ru.PeriodStart)
					case 2:
						ru.Points, ok = d.Float()
					}
					return ok
				})
			})
		case 11:
			l.Sends, ok = d.times()
		case 12:
			ok = d.time(&l.CreatedAt)
		case 13:
			ok = d.time(&l.UpdatedAt)
		case 14:
			ok = d.time(&l.NextRunAt)
		case 15:
			l.RecentEvents, ok = d.strs()
		case 16:
			l.RecentNext, ok = d.Int()
		case 17:
			l.TickFailures, ok = d.Int()
		}
		return ok
	})
	return ok && d.End()
}

func (d *leadDecoder) escalation(x *engine.Escalation) bool {
	return d.Fields(escalationFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			x.ID, ok = d.Str()
		case 1:
			x.Rep, ok = d.Str()
		case 2:
			ok = d.time(&x.At)
		case 3:
			x.Attempt, ok = d.Int()
		case 4:
			x.Tried, ok = d.strs()
		case 5:
			x.AckedBy, ok = d.Str()
		case 6:
			ok = d.time(&x.AckedAt)
		case 7:
			ok = d.time(&x.AckDueAt)
		}
		return ok
	})
}

func (d *leadDecoder) enrollment(en *engine.Enrollment) bool {
	return d.Fields(enrollmentFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			en.ID, ok = d.Str()
		case 1:
			en.Sequence, ok = d.Str()
		case 2:
			en.Version, ok = d.Str()
		case 3:
			en.Step, ok = d.Str()
		case 4:
			var s string
			s, ok = d.Str()
			en.Status = engine.EnrollmentStatus(s)
		case 5:
			ok = d.time(&en.NextRunAt)
		case 6:
			en.WaitingFor, ok = d.Str()
		case 7:
			ok = d.time(&en.StartedAt)
		case 8:
			ok = d.time(&en.EndedAt)
		case 9:
			en.Reason, ok = d.Str()
		case 10:
			en.Sent, ok = d.strs()
		case 11:
			en.Opened, ok = d.strs()
		case 12:
			en.Clicked, ok = d.strs()
		case 13:
			en.SentAt, ok = d.times()
		case 14:
			var n int
			n, ok = d.Int()
			en.PausedLeft = time.Duration(n)
		}
		return ok
	})
}

// The slices below are gathered in a stack buffer and copied out at
// their final size (one allocation each).

func (d *leadDecoder) strs() ([]string, bool) {
	empty, ok := d.Open()
	if !ok || empty {
		return []string{}, ok
	}
	var buf [8]string
	out := buf[:0]
	for more := true; more; {
		var s string
		if !d.Null() {
			if s, ok = d.Str(); !ok {
				return nil, false
			}
		}
		out = append(out, s)
		if more, ok = d.Next(); !ok {
			return nil, false
		}
	}
	return slices.Clone(out), true
}

func (d *leadDecoder) times() ([]time.Time, bool) {
	empty, ok := d.Open()
	if !ok || empty {
		return []time.Time{}, ok
	}
	var buf [8]time.Time
	out := buf[:0]
	for more := true; more; {
		out = append(out, time.Time{})
		if !d.Null() && !d.time(&out[len(out)-1]) {
			return nil, false
		}
		if more, ok = d.Next(); !ok {
			return nil, false
		}
	}
	return slices.Clone(out), true
}

func (d *leadDecoder) enrollments() ([]*engine.Enrollment, bool) {
	empty, ok := d.Open()
	if !ok || empty {
		return []*engine.Enrollment{}, ok
	}
	var buf [8]*engine.Enrollment
	out := buf[:0]
	for more := true; more; {
		var en *engine.Enrollment
		if !d.Null() {
			en = new(engine.Enrollment)
			if !d.enrollment(en) {
				return nil, false
			}
		}
		out = append(out, en)
		if more, ok = d.Next(); !ok {
			return nil, false
		}
	}
	return slices.Clone(out), true
}

// time decodes a string with time.Time.UnmarshalJSON, which is what
// encoding/json hands the raw literal to.
func (d *leadDecoder) time(t *time.Time) bool {
	raw, ok := d.RawString()
	return ok && t.UnmarshalJSON(raw) == nil
}
