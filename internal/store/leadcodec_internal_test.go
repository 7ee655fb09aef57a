package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// TestLeadCodecFastPath: the documents we write take the hand-coded paths,
// never the encoding/json fallback (which would be correct, only slow).
func TestLeadCodecFastPath(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 9, 0, 0, 5, time.FixedZone("", 3600))
	l := engine.NewLead("k<1>", now)
	l.Email = "a@example.com"
	l.Traits = map[string]any{"name": "Zoë \"Z\"", "n": 1.5, "ok": true, "none": nil,
		"list": []any{"a", 2.0, map[string]any{"b": []any{}}}, "i": 3}
	l.Score = engine.Score{Value: 1e-9, At: now}
	l.Escalation = &engine.Escalation{ID: "e", Rep: "r", At: now, Attempt: 1, Tried: []string{"r0"}, AckedAt: now}
	l.Enrollments = []*engine.Enrollment{nil, {ID: "x", Status: engine.EnrollmentPaused, PausedLeft: time.Hour,
		SentAt: []time.Time{now}, Sent: []string{"s"}}}
	l.RuleUse = []engine.RuleUse{{Rule: "r", PeriodStart: now, Points: 2}}
	l.Sends = []time.Time{now}
	l.RecentEvents = []string{"e1"}
	e := leadEncoder{}
	if !e.lead(l) {
		t.Fatal("encoder fell back")
	}
	want, err := json.Marshal(l)
	if err != nil || string(want) != string(e.b) {
		t.Fatalf("encode mismatch:\n%s\n%s", want, e.b)
	}
	for _, doc := range []string{string(want), "{}", `{"key":"k","unknown":[{"a":null}]}`,
		`{"key": "k", "armed": true, "score": {"at": "2026-03-02T09:00:00Z", "value": 1}, "traits": {"a": [1, 2]}}`} {
		d := newLeadDecoder([]byte(doc))
		if !d.lead(new(engine.Lead)) {
			t.Fatalf("decoder fell back on %s", doc)
		}
	}
}
