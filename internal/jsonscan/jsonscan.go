// Package jsonscan is the low-level JSON reader under the hand-written
// decoders of hot documents (the stored lead, incoming CloudEvents): a
// cursor over one input with the primitives those decoders are built from.
//
// Every method either consumes what it reads and returns ok true, or returns
// ok false, after which the Decoder's position is unspecified. A false is
// not an error: it means "not sure", and the caller hands the whole input to
// encoding/json, which then decides (a value or its own error). So the
// methods accept only what they decode exactly as encoding/json would and
// reject the rest: syntax errors, but also keys that encoding/json could
// match case-insensitively, duplicate struct keys, numbers out of range and
// nesting deeper than MaxDepth.
//
// Decoded strings share one copy of the input (see NewDecoder), so a single
// allocation backs all the plain ones.
package jsonscan

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth bounds nesting in Object, Value and Skip; deeper input is left
// to encoding/json (which has its own limits and errors).
const MaxDepth = 200

// NumberMode selects how Value (and Object) decode numbers.
type NumberMode uint8

const (
	// Float64 decodes numbers as encoding/json does into an interface{}:
	// float64, failing for one out of float64's range.
	Float64 NumberMode = iota
	// Int64OrFloat64 decodes numbers as encoding/json with UseNumber and
	// then a normalization do: int64 when the literal parses as one, else
	// float64 (±Inf when out of range, json.Number.Float64's error being
	// ignored).
	Int64OrFloat64
)

// Decoder reads a JSON input from a position. The zero value reads an empty
// input; use NewDecoder.
type Decoder struct {
	b       []byte
	s       string // b as a string, for slicing strings out of
	i       int
	numbers NumberMode
}

// NewDecoder returns a Decoder at the start of b, decoding numbers in Value
// and Object as numbers says. It copies b once (strings returned are
// slices of the copy), so b is not retained.
func NewDecoder(b []byte, numbers NumberMode) Decoder {
	return Decoder{b: b, s: string(b), numbers: numbers}
}

// WS skips whitespace.
func (d *Decoder) WS() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// Peek skips whitespace and returns the next byte (0 at the end).
func (d *Decoder) Peek() byte {
	d.WS()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// Eat skips whitespace and consumes c if it is next.
func (d *Decoder) Eat(c byte) bool {
	if d.Peek() == c {
		d.i++
		return true
	}
	return false
}

// End skips whitespace and reports whether the input is all consumed.
func (d *Decoder) End() bool {
	d.WS()
	return d.i == len(d.b)
}

// Null skips whitespace and consumes a null literal if one is next.
func (d *Decoder) Null() bool {
	if d.Peek() == 'n' && d.i+4 <= len(d.s) && d.s[d.i:d.i+4] == "null" {
		d.i += 4
		return true
	}
	return false
}

// Bool decodes a true or false literal at the position.
func (d *Decoder) Bool() (v, ok bool) {
	switch rest := d.s[d.i:]; {
	case strings.HasPrefix(rest, "true"):
		d.i += 4
		return true, true
	case strings.HasPrefix(rest, "false"):
		d.i += 5
		return false, true
	}
	return false, false
}

// Fields reads the members of an object whose '{' is next, calling field
// with the index in names (at most 64 distinct lower-case names) of each
// known key whose value is not null: null leaves a field as it is, as in
// encoding/json. field is called with the position at the value, which it
// must consume. A plain-ASCII key that matches no name even
// case-insensitively is skipped with its value; keys with escapes or
// non-ASCII bytes, case-folded names and duplicates fail.
func (d *Decoder) Fields(names []string, field func(k int) bool) bool {
	if !d.Eat('{') {
		return false
	}
	if d.Eat('}') {
		return true
	}
	var seen uint64
	for {
		if d.Peek() != '"' {
			return false
		}
		start := d.i + 1
		j := start
		for j < len(d.b) && d.b[j] != '"' {
			if c := d.b[j]; c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
				return false
			}
			j++
		}
		if j >= len(d.b) {
			return false
		}
		key := d.s[start:j]
		d.i = j + 1
		if !d.Eat(':') {
			return false
		}
		d.WS()
		if k := slices.Index(names, key); k >= 0 {
			if seen&(1<<k) != 0 {
				return false
			}
			seen |= 1 << k
			if !d.Null() && !field(k) {
				return false
			}
		} else {
			for _, n := range names {
				if strings.EqualFold(n, key) {
					return false
				}
			}
			if !d.Skip(0) {
				return false
			}
		}
		if more, ok := d.nextMember(); !more {
			return ok
		}
	}
}

