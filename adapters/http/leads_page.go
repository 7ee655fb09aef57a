package httpapi

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/redact"
	"github.com/nurture-oss/nurture/internal/store"
)

// page serves the lead page. It needs a signed link token for this lead
// (?t=…), an API bearer token, or OpenPages.
func (l *leads) page(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	if !l.pageAllowed(r, key) {
		l.render(w, http.StatusForbidden, "message", messagePage{Title: "Link not valid",
			Text: "This lead link is not valid. Open the lead from its notification, or ask for a new link."})
		return
	}
	lead, v, err := l.load(r.Context(), key)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			l.render(w, http.StatusNotFound, "message", messagePage{Title: "No such lead", Text: "There is no lead " + key + "."})
			return
		}
		l.s.log.Error("lead page", "lead_id", redact.Email(key), "error", redact.Error(err))
		l.render(w, http.StatusInternalServerError, "message", messagePage{Title: "Error", Text: "The lead could not be loaded. Try again."})
		return
	}
	l.render(w, http.StatusOK, "lead", leadPage{View: v, Lead: lead, Chart: scoreChart(v.Points, v.Threshold)})
}

func (l *leads) pageAllowed(r *http.Request, key string) bool {
	if l.c.OpenPages || l.bearer(r) {
		return true
	}
	tok := r.URL.Query().Get("t")
	if tok == "" || l.c.Links == nil {
		return false
	}
	b, err := l.c.Links.Verify(leadview.PagePurpose, tok)
	return err == nil && subtle.ConstantTimeCompare(b, []byte(key)) == 1
}

// claim verifies an ack link token.
func (l *leads) claim(tok string) (leadview.AckClaim, error) {
	if l.c.Links == nil {
		return leadview.AckClaim{}, errors.New("ack links are not configured")
	}
	b, err := l.c.Links.Verify(leadview.AckPurpose, tok)
	if err != nil {
		return leadview.AckClaim{}, err
	}
	return leadview.DecodeAckClaim(b)
}

// ackPage shows what acknowledging means and a button that POSTs.
func (l *leads) ackPage(w http.ResponseWriter, r *http.Request) {
	c, err := l.claim(r.PathValue("token"))
	if err != nil {
		l.render(w, http.StatusForbidden, "message", messagePage{Title: "Link not valid", Text: "This acknowledgement link is not valid."})
		return
	}
	lead, v, err := l.load(r.Context(), c.Lead)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			l.render(w, http.StatusNotFound, "message", messagePage{Title: "No such lead", Text: "The lead of this link no longer exists."})
			return
		}
		l.s.log.Error("ack page", "lead_id", redact.Email(c.Lead), "error", redact.Error(err))
		l.render(w, http.StatusInternalServerError, "message", messagePage{Title: "Error", Text: "The lead could not be loaded. Try again."})
		return
	}
	p := ackPage{View: v, Claim: c, Rep: l.c.Views.Rep(c.Rep), Action: r.URL.Path}
	e := lead.Escalation
	switch {
	case e == nil || e.ID != c.Escalation:
		p.Closed = "This escalation is over: the lead has been escalated again or closed since."
	case e.AckedBy != "":
		p.Closed = "Already acknowledged by " + l.c.Views.Rep(e.AckedBy).Display() + " at " + e.AckedAt.UTC().Format("2 Jan 2006 15:04 MST") + "."
	case e.Rep != c.Rep:
		p.Note = "This lead was re-routed to " + l.c.Views.Rep(e.Rep).Display() + " since this link was sent."
	}
	l.render(w, http.StatusOK, "ack", p)
}

// ackPost acknowledges through a signed link.
func (l *leads) ackPost(w http.ResponseWriter, r *http.Request) {
	c, err := l.claim(r.PathValue("token"))
	if err != nil {
		l.render(w, http.StatusForbidden, "message", messagePage{Title: "Link not valid", Text: "This acknowledgement link is not valid."})
		return
	}
	status, reply, msg := l.acknowledge(r.Context(), c, "link")
	leadURL, _ := l.c.Views.LeadURL(c.Lead)
	if msg != "" {
		l.render(w, status, "message", messagePage{Title: "Not acknowledged", Text: msg, Link: leadURL})
		return
	}
	text := "Thanks, " + l.c.Views.Rep(c.Rep).Display() + ": the lead is yours. The acknowledgement is on the lead's timeline."
	if reply.Status == "already_acknowledged" {
		text = "Already acknowledged by " + l.c.Views.Rep(reply.Rep).Display() + "."
	}
	l.render(w, http.StatusOK, "message", messagePage{Title: "Acknowledged", Text: text, Link: leadURL})
}

