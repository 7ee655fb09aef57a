package cloudevent

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// scan is the fast path of Parse: a hand-written reader for the events we
// see (the envelope attributes as strings, unknown extensions, a data
// object), about an order of magnitude cheaper than encoding/json's
// reflection. It fills env (but not env.Data) and d exactly as parseSlow's
// decoding would, with d's numbers already normalized (int64 when
// integral, else float64), and reports whether there is data to apply.
// Anything it is not sure about (a syntax error, a duplicate or
// case-folded key, a value of the wrong type, trailing bytes, deep
// nesting) makes it return ok false, and parseSlow decides: the result or
// the error is then encoding/json's.
func scan(b []byte, env *Envelope, d *Data) (hasData, ok bool) {
	// Strings are sliced out of one copy of the input.
	s := scanner{b: b, s: string(b)}
	ok = s.fields(envelopeFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			env.SpecVersion, ok = s.str()
		case 1:
			env.ID, ok = s.str()
		case 2:
			env.Source, ok = s.str()
		case 3:
			env.Type, ok = s.str()
		case 4:
			env.Subject, ok = s.str()
		case 5:
			env.Time, ok = s.str()
		case 6:
			env.DataContentType, ok = s.str()
		case 7:
			hasData = true
			ok = s.data(d)
		}
		return ok
	})
	s.ws()
	return hasData, ok && s.i == len(s.b)
}

var (
	envelopeFields = []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
	dataFields     = []string{"email", "traits", "properties", "machine"}
)

// maxDepth bounds nesting in data on the fast path.
const maxDepth = 200

type scanner struct {
	b []byte
	s string // b as a string
	i int
}

func (s *scanner) data(d *Data) bool {
	return s.fields(dataFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			d.Email, ok = s.str()
		case 1:
			d.Traits, ok = s.object(0)
		case 2:
			d.Properties, ok = s.object(0)
		case 3:
			d.Machine, ok = s.bool()
		}
		return ok
	})
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

func (s *scanner) null() bool {
	if s.peek() == 'n' && strings.HasPrefix(s.s[s.i:], "null") {
		s.i += 4
		return true
	}
	return false
}

// fields reads the members of an object whose '{' is next, calling field
// with the index in names of each known key whose value is not null (null
// leaves a field of a fresh struct as it is, as in encoding/json). A
// plain-ASCII key that matches no name even case-insensitively is skipped;
// other keys and duplicates fail.
func (s *scanner) fields(names []string, field func(k int) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	var seen uint64
	for {
		if s.peek() != '"' {
			return false
		}
		start := s.i + 1
		j := start
		for j < len(s.b) && s.b[j] != '"' {
			if c := s.b[j]; c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				return false
			}
			j++
		}
		if j >= len(s.b) {
			return false
		}
		key := s.s[start:j]
		s.i = j + 1
		if !s.eat(':') {
			return false
		}
		k := -1
		for n, name := range names {
			if name == key {
				k = n
				break
			}
			if strings.EqualFold(name, key) {
				return false
			}
		}
		s.ws()
		switch {
		case k >= 0:
			if seen&(1<<k) != 0 {
				return false
			}
			seen |= 1 << k
			if !s.null() && !field(k) {
				return false
			}
		case !s.skip(0):
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// scanString consumes a string literal, validating its escapes.
func (s *scanner) scanString() (esc, high, ok bool) {
	b := s.b
	i := s.i
	if i >= len(b) || b[i] != '"' {
		return false, false, false
	}
	for i++; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return esc, high, true
		case c < 0x20:
			return false, false, false
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				return false, false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return false, false, false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false, false, false
					}
				}
				i += 4
			default:
				return false, false, false
			}
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return false, false, false
}

// str decodes a string literal; ones with escapes or invalid UTF-8 are
// unquoted by encoding/json itself.
func (s *scanner) str() (string, bool) {
	start := s.i
	esc, high, ok := s.scanString()
	if !ok {
		return "", false
	}
	if raw := s.s[start+1 : s.i-1]; !esc && (!high || utf8.ValidString(raw)) {
		return raw, true
	}
	var out string
	if json.Unmarshal(s.b[start:s.i], &out) != nil {
		return "", false
	}
	return out, true
}

func (s *scanner) bool() (bool, bool) {
	switch rest := s.s[s.i:]; {
	case strings.HasPrefix(rest, "true"):
		s.i += 4
		return true, true
	case strings.HasPrefix(rest, "false"):
		s.i += 5
		return false, true
	}
	return false, false
}

// number consumes a JSON number and returns it as normalize would: int64
// when it parses as one, else float64.
func (s *scanner) number() (any, bool) {
	b := s.b
	i := s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return nil, false
	}
	integral := true
	if i < len(b) && b[i] == '.' {
		integral = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integral = false
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	s.i = i
	text := s.s[start:i]
	if integral {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return n, true
		}
	}
	f, _ := strconv.ParseFloat(text, 64) // as json.Number.Float64, error ignored
	return f, true
}

// object decodes an object into a map (a later duplicate key wins).
func (s *scanner) object(depth int) (map[string]any, bool) {
	if depth > maxDepth || !s.eat('{') {
		return nil, false
	}
	m := make(map[string]any)
	if s.eat('}') {
		return m, true
	}
	for {
		s.ws()
		k, ok := s.str()
		if !ok || !s.eat(':') {
			return nil, false
		}
		s.ws()
		v, ok := s.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return m, true
		default:
			return nil, false
		}
	}
}

func (s *scanner) array(depth int) ([]any, bool) {
	if depth > maxDepth || !s.eat('[') {
		return nil, false
	}
	if s.eat(']') {
		return make([]any, 0), true
	}
	var buf [8]any
	out := buf[:0]
	for {
		s.ws()
		v, ok := s.value(depth + 1)
		if !ok {
			return nil, false
		}
		out = append(out, v)
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return append([]any(nil), out...), true
		default:
			return nil, false
		}
	}
}

// value decodes any value as encoding/json does into an interface{}, with
// numbers normalized.
func (s *scanner) value(depth int) (any, bool) {
	if s.i >= len(s.b) {
		return nil, false
	}
	switch s.b[s.i] {
	case '"':
		return s.str()
	case '{':
		return s.object(depth)
	case '[':
		return s.array(depth)
	case 't', 'f':
		return s.bool()
	case 'n':
		return nil, s.null()
	default:
		return s.number()
	}
}

// skip consumes and validates any value.
func (s *scanner) skip(depth int) bool {
	if s.i >= len(s.b) || depth > maxDepth {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, _, ok := s.scanString()
		return ok
	case '{':
		s.i++
		if s.eat('}') {
			return true
		}
		for {
			s.ws()
			if _, _, ok := s.scanString(); !ok || !s.eat(':') {
				return false
			}
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case '}':
				s.i++
				return true
			default:
				return false
			}
		}
	case '[':
		s.i++
		if s.eat(']') {
			return true
		}
		for {
			s.ws()
			if !s.skip(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case 't', 'f':
		_, ok := s.bool()
		return ok
	case 'n':
		return s.null()
	default:
		_, ok := s.number()
		return ok
	}
}
