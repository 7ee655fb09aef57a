package runner

import (
	"encoding/json"
	"testing"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/outbox"
)

// emailHead must read the same fields as outbox.EmailPayload: a renamed
// JSON field there would otherwise leave the dispatcher with an empty
// address or send id.
func TestEmailHeadReadsTheEmailPayload(t *testing.T) {
	send := engine.SendEmail{SendID: "e1.s1", Enrollment: "e1", Sequence: "welcome", Version: "v1",
		Step: "s1", Template: "hello", To: "a@example.com", From: "f@example.com", ReplyTo: "r@example.com", Transactional: true}
	b, err := json.Marshal(outbox.EmailPayload{Send: send, Lead: "l1", To: "a@example.com", Traits: map[string]any{"to": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	var h emailHead
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.Send != send || h.To != "a@example.com" {
		t.Fatalf("emailHead = %+v, want send %+v and to a@example.com", h, send)
	}
}
