package leadview_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/store"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func hist(t *testing.T, at time.Duration, kind, eventID string, data any) store.History {
	t.Helper()
	b, err := json.Marshal(data)
	require.NoError(t, err)
	return store.History{LeadKey: "lead-1", At: t0.Add(at), Kind: kind, EventID: eventID, Data: b}
}

func builder() *leadview.Builder {
	return &leadview.Builder{
		PublicURL: "https://n.example/",
		HalfLife:  time.Hour,
		Threshold: 50,
		Reps:      []engine.Rep{{ID: "sam", Name: "Sam Rivera", Email: "sam@example.com"}, {ID: "kim", Name: "Kim"}},
		Rules: []*engine.Rule{
			{ID: "pricing", Event: "page.viewed", Points: 10},
			{ID: "demo", Event: "demo.requested", Points: 40},
			{ID: "unsub", Event: "email.unsubscribed", Points: -20},
		},
		AckToken: func(c leadview.AckClaim) (string, error) { return "tok." + c.Escalation + "." + c.Rep, nil },
	}
}

func escalatedLead() *engine.Lead {
	l := engine.NewLead("lead-1", t0)
	l.Email = "ada@example.com"
	l.Traits = map[string]any{"first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines"}
	l.Score = engine.Score{Value: 60, At: t0.Add(2 * time.Hour)}
	l.Owner = "sam"
	l.Escalation = &engine.Escalation{ID: "esc-1", Rep: "sam", At: t0.Add(2 * time.Hour), Attempt: 1, AckDueAt: t0.Add(3 * time.Hour)}
	return l
}

func history(t *testing.T) []store.History {
	// Deliberately out of order: Build sorts by time (stable for equal
	// times, so entries of one apply keep their order).
	return []store.History{
		hist(t, 0, "event", "e1", engine.Event{ID: "e1", Type: "page.viewed", Lead: "lead-1", Properties: map[string]any{"url": "/pricing"}}),
		hist(t, 0, "score.changed", "e1", engine.ScoreChanged{Rule: "pricing", Event: "e1", Delta: 10, Score: 10}),
		hist(t, time.Hour, "email.sent", "", engine.SendEmail{Template: "tips", Sequence: "trial", Step: "tips"}),
		// As the runtime records events: no id in the data, it is in EventID.
		hist(t, time.Hour, "event", "e2", map[string]any{"type": "page.viewed", "properties": map[string]any{"url": "/pricing"}}),
		hist(t, time.Hour, "score.changed", "e2", engine.ScoreChanged{Rule: "pricing", Event: "e2", Delta: 10, Score: 15}),
		hist(t, 2*time.Hour, "event", "e3", engine.Event{ID: "e3", Type: "demo.requested", Lead: "lead-1"}),
		hist(t, 2*time.Hour, "score.changed", "e3", engine.ScoreChanged{Rule: "demo", Event: "e3", Delta: 45, Score: 60, Capped: false}),
		hist(t, time.Hour, "waiting", "", engine.Waiting{Sequence: "trial", Step: "pause", Reason: "wait"}),
		hist(t, 2*time.Hour, "escalated", "e3", engine.Escalated{ID: "esc-1", Rep: "sam", Attempt: 1, Score: 60, Reason: "round-robin among 2"}),
	}
}

