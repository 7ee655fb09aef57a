package slack_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/slack"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/outbox"
)

func view() leadview.View {
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	return leadview.View{
		Key: "lead-42", Name: "Ada <!channel> Lovelace", Company: "Analytical Engines", Title: "CTO",
		Email: "ada@example.com", Status: "active", Score: 87.5, Threshold: 80,
		Owner:      &leadview.Rep{ID: "sam", Name: "Sam Rivera", Email: "sam@example.com"},
		Escalation: &leadview.Escalation{ID: "esc-1", Attempt: 1, Rep: "sam", Score: 81, Reason: "round-robin among 2", At: at, AckDueAt: at.Add(time.Hour)},
		Top: []leadview.Contribution{
			{Rule: "demo", Event: "demo.requested", Points: 40, Count: 1},
			{Rule: "pricing", Event: "page.viewed", Points: 30, Count: 3},
		},
		Recent: []leadview.Activity{
			{At: at, Kind: "event", Type: "demo.requested", Summary: "demo.requested", Points: 40},
			{At: at.Add(-time.Hour), Kind: "event", Type: "page.viewed", Summary: "page.viewed · /pricing", Points: 10},
		},
		LeadURL: "https://nurture.example.com/leads/lead-42",
		AckURL:  "https://nurture.example.com/ack/tok",
		Now:     at,
	}
}

// slackReceiver is a Slack-like incoming webhook: it accepts only what
// Slack's Block Kit accepts (the checks cover the rules this adapter can
// break) and records the messages.
type slackReceiver struct {
	mu   sync.Mutex
	msgs []map[string]any
	errs []string
}

