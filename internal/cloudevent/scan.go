package cloudevent

import "github.com/nurture-oss/nurture/internal/jsonscan"

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
	// Strings are sliced out of one copy of the input; numbers come out
	// as normalize makes them.
	s := jsonscan.NewDecoder(b, jsonscan.Int64OrFloat64)
	ok = s.Fields(envelopeFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			env.SpecVersion, ok = s.Str()
		case 1:
			env.ID, ok = s.Str()
		case 2:
			env.Source, ok = s.Str()
		case 3:
			env.Type, ok = s.Str()
		case 4:
			env.Subject, ok = s.Str()
		case 5:
			env.Time, ok = s.Str()
		case 6:
			env.DataContentType, ok = s.Str()
		case 7:
			hasData = true
			ok = scanData(&s, d)
		}
		return ok
	})
	return hasData, ok && s.End()
}

var (
	envelopeFields = []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}
	dataFields     = []string{"email", "traits", "properties", "machine"}
)

func scanData(s *jsonscan.Decoder, d *Data) bool {
	return s.Fields(dataFields, func(k int) bool {
		var ok bool
		switch k {
		case 0:
			d.Email, ok = s.Str()
		case 1:
			d.Traits, ok = s.Object(0)
		case 2:
			d.Properties, ok = s.Object(0)
		case 3:
			d.Machine, ok = s.Bool()
		}
		return ok
	})
}