// Array reads the elements of an array whose '[' is next, calling elem
// with the position at each element (null ones included: elem decides).
func (d *Decoder) Array(elem func() bool) bool {
	empty, ok := d.Open()
	if !ok || empty {
		return ok
	}
	for more := true; more; {
		if !elem() {
			return false
		}
		if more, ok = d.Next(); !ok {
			return false
		}
	}
	return true
}

// Open consumes the '[' of an array that is next (and its ']' if it is
// empty) and the whitespace before the first element. With Next, it is
// Array for loops that gather elements themselves:
//
//	empty, ok := d.Open()
//	...
//	for more := true; more; {
//		// decode an element
//		if more, ok = d.Next(); !ok { ... }
//	}
func (d *Decoder) Open() (empty, ok bool) {
	if !d.Eat('[') {
		return false, false
	}
	if d.Eat(']') {
		return true, true
	}
	d.WS()
	return false, true
}

// Next consumes what follows an array element: more is true after a comma
// (and the whitespace after it: the next element is due), false after the
// closing bracket.
func (d *Decoder) Next() (more, ok bool) {
	switch d.Peek() {
	case ',':
		d.i++
		d.WS()
		return true, true
	case ']':
		d.i++
		return false, true
	}
	return false, false
}

// nextMember consumes what follows an object member: more is true after a
// comma, false after the closing brace.
func (d *Decoder) nextMember() (more, ok bool) {
	switch d.Peek() {
	case ',':
		d.i++
		return true, true
	case '}':
		d.i++
		return false, true
	}
	return false, false
}

// scanString consumes a string literal at the position (validating its
// escapes) and reports whether it has escapes and whether it has non-ASCII
// bytes.
func (d *Decoder) scanString() (esc, high, ok bool) {
	b := d.b
	i := d.i
	if i >= len(b) || b[i] != '"' {
		return false, false, false
	}
	for i++; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			d.i = i + 1
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
					if !isHex(h) {
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

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// RawString consumes a string literal at the position and returns it as
// it is in the input, quotes and escapes included (for an UnmarshalJSON).
func (d *Decoder) RawString() ([]byte, bool) {
	start := d.i
	if _, _, ok := d.scanString(); !ok {
		return nil, false
	}
	return d.b[start:d.i], true
}

// Str decodes a string literal at the position. A plain one is sliced out
// of the input's copy; one with escapes or invalid UTF-8 (which
// encoding/json replaces) is unquoted by encoding/json itself.
func (d *Decoder) Str() (string, bool) {
	start := d.i
	esc, high, ok := d.scanString()
	if !ok {
		return "", false
	}
	if raw := d.s[start+1 : d.i-1]; !esc && (!high || utf8.ValidString(raw)) {
		return raw, true
	}
	var s string
	if json.Unmarshal(d.b[start:d.i], &s) != nil {
		return "", false
	}
	return s, true
}

// Number consumes a number literal at the position and returns its text.
func (d *Decoder) Number() (string, bool) {
	text, _, ok := d.number()
	return text, ok
}

// number is Number, also reporting whether the literal is integral (no
// fraction, no exponent).
func (d *Decoder) number() (text string, integral, ok bool) {
	b := d.b
	i := d.i
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
		return "", false, false
	}
	integral = true
	if i < len(b) && b[i] == '.' {
		integral = false
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return "", false, false
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
			return "", false, false
		}
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	}
	d.i = i
	return d.s[start:i], integral, true
}