func (s *slackReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var msg map[string]any
	problems := []string{}
	if r.Header.Get("Content-Type") != "application/json" {
		problems = append(problems, "content type")
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		problems = append(problems, "json: "+err.Error())
	} else {
		problems = append(problems, checkBlocks(msg)...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(problems) > 0 {
		s.errs = append(s.errs, problems...)
		http.Error(w, "invalid_blocks", http.StatusBadRequest)
		return
	}
	s.msgs = append(s.msgs, msg)
	_, _ = w.Write([]byte("ok"))
}

func checkBlocks(msg map[string]any) []string {
	var p []string
	text, _ := msg["text"].(string)
	if text == "" {
		p = append(p, "missing text fallback")
	}
	blocks, _ := msg["blocks"].([]any)
	if len(blocks) == 0 || len(blocks) > 50 {
		p = append(p, "blocks: need 1..50")
	}
	ids := map[string]bool{}
	for i, b := range blocks {
		blk := b.(map[string]any)
		if id, _ := blk["block_id"].(string); id != "" {
			if ids[id] {
				p = append(p, "duplicate block_id "+id)
			}
			ids[id] = true
		}
		switch blk["type"] {
		case "header":
			t := blk["text"].(map[string]any)
			if t["type"] != "plain_text" || len([]rune(t["text"].(string))) > 150 {
				p = append(p, "header must be plain_text ≤150")
			}
		case "section":
			fields, hasFields := blk["fields"].([]any)
			txt, hasText := blk["text"].(map[string]any)
			if !hasFields && !hasText {
				p = append(p, "section needs text or fields")
			}
			if len(fields) > 10 {
				p = append(p, "section: at most 10 fields")
			}
			for _, f := range fields {
				ft := f.(map[string]any)
				if len([]rune(ft["text"].(string))) > 2000 {
					p = append(p, "field over 2000")
				}
			}
			if hasText && len([]rune(txt["text"].(string))) > 3000 {
				p = append(p, "section text over 3000")
			}
		case "actions":
			els := blk["elements"].([]any)
			if len(els) == 0 || len(els) > 25 {
				p = append(p, "actions: 1..25 elements")
			}
			for _, e := range els {
				el := e.(map[string]any)
				if el["type"] != "button" {
					p = append(p, "actions: unexpected element")
				}
				if t := el["text"].(map[string]any); t["type"] != "plain_text" || len([]rune(t["text"].(string))) > 75 {
					p = append(p, "button text")
				}
				if u, _ := el["url"].(string); !strings.HasPrefix(u, "http") {
					p = append(p, "button url")
				}
				if st, ok := el["style"]; ok && st != "primary" && st != "danger" {
					p = append(p, "button style")
				}
			}
		case "context":
			els := blk["elements"].([]any)
			if len(els) == 0 || len(els) > 10 {
				p = append(p, "context: 1..10 elements")
			}
		case "divider":
		default:
			p = append(p, "unknown block type at "+string(rune('0'+i)))
		}
	}
	return p
}

func TestNotifyBlockKit(t *testing.T) {
	t.Parallel()
	rcv := &slackReceiver{}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	n, err := slack.New(slack.Config{WebhookURL: srv.URL + "/services/T000/B000/XXXX"})
	require.NoError(t, err)

	require.NoError(t, n.Notify(context.Background(), view()))
	require.Empty(t, rcv.errs)
	require.Len(t, rcv.msgs, 1)
	msg := rcv.msgs[0]

	text := msg["text"].(string)
	require.Contains(t, text, "Ada &lt;!channel&gt; Lovelace", "lead data must be escaped: no mentions")
	require.Contains(t, text, "87.5")
	require.Contains(t, text, "Sam Rivera")

	blocks := msg["blocks"].([]any)
	byID := map[string]map[string]any{}
	var types []string
	for _, b := range blocks {
		blk := b.(map[string]any)
		byID[blk["block_id"].(string)] = blk
		types = append(types, blk["type"].(string))
	}
	require.Equal(t, []string{"header", "section", "section", "section", "actions", "context"}, types)
	require.Contains(t, byID["header"]["text"].(map[string]any)["text"], "Hot lead")

	var fields []string
	for _, f := range byID["lead"]["fields"].([]any) {
		fields = append(fields, f.(map[string]any)["text"].(string))
	}
	all := strings.Join(fields, "\n")
	require.Contains(t, all, "*Company*\nCTO, Analytical Engines")
	require.Contains(t, all, "<mailto:ada@example.com|ada@example.com>")
	require.Contains(t, all, "*Score*\n87.5 (threshold 80)")
	require.Contains(t, all, "*Owner*\nSam Rivera (sam@example.com)")
	require.NotContains(t, all, "<!channel>")

	top := byID["top"]["text"].(map[string]any)["text"].(string)
	require.Contains(t, top, "*+40* demo.requested")
	require.Contains(t, top, "*+30* page.viewed ×3")
	recent := byID["recent"]["text"].(map[string]any)["text"].(string)
	require.Contains(t, recent, "page.viewed · /pricing (+10)")

	var urls []string
	for _, e := range byID["links"]["elements"].([]any) {
		urls = append(urls, e.(map[string]any)["url"].(string))
	}
	require.Equal(t, []string{"https://nurture.example.com/leads/lead-42", "https://nurture.example.com/ack/tok"}, urls)
	ctxText := byID["escalation"]["elements"].([]any)[0].(map[string]any)["text"].(string)
	require.Contains(t, ctxText, "esc-1")
}

func TestNotifyOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		status    int
		header    string
		wantClass outbox.Class
		wantAfter time.Duration
	}{
		{"ok", 200, "", outbox.Delivered, 0},
		{"invalid payload", 400, "", outbox.Permanent, 0},
		{"forbidden", 403, "", outbox.Permanent, 0},
		{"channel not found", 404, "", outbox.Permanent, 0},
		{"archived", 410, "", outbox.Permanent, 0},
		{"rate limited", 429, "3", outbox.Transient, 3 * time.Second},
		{"server error", 500, "", outbox.Transient, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.status)
			}))
			t.Cleanup(srv.Close)
			n, err := slack.New(slack.Config{WebhookURL: srv.URL + "/services/SECRET"})
			require.NoError(t, err)
			err = n.Notify(context.Background(), view())
			require.Equal(t, tt.wantClass, outbox.Classify(err), "err: %v", err)
			d, _ := outbox.RetryAfter(err)
			require.Equal(t, tt.wantAfter, d)
			if err != nil {
				require.NotContains(t, err.Error(), "SECRET")
			}
		})
	}
}

func TestTimeoutIsTransientAndRedacted(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	n, err := slack.New(slack.Config{WebhookURL: srv.URL + "/services/SECRET", Timeout: 30 * time.Millisecond})
	require.NoError(t, err)
	err = n.Notify(context.Background(), view())
	require.Equal(t, outbox.Transient, outbox.Classify(err))
	require.NotContains(t, err.Error(), "SECRET")
}

func TestBuildWithoutOptionalParts(t *testing.T) {
	t.Parallel()
	m := slack.Build(leadview.View{Key: "k1", Name: "k1", Score: 5})
	require.Equal(t, "header", m.Blocks[0].Type)
	require.Len(t, m.Blocks, 2, "header and the lead section only")
	require.NotEmpty(t, m.Text)
}

func TestErrorsCarryNoEmailAddresses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "failed for ada@example.com")
	}))
	t.Cleanup(srv.Close)
	n, err := slack.New(slack.Config{WebhookURL: srv.URL + "/services/SECRET"})
	require.NoError(t, err)
	v := view()
	v.Key = "ada@example.com"
	err = n.Notify(context.Background(), v)
	require.Error(t, err)
	require.Equal(t, outbox.Transient, outbox.Classify(err))
	require.NotContains(t, err.Error(), "ada@example.com", "error texts reach logs")
	require.Contains(t, err.Error(), "<email>")
}