func TestBuildNotificationView(t *testing.T) {
	t.Parallel()
	b := builder()
	now := t0.Add(3 * time.Hour) // one half-life after the last change
	v, err := b.Build(leadview.Input{
		Lead: escalatedLead(), History: history(t), Now: now,
		Escalation: &engine.Escalated{ID: "esc-1", Rep: "sam", Attempt: 1, Score: 60, Reason: "round-robin among 2"},
	})
	require.NoError(t, err)

	require.Equal(t, "Ada Lovelace", v.Name)
	require.Equal(t, "Analytical Engines", v.Company)
	require.Equal(t, 30.0, v.Score, "decayed by one half-life")

	// Without a notified escalation the view shows the lead's current one,
	// with the crossing's score and reason from the timeline.
	cur, err := b.Build(leadview.Input{Lead: escalatedLead(), History: history(t), Now: now})
	require.NoError(t, err)
	require.Equal(t, 60.0, cur.Escalation.Score)
	require.Equal(t, "round-robin among 2", cur.Escalation.Reason)
	require.Equal(t, 50.0, v.Threshold)
	require.Equal(t, &leadview.Rep{ID: "sam", Name: "Sam Rivera", Email: "sam@example.com"}, v.Owner)
	require.Equal(t, "https://n.example/leads/lead-1", v.LeadURL)
	require.Equal(t, "https://n.example/ack/tok.esc-1.sam", v.AckURL)
	require.Equal(t, t0.Add(3*time.Hour), v.Escalation.AckDueAt)
	require.Equal(t, "round-robin among 2", v.Escalation.Reason)

	require.Equal(t, []leadview.Contribution{
		{Rule: "demo", Event: "demo.requested", Points: 45, Count: 1},
		{Rule: "pricing", Event: "page.viewed", Points: 20, Count: 2},
	}, v.Top)

	var recent []string
	for _, a := range v.Recent {
		recent = append(recent, a.Summary+" "+leadview.Signed(a.Points))
	}
	require.Equal(t, []string{
		"demo.requested +45",
		"page.viewed · /pricing +10",
		"Email sent: tips (trial / tips) +0",
		"page.viewed · /pricing +10",
	}, recent)

	require.Len(t, v.Timeline, 9)
	require.Equal(t, "event", v.Timeline[0].Kind, "timeline is sorted, stable for equal times")
	require.Equal(t, "score.changed", v.Timeline[1].Kind)
	require.Contains(t, v.Timeline[8].Summary, "Escalated to Sam Rivera at score 60: round-robin among 2")

	// Score over time: from 0 at creation, through every change, decaying in
	// between, ending at now.
	require.Equal(t, leadview.ScorePoint{At: t0, Score: 0}, v.Points[0])
	last := v.Points[len(v.Points)-1]
	require.Equal(t, now, last.At)
	require.Equal(t, 30.0, last.Score)
	var changes []float64
	for i, p := range v.Points {
		if i > 0 {
			require.False(t, p.At.Before(v.Points[i-1].At), "points are in time order")
		}
		if p.Change {
			changes = append(changes, p.Score)
		}
	}
	require.Equal(t, []float64{10, 15, 60}, changes)
}

func TestBuildIdentityAndOwner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		email       string
		traits      map[string]any
		owner       string
		wantName    string
		wantCompany string
		wantOwner   *leadview.Rep
	}{
		{name: "name trait", traits: map[string]any{"name": " Grace Hopper ", "company_name": "Navy"}, wantName: "Grace Hopper", wantCompany: "Navy"},
		{name: "first and last", traits: map[string]any{"firstName": "Alan", "lastName": "Turing", "organization": "NPL"}, wantName: "Alan Turing", wantCompany: "NPL"},
		{name: "first only", traits: map[string]any{"first_name": "Alan"}, wantName: "Alan"},
		{name: "email fallback", email: "x@example.com", traits: map[string]any{"name": 42}, wantName: "x@example.com"},
		{name: "key fallback", wantName: "lead-1"},
		{name: "known owner", owner: "kim", wantName: "lead-1", wantOwner: &leadview.Rep{ID: "kim", Name: "Kim"}},
		{name: "unknown owner", owner: "zed", wantName: "lead-1", wantOwner: &leadview.Rep{ID: "zed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := engine.NewLead("lead-1", t0)
			l.Email, l.Traits, l.Owner = tt.email, tt.traits, tt.owner
			v, err := builder().Build(leadview.Input{Lead: l, Now: t0})
			require.NoError(t, err)
			require.Equal(t, tt.wantName, v.Name)
			require.Equal(t, tt.wantCompany, v.Company)
			require.Equal(t, tt.wantOwner, v.Owner)
			require.Nil(t, v.Escalation)
			require.Empty(t, v.AckURL, "nothing to acknowledge")
		})
	}
}

func TestBuildAckedAndReroutedEscalations(t *testing.T) {
	t.Parallel()
	l := escalatedLead()
	l.Escalation.Attempt, l.Escalation.Rep, l.Owner = 2, "kim", "kim"
	l.Escalation.Tried = []string{"sam"}
	l.Escalation.AckDueAt = t0.Add(5 * time.Hour)

	// The first attempt's notification, delivered late, still names sam
	// but takes no SLA deadline from the newer attempt.
	v, err := builder().Build(leadview.Input{Lead: l, Now: t0.Add(4 * time.Hour), Escalation: &engine.Escalated{ID: "esc-1", Rep: "sam", Attempt: 1}})
	require.NoError(t, err)
	require.Equal(t, "sam", v.Owner.ID)
	require.True(t, v.Escalation.AckDueAt.IsZero())

	v, err = builder().Build(leadview.Input{Lead: l, Now: t0.Add(4 * time.Hour)})
	require.NoError(t, err)
	require.Equal(t, 2, v.Escalation.Attempt)
	require.Zero(t, v.Escalation.Score, "no escalated entry for attempt 2 in the timeline")
	require.Equal(t, "kim", v.Owner.ID)
	require.Equal(t, "https://n.example/ack/tok.esc-1.kim", v.AckURL)

	l.Escalation.AckedBy, l.Escalation.AckedAt = "kim", t0.Add(4*time.Hour)
	v, err = builder().Build(leadview.Input{Lead: l, Now: t0.Add(4 * time.Hour)})
	require.NoError(t, err)
	require.True(t, v.Escalation.Acked())
	require.Empty(t, v.AckURL, "no ack link once acknowledged")
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	_, err := builder().Build(leadview.Input{})
	require.Error(t, err)

	b := builder()
	b.AckToken = func(leadview.AckClaim) (string, error) { return "", errors.New("no key") }
	_, err = b.Build(leadview.Input{Lead: escalatedLead(), Now: t0})
	require.ErrorContains(t, err, "sign ack link")
}