type messagePage struct {
	Title, Text, Link string
}

type leadPage struct {
	leadview.View
	Lead  *engine.Lead
	Chart chart
}

type ackPage struct {
	leadview.View
	Claim  leadview.AckClaim
	Rep    *leadview.Rep
	Action string
	Closed string // why there is nothing to acknowledge
	Note   string
}

func (l *leads) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		l.s.log.Error("render page", "page", name, "error", redact.Error(err))
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL carries a token
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// --- score chart -----------------------------------------------------------

// chart is an inline SVG line chart of the score over time.
type chart struct {
	W, H         int
	Left, Right  float64 // plot area x range
	Top, Bottom  float64 // plot area y range
	Line         string  // polyline points
	Area         string  // polygon under the line
	Marks        []mark
	ThresholdY   float64
	HasThreshold bool
	Threshold    string
	YTicks       []tick
	XTicks       []tick
	Empty        bool
	Summary      string // text alternative
}

type mark struct {
	X, Y  float64
	Title string
}

type tick struct {
	Pos    float64
	Label  string
	Anchor string // text-anchor
}

func scoreChart(points []leadview.ScorePoint, threshold float64) chart {
	c := chart{W: 720, H: 240, Left: 48, Right: 704, Top: 16, Bottom: 208}
	if len(points) == 0 {
		c.Empty = true
		c.Summary = "No score changes yet."
		return c
	}
	t0, t1 := points[0].At, points[len(points)-1].At
	if !t1.After(t0) {
		t1 = t0.Add(time.Minute)
	}
	lo, hi := 0.0, threshold
	for _, p := range points {
		lo, hi = math.Min(lo, p.Score), math.Max(hi, p.Score)
	}
	hi = niceCeil(hi * 1.1)
	if hi <= lo {
		hi = lo + 10
	}
	x := func(t time.Time) float64 {
		return round1(c.Left + (c.Right-c.Left)*float64(t.Sub(t0))/float64(t1.Sub(t0)))
	}
	y := func(v float64) float64 {
		return round1(c.Bottom - (c.Bottom-c.Top)*(v-lo)/(hi-lo))
	}
	var line strings.Builder
	for i, p := range points {
		if i > 0 {
			line.WriteByte(' ')
		}
		fmt.Fprintf(&line, "%g,%g", x(p.At), y(p.Score))
		if p.Change {
			c.Marks = append(c.Marks, mark{X: x(p.At), Y: y(p.Score),
				Title: p.At.UTC().Format("2 Jan 15:04") + ": " + leadview.Num(p.Score)})
		}
	}
	c.Line = line.String()
	c.Area = fmt.Sprintf("%g,%g %s %g,%g", x(t0), y(math.Max(lo, 0)), c.Line, x(points[len(points)-1].At), y(math.Max(lo, 0)))
	if threshold > 0 {
		c.HasThreshold, c.ThresholdY, c.Threshold = true, y(threshold), leadview.Num(threshold)
	}
	for i := 0; i <= 4; i++ {
		v := lo + (hi-lo)*float64(i)/4
		c.YTicks = append(c.YTicks, tick{Pos: y(v), Label: leadview.Num(v)})
	}
	layout := "2 Jan 15:04"
	if t1.Sub(t0) > 72*time.Hour {
		layout = "2 Jan"
	}
	for i := 0; i <= 3; i++ {
		t := t0.Add(t1.Sub(t0) * time.Duration(i) / 3)
		anchor := map[int]string{0: "start", 3: "end"}[i]
		c.XTicks = append(c.XTicks, tick{Pos: x(t), Label: t.UTC().Format(layout), Anchor: cmp.Or(anchor, "middle")})
	}
	last := points[len(points)-1]
	c.Summary = fmt.Sprintf("Score over time: %d changes from %s to %s, now %s.", len(c.Marks),
		t0.UTC().Format("2 Jan 2006"), t1.UTC().Format("2 Jan 2006"), leadview.Num(last.Score))
	return c
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// niceCeil rounds up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 10
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// --- templates -------------------------------------------------------------

var pageFuncs = template.FuncMap{
	"num":    leadview.Num,
	"signed": leadview.Signed,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2 Jan 2006 15:04 MST")
	},
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"itoa":  strconv.Itoa,
	"lower": strings.ToLower,
	"kindClass": func(kind string) string {
		return "k-" + strings.NewReplacer(".", "-", " ", "-").Replace(kind)
	},
}

