package engine

import "strconv"

// Stable identifiers.
//
// Ids are built from their parts with every byte outside [A-Za-z0-9_-]
// escaped as %XX (upper-case hex), so a part never contains the "."
// separator and every id is safe in URLs, NATS message ids and the local
// part of an RFC 5322 Message-ID. The number of dot-separated fields tells
// the kinds apart:
//
//	EnrollmentID("L1", "trial-nurture", 1)  = "L1.trial-nurture.1"
//	SendID("L1.trial-nurture.1", "welcome") = "L1.trial-nurture.1.welcome"
//	EscalationID("L1", 2)                   = "L1.escalation-2"
//	EnrollmentID("ana@x.io", "a b", 1)      = "ana%40x%2Eio.a%20b.1"

// EnrollmentID is the id of a lead's n-th enrollment (1-based) in a sequence.
func EnrollmentID(leadKey, sequence string, n int) string {
	return escapeID(leadKey) + "." + escapeID(sequence) + "." + strconv.Itoa(n)
}

// SendID is the id of the email of one step of one enrollment. The engine
// emits at most one SendEmail per SendID.
func SendID(enrollmentID, step string) string {
	return enrollmentID + "." + escapeID(step)
}

// EscalationID is the id of the lead's crossing-th escalation (1-based). It
// stays the same across re-routes of that escalation, so receivers can
// dedupe on it.
func EscalationID(leadKey string, crossing int) string {
	return escapeID(leadKey) + ".escalation-" + strconv.Itoa(crossing)
}

func idSafe(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func escapeID(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !idSafe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if idSafe(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}