// Float decodes a number at the position as encoding/json does into a
// float64 (failing when out of range).
func (d *Decoder) Float() (float64, bool) {
	s, ok := d.Number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// Int decodes a number at the position as encoding/json does into an int:
// an integer literal that fits.
func (d *Decoder) Int() (int, bool) {
	s, ok := d.Number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || int64(int(n)) != n {
		return 0, false
	}
	return int(n), true
}

// numberValue decodes a number at the position as the NumberMode says.
func (d *Decoder) numberValue() (any, bool) {
	text, integral, ok := d.number()
	if !ok {
		return nil, false
	}
	if d.numbers == Int64OrFloat64 {
		if integral {
			if n, err := strconv.ParseInt(text, 10, 64); err == nil {
				return n, true
			}
		}
		f, _ := strconv.ParseFloat(text, 64) // as json.Number.Float64, error ignored
		return f, true
	}
	f, err := strconv.ParseFloat(text, 64)
	return f, err == nil
}

// Object decodes an object whose '{' is next into a map[string]any as
// encoding/json does (a later duplicate key wins), depth being its
// nesting so far.
func (d *Decoder) Object(depth int) (map[string]any, bool) {
	if depth > MaxDepth || !d.Eat('{') {
		return nil, false
	}
	m := make(map[string]any)
	if d.Eat('}') {
		return m, true
	}
	for {
		d.WS()
		k, ok := d.Str()
		if !ok || !d.Eat(':') {
			return nil, false
		}
		d.WS()
		v, ok := d.Value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v
		if more, ok := d.nextMember(); !more {
			if !ok {
				return nil, false
			}
			return m, true
		}
	}
}

// Value decodes any value at the position as encoding/json does into an
// interface{}, numbers as the NumberMode says.
func (d *Decoder) Value(depth int) (any, bool) {
	if d.i >= len(d.b) {
		return nil, false
	}
	switch d.b[d.i] {
	case '"':
		return d.Str()
	case '{':
		return d.Object(depth)
	case '[':
		if depth > MaxDepth {
			return nil, false
		}
		empty, ok := d.Open()
		if !ok || empty {
			return make([]any, 0), ok
		}
		// Gathered on the stack, copied out at the final size.
		var buf [8]any
		out := buf[:0]
		for more := true; more; {
			v, ok := d.Value(depth + 1)
			if !ok {
				return nil, false
			}
			out = append(out, v)
			if more, ok = d.Next(); !ok {
				return nil, false
			}
		}
		return slices.Clone(out), true
	case 't', 'f':
		return d.Bool()
	case 'n':
		return nil, d.Null()
	default:
		return d.numberValue()
	}
}

// Skip consumes and validates any value at the position.
func (d *Decoder) Skip(depth int) bool {
	if d.i >= len(d.b) || depth > MaxDepth {
		return false
	}
	switch d.b[d.i] {
	case '"':
		_, _, ok := d.scanString()
		return ok
	case '{':
		d.i++
		if d.Eat('}') {
			return true
		}
		for {
			d.WS()
			if _, _, ok := d.scanString(); !ok || !d.Eat(':') {
				return false
			}
			d.WS()
			if !d.Skip(depth + 1) {
				return false
			}
			if more, ok := d.nextMember(); !more {
				return ok
			}
		}
	case '[':
		empty, ok := d.Open()
		if !ok || empty {
			return ok
		}
		for more := true; more; {
			if !d.Skip(depth + 1) {
				return false
			}
			if more, ok = d.Next(); !ok {
				return false
			}
		}
		return true
	case 't', 'f':
		_, ok := d.Bool()
		return ok
	case 'n':
		return d.Null()
	default:
		_, _, ok := d.number()
		return ok
	}
}