var pages = template.Must(template.New("pages").Funcs(pageFuncs).Parse(pageTemplates))

const pageTemplates = `
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.}} · Nurture</title>
<style>
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d1c1d;background:#f4f5f7}
main{max-width:960px;margin:0 auto;padding:24px}
.card{background:#fff;border-radius:8px;padding:20px 24px;margin:0 0 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
h1{margin:0;font-size:26px} h2{font-size:17px;margin:0 0 12px}
.muted{color:#616061} .grid{display:flex;flex-wrap:wrap;gap:24px}
.stat{min-width:140px} .stat b{display:block;font-size:28px}
table{border-collapse:collapse;width:100%} td,th{padding:6px 8px;text-align:left;border-bottom:1px solid #eee;vertical-align:top;font-size:14px}
th{font-weight:600;color:#616061}
.pts{color:#007a5a;font-weight:600;white-space:nowrap} .neg{color:#b00}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e8f5fa;color:#1264a3;font-size:13px}
.badge.ok{background:#e3f4ec;color:#007a5a} .badge.warn{background:#fdf0e0;color:#9a5b00}
.btn{display:inline-block;background:#007a5a;color:#fff;border:0;border-radius:4px;padding:10px 18px;font-size:15px;font-weight:600;cursor:pointer;text-decoration:none}
svg text{font-size:11px;fill:#616061}
</style></head><body><main>{{end}}

{{define "foot"}}</main></body></html>{{end}}

{{define "message"}}{{template "head" .Title}}
<div class="card" id="message"><h1>{{.Title}}</h1><p>{{.Text}}</p>{{if .Link}}<p><a href="{{.Link}}">Open the lead</a></p>{{end}}</div>
{{template "foot"}}{{end}}

{{define "lead"}}{{template "head" .Name}}
<div class="card" id="lead">
  <p class="muted">Lead <code>{{.Key}}</code> · <span class="badge">{{.Status}}</span></p>
  <h1 id="lead-name">{{.Name}}</h1>
  <p>{{with .Title}}{{.}}{{if $.Company}}, {{end}}{{end}}{{.Company}}{{with .Email}} · <a href="mailto:{{.}}">{{.}}</a>{{end}}</p>
  <div class="grid">
    <div class="stat"><span class="muted">Score</span><b id="score">{{num .Score}}</b>{{if .Threshold}}<span class="muted">threshold {{num .Threshold}}</span>{{end}}</div>
    <div class="stat"><span class="muted">Owner</span><b id="owner" style="font-size:20px">{{with .Owner}}{{.Display}}{{else}}nobody yet{{end}}</b>{{with .Owner}}{{with .Email}}<span class="muted">{{.}}</span>{{end}}{{end}}</div>
    {{with .Escalation}}<div class="stat" id="escalation"><span class="muted">Escalation</span>
      <b style="font-size:16px">{{.ID}}</b>
      {{if .Acked}}<span class="badge ok">acknowledged by {{.AckedBy}} · {{when .AckedAt}}</span>
      {{else}}<span class="badge warn">waiting for acknowledgement{{if not .AckDueAt.IsZero}} until {{when .AckDueAt}}{{end}}</span>{{end}}
      {{if gt .Attempt 1}}<br><span class="muted">attempt {{.Attempt}}</span>{{end}}
      {{if .Reason}}<br><span class="muted">routed: {{.Reason}}</span>{{end}}
      {{if .At.IsZero}}{{else}}<br><span class="muted">escalated {{when .At}}</span>{{end}}
    </div>{{end}}
  </div>
  {{if .AckURL}}<p><a class="btn" href="{{.AckURL}}">Acknowledge</a></p>{{end}}
</div>

<div class="card"><h2>Score over time</h2>
{{with .Chart}}{{if .Empty}}<p class="muted">{{.Summary}}</p>{{else}}
<svg id="score-chart" role="img" aria-label="{{.Summary}}" viewBox="0 0 {{.W}} {{.H}}" width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">
  <title>{{.Summary}}</title>
  {{range .YTicks}}<line x1="{{$.Chart.Left}}" x2="{{$.Chart.Right}}" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#eee"/>
  <text x="{{$.Chart.Left}}" dx="-6" y="{{.Pos}}" dy="4" text-anchor="end">{{.Label}}</text>{{end}}
  {{range .XTicks}}<text x="{{.Pos}}" y="{{$.Chart.Bottom}}" dy="18" text-anchor="{{.Anchor}}">{{.Label}}</text>{{end}}
  <polygon points="{{.Area}}" fill="#1264a3" fill-opacity="0.08"/>
  {{if .HasThreshold}}<line x1="{{.Left}}" x2="{{.Right}}" y1="{{.ThresholdY}}" y2="{{.ThresholdY}}" stroke="#b00" stroke-dasharray="6 4"/>
  <text x="{{.Right}}" y="{{.ThresholdY}}" dy="-4" text-anchor="end" style="fill:#b00">threshold {{.Threshold}}</text>{{end}}
  <polyline points="{{.Line}}" fill="none" stroke="#1264a3" stroke-width="2" stroke-linejoin="round"/>
  {{range .Marks}}<circle cx="{{.X}}" cy="{{.Y}}" r="3.5" fill="#1264a3"><title>{{.Title}}</title></circle>{{end}}
</svg>{{end}}{{end}}
</div>

{{if .Top}}<div class="card"><h2>Why this score</h2><table id="top">
<tr><th>Points</th><th>Event</th><th>Rule</th><th>Times</th></tr>
{{range .Top}}<tr><td class="pts">{{signed .Points}}</td><td>{{.Event}}</td><td><code>{{.Rule}}</code></td><td>{{.Count}}</td></tr>{{end}}
</table><p class="muted">Points as awarded; the score decays over time.</p></div>{{end}}

{{with .Lead.Enrollments}}<div class="card"><h2>Sequences</h2><table id="enrollments">
<tr><th>Sequence</th><th>Status</th><th>Step</th><th>Started</th><th>Note</th></tr>
{{range .}}<tr><td>{{.Sequence}}</td><td>{{.Status}}</td><td>{{.Step}}</td><td>{{when .StartedAt}}</td><td>{{.Reason}}</td></tr>{{end}}
</table></div>{{end}}

<div class="card"><h2>Timeline</h2>
{{if .Timeline}}<table id="timeline">
<tr><th>When</th><th>What</th><th>Points</th></tr>
{{range .Timeline}}<tr class="{{kindClass .Kind}}"><td style="white-space:nowrap"><time datetime="{{iso .At}}">{{when .At}}</time></td><td>{{.Summary}}</td><td class="pts{{if lt .Points 0.0}} neg{{end}}">{{if and .Points (ne .Kind "event")}}{{signed .Points}}{{end}}</td></tr>{{end}}
</table>{{else}}<p class="muted">Nothing recorded yet.</p>{{end}}
</div>
<p class="muted">As of {{when .Now}}.</p>
{{template "foot"}}{{end}}

{{define "ack"}}{{template "head" (print "Acknowledge " .Name)}}
<div class="card">
  <p class="muted">Escalation <code>{{.Claim.Escalation}}</code></p>
  <h1>{{.Name}}</h1>
  <p>{{.Company}}{{if .Company}} · {{end}}score {{num .Score}}</p>
  {{if .Closed}}<p>{{.Closed}}</p>
  {{else}}
  {{with .Note}}<p class="badge warn">{{.}}</p>{{end}}
  <p>Acknowledge as <strong>{{.Rep.Display}}</strong>: you take this lead and the escalation stops waiting for a rep.</p>
  <form method="post" action="{{.Action}}"><button class="btn" type="submit">Acknowledge</button></form>
  {{end}}
  {{if .LeadURL}}<p><a href="{{.LeadURL}}">Open the lead</a></p>{{end}}
</div>
{{template "foot"}}{{end}}
`
