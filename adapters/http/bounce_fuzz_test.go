package httpapi

import (
	"testing"

	"github.com/nurture-oss/nurture/internal/token"
)

// FuzzParseReport feeds arbitrary bytes to the DSN/ARF parser: it must
// never panic, and whatever it accepts names a recipient.
func FuzzParseReport(f *testing.F) {
	s, err := token.New(token.Key{ID: "k1", Secret: []byte("0123456789abcdef")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"))
	f.Add([]byte("Content-Type: multipart/report; report-type=feedback-report; boundary=B\r\n\r\n--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nOriginal-Rcpt-To: <a@b.example>\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Nurture-Ref: k1.e30.AAAAAAAAAAAAAAAAAAAAAA\r\n\r\n--B--\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		reports, err := parseReport(s, raw)
		if err != nil {
			return
		}
		for _, r := range reports {
			if r.Email == "" {
				t.Fatalf("accepted a report without a recipient: %+v", r)
			}
		}
	})
}