func TestDecay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		v    float64
		at   time.Time
		now  time.Time
		hl   time.Duration
		want float64
	}{
		{"no half-life", 80, t0, t0.Add(time.Hour), 0, 80},
		{"one half-life", 80, t0, t0.Add(time.Hour), time.Hour, 40},
		{"two half-lives", 80, t0, t0.Add(2 * time.Hour), time.Hour, 20},
		{"now before at", 80, t0, t0.Add(-time.Hour), time.Hour, 80},
		{"zero at", 80, time.Time{}, t0, time.Hour, 80},
		{"negative", -8, t0, t0.Add(time.Hour), time.Hour, -4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tt.want, leadview.Decay(tt.v, tt.at, tt.now, tt.hl), 1e-9)
		})
	}
}

func TestTopContributorsBoundedAndPositive(t *testing.T) {
	t.Parallel()
	l := engine.NewLead("lead-1", t0)
	var h []store.History
	for i, r := range []struct {
		rule  string
		delta float64
	}{{"a", 5}, {"b", 9}, {"c", 1}, {"d", 7}, {"e", 3}, {"f", 8}, {"neg", -20}, {"b", 1}} {
		h = append(h, hist(t, time.Duration(i)*time.Minute, "score.changed", "", engine.ScoreChanged{Rule: r.rule, Delta: r.delta}))
	}
	b := builder()
	b.TopN = 3
	v, err := b.Build(leadview.Input{Lead: l, History: h, Now: t0.Add(time.Hour)})
	require.NoError(t, err)
	var got []string
	for _, c := range v.Top {
		got = append(got, c.Rule+":"+leadview.Num(c.Points))
	}
	require.Equal(t, []string{"b:10", "f:8", "d:7"}, got)
}

func TestRenderEmail(t *testing.T) {
	t.Parallel()
	l := escalatedLead()
	l.Traits["company"] = `<script>alert("x")</script>`
	v, err := builder().Build(leadview.Input{Lead: l, History: history(t), Now: t0.Add(3 * time.Hour),
		Escalation: &engine.Escalated{ID: "esc-1", Rep: "sam", Attempt: 1, Score: 60}})
	require.NoError(t, err)

	m, err := leadview.RenderEmail(v)
	require.NoError(t, err)
	require.Equal(t, "sam@example.com", m.To)
	require.Equal(t, "Sam Rivera", m.ToName)
	require.Equal(t, `Hot lead: Ada Lovelace (<script>alert("x")</script>), score 30`, m.Subject)
	require.Equal(t, "escalation.esc-1.1", m.MessageID)
	require.NotContains(t, m.HTML, "<script>", "traits are escaped in HTML")
	require.Contains(t, m.HTML, "&lt;script&gt;")
	for _, part := range []string{m.HTML, m.Text} {
		require.Contains(t, part, "Ada Lovelace")
		require.Contains(t, part, "Score 30")
		require.Contains(t, part, "demo.requested")
		require.Contains(t, part, "https://n.example/leads/lead-1")
		require.Contains(t, part, "https://n.example/ack/tok.esc-1.sam")
		require.Contains(t, part, "esc-1")
	}
	require.Contains(t, m.Text, "WHY THIS LEAD IS HOT\n  +45  demo.requested (rule demo)")
	require.True(t, strings.Contains(m.Text, "Acknowledge by Mon 2 Mar 11:00 UTC"), m.Text)

	v.Owner.Email = ""
	_, err = leadview.RenderEmail(v)
	require.Error(t, err)
}

func TestAckClaim(t *testing.T) {
	t.Parallel()
	c := leadview.AckClaim{Lead: "lead-1", Escalation: "esc-1", Rep: "sam"}
	got, err := leadview.DecodeAckClaim(c.Encode())
	require.NoError(t, err)
	require.Equal(t, c, got)

	for _, bad := range []string{``, `{}`, `{"l":"a","e":"b"}`, `not json`} {
		_, err := leadview.DecodeAckClaim([]byte(bad))
		require.ErrorIs(t, err, leadview.ErrBadClaim, bad)
	}
}
