package httpapi

// The mailbox area: the pages `nurture dev` serves on top of the API, so a
// newcomer sees what happened without any tool.
//
//	GET /                 index: links to captured mail, leads, health
//	GET /mail             captured emails, newest first
//	GET /mail/{id}        one email: headers, HTML preview, text part
//	GET /mail/{id}/html   the HTML part alone, for the sandboxed preview
//	GET /leads            recent leads: score, status, owner, sequences
//
// Pages are server-rendered and need no JavaScript. The HTML part of an
// email is never inlined into a page: it is served on its own under a
// strict Content-Security-Policy (no scripts, no forms, no plugins; images
// only from https and data:) and shown in an <iframe sandbox>, so a
// template cannot run code in the page. Links in the preview open in a new
// tab and are live: following one records a click for the lead, as if the
// lead had clicked it. The open pixel (an http URL in dev) is not loaded.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/leadview"
	"github.com/nurture-oss/nurture/internal/redact"
)

// MailMessage describes one captured email.
type MailMessage struct {
	ID   string
	Lead string
	// Send is the engine's send id (engine.SendID of the enrollment and
	// step); empty for mail that is not a sequence step.
	Send     string
	Sequence string
	Step     string
	Template string
	To       string
	From     string
	Subject  string
	At       time.Time
}

// ErrNoMessage is returned by a Mailbox for an unknown message id.
var ErrNoMessage = errors.New("no such message")

// Mailbox lists and reads captured emails (internal/app adapts the smtp
// capture mailer).
type Mailbox interface {
	// Messages returns up to limit messages, newest first.
	Messages(ctx context.Context, limit int) ([]MailMessage, error)
	// Raw returns the RFC 5322 bytes of a message, or ErrNoMessage.
	Raw(ctx context.Context, id string) ([]byte, error)
}

// LeadLister lists recent leads (store.Reader satisfies it).
type LeadLister interface {
	RecentLeads(ctx context.Context, limit int) ([]*engine.Lead, error)
}

// MailboxConfig holds the dependencies of the mailbox area.
type MailboxConfig struct {
	// Mail is the captured mail; nil leaves /mail out (mail is sent over
	// SMTP instead) and the index says so.
	Mail Mailbox
	// Leads feeds /leads; nil leaves it out.
	Leads LeadLister
	// Views computes score (decayed to Now), name and owner of each lead.
	Views *leadview.Builder
	// Now is the clock (default time.Now); `nurture dev --demo` passes its
	// sped-up clock.
	Now func() time.Time
	// Limit bounds the lists (default 200).
	Limit int
	// Refresh, when > 0, makes the list pages reload themselves (a meta
	// refresh, no JavaScript) every Refresh.
	Refresh time.Duration
	// Banner is a line shown on the index (e.g. how the process runs).
	Banner string
}

type mailbox struct {
	c MailboxConfig
	s *Server
}

func (s *Server) routeMailbox(c *MailboxConfig) {
	m := &mailbox{c: *c, s: s}
	if m.c.Now == nil {
		m.c.Now = time.Now
	}
	if m.c.Limit <= 0 {
		m.c.Limit = 200
	}
	if m.c.Views == nil {
		m.c.Views = &leadview.Builder{}
	}
	s.mux.HandleFunc("GET /{$}", m.index)
	if m.c.Mail != nil {
		s.mux.HandleFunc("GET /mail", m.list)
		s.mux.HandleFunc("GET /mail/{id}", m.message)
		s.mux.HandleFunc("GET /mail/{id}/html", m.html)
	}
	if m.c.Leads != nil {
		s.mux.HandleFunc("GET /leads", m.leads)
	}
}

// --- handlers --------------------------------------------------------------

type indexPage struct {
	Banner     string
	HasMail    bool
	HasLeads   bool
	Mails      int
	Leads      int
	HasMetrics bool
}

func (m *mailbox) index(w http.ResponseWriter, r *http.Request) {
	p := indexPage{Banner: m.c.Banner, HasMail: m.c.Mail != nil, HasLeads: m.c.Leads != nil, HasMetrics: m.s.cfg.Metrics != nil}
	if m.c.Mail != nil {
		if ms, err := m.c.Mail.Messages(r.Context(), 0); err == nil {
			p.Mails = len(ms)
		}
	}
	if m.c.Leads != nil {
		if ls, err := m.c.Leads.RecentLeads(r.Context(), m.c.Limit); err == nil {
			p.Leads = len(ls)
		}
	}
	m.render(w, http.StatusOK, "index", p)
}

type mailRow struct {
	MailMessage
	LeadName string
	// Engagement is "clicked", "opened" or "" as the lead's state records
	// for this send.
	Engagement string
	// Score (now) and Owner of the lead.
	Score float64
	Hot   bool
	Owner string
}

type mailListPage struct {
	Rows    []mailRow
	Refresh int
	Now     time.Time
}

func (m *mailbox) list(w http.ResponseWriter, r *http.Request) {
	ms, err := m.c.Mail.Messages(r.Context(), m.c.Limit)
	if err != nil {
		m.fail(w, "list captured mail", err)
		return
	}
	leads := map[string]*engine.Lead{}
	rows := make([]mailRow, len(ms))
	for i, msg := range ms {
		rows[i] = mailRow{MailMessage: msg}
		if msg.Lead == "" || m.c.Leads == nil {
			continue
		}
		l, ok := leads[msg.Lead]
		if !ok {
			l = m.lead(r.Context(), msg.Lead)
			leads[msg.Lead] = l
		}
		if l == nil {
			continue
		}
		if v, err := m.c.Views.Build(leadview.Input{Lead: l, Now: m.c.Now()}); err == nil {
			rows[i].LeadName, rows[i].Score = v.Name, v.Score
			rows[i].Hot = v.Threshold > 0 && v.Score >= v.Threshold
			if v.Owner != nil {
				rows[i].Owner = v.Owner.Display()
			}
		}
		rows[i].Engagement = engagement(l, msg)
	}
	m.render(w, http.StatusOK, "mail-list", mailListPage{Rows: rows, Refresh: m.refresh(), Now: m.c.Now()})
}

// lead loads a lead through the lead store, when it also loads single
// leads (the store does); nil otherwise.
func (m *mailbox) lead(ctx context.Context, key string) *engine.Lead {
	lr, ok := m.c.Leads.(interface {
		Lead(ctx context.Context, key string) (*engine.Lead, error)
	})
	if !ok {
		return nil
	}
	l, err := lr.Lead(ctx, key)
	if err != nil {
		return nil
	}
	return l
}

// engagement says whether the lead opened or clicked the email of msg.
func engagement(l *engine.Lead, msg MailMessage) string {
	if msg.Send == "" || msg.Step == "" {
		return ""
	}
	for _, en := range l.Enrollments {
		if engine.SendID(en.ID, msg.Step) != msg.Send {
			continue
		}
		switch {
		case slices.Contains(en.Clicked, msg.Step):
			return "clicked"
		case slices.Contains(en.Opened, msg.Step):
			return "opened"
		}
	}
	return ""
}

type header struct{ Name, Value string }

type messagePageData struct {
	Msg     MailMessage
	Headers []header
	HasHTML bool
	Text    string
	Parts   []string // content types of the parts, for the curious
}

func (m *mailbox) message(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	meta, raw, ok := m.load(w, r, id)
	if !ok {
		return
	}
	pm, err := parseMessage(raw)
	if err != nil {
		m.fail(w, "parse captured mail "+id, err)
		return
	}
	d := messagePageData{Msg: meta, HasHTML: pm.html != "", Text: pm.text, Parts: pm.types}
	for _, name := range []string{"Date", "From", "To", "Reply-To", "Subject", "Message-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "X-Nurture-Ref", "Dkim-Signature"} {
		if v := pm.header.Get(name); v != "" {
			if dv, err := (&mime.WordDecoder{}).DecodeHeader(v); err == nil {
				v = dv
			}
			d.Headers = append(d.Headers, header{Name: name, Value: v})
		}
	}
	m.render(w, http.StatusOK, "mail", d)
}

// previewCSP confines the HTML part: nothing runs, nothing is submitted,
// only https and inline images load (so the http open pixel does not),
// links may open a new tab.
const previewCSP = "default-src 'none'; img-src https: data:; style-src 'unsafe-inline' https:; font-src https: data:; " +
	"form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"

func (m *mailbox) html(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, raw, ok := m.load(w, r, id)
	if !ok {
		return
	}
	pm, err := parseMessage(raw)
	if err != nil {
		m.fail(w, "parse captured mail "+id, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", previewCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if pm.html == "" {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<p>This message has no HTML part.</p>")
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, withBaseTarget(pm.html))
}

// load finds a message's metadata and bytes, answering 404 itself.
func (m *mailbox) load(w http.ResponseWriter, r *http.Request, id string) (MailMessage, []byte, bool) {
	raw, err := m.c.Mail.Raw(r.Context(), id)
	if errors.Is(err, ErrNoMessage) {
		m.render(w, http.StatusNotFound, "mb-message", mbMessage{Title: "No such email", Text: "There is no captured email " + id + "."})
		return MailMessage{}, nil, false
	}
	if err != nil {
		m.fail(w, "read captured mail "+id, err)
		return MailMessage{}, nil, false
	}
	meta := MailMessage{ID: id}
	if ms, err := m.c.Mail.Messages(r.Context(), 0); err == nil {
		for _, x := range ms {
			if x.ID == id {
				meta = x
				break
			}
		}
	}
	return meta, raw, true
}

type leadRow struct {
	Key, Name, Company, Email, Status, Owner string
	Score, Threshold                         float64
	Hot                                      bool
	Sequences                                []string
	Updated                                  time.Time
}

type leadListPage struct {
	Rows    []leadRow
	Refresh int
}

func (m *mailbox) leads(w http.ResponseWriter, r *http.Request) {
	ls, err := m.c.Leads.RecentLeads(r.Context(), m.c.Limit)
	if err != nil {
		m.fail(w, "list leads", err)
		return
	}
	now := m.c.Now()
	rows := make([]leadRow, 0, len(ls))
	for _, l := range ls {
		v, err := m.c.Views.Build(leadview.Input{Lead: l, Now: now})
		if err != nil {
			m.fail(w, "list leads", err)
			return
		}
		row := leadRow{Key: l.Key, Name: v.Name, Company: v.Company, Email: l.Email, Status: string(l.Status),
			Score: v.Score, Threshold: v.Threshold, Updated: l.UpdatedAt}
		if v.Owner != nil {
			row.Owner = v.Owner.Display()
		}
		row.Hot = v.Threshold > 0 && v.Score >= v.Threshold
		for _, en := range l.Enrollments {
			if !en.Status.Ended() {
				s := en.Sequence
				if en.Step != "" {
					s += "/" + en.Step
				}
				if en.Status == engine.EnrollmentPaused {
					s += " (paused)"
				}
				row.Sequences = append(row.Sequences, s)
			}
		}
		rows = append(rows, row)
	}
	m.render(w, http.StatusOK, "lead-list", leadListPage{Rows: rows, Refresh: m.refresh()})
}

func (m *mailbox) refresh() int {
	if m.c.Refresh <= 0 {
		return 0
	}
	return max(1, int(m.c.Refresh/time.Second))
}

func (m *mailbox) fail(w http.ResponseWriter, what string, err error) {
	m.s.log.Error("mailbox page", "op", what, "error", redact.Error(err))
	m.render(w, http.StatusInternalServerError, "mb-message", mbMessage{Title: "Error", Text: "The page could not be loaded. Try again."})
}

type mbMessage struct{ Title, Text string }

func (m *mailbox) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := mailboxPages.ExecuteTemplate(&buf, name, data); err != nil {
		m.s.log.Error("render page", "page", name, "error", redact.Error(err))
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// frame-src 'self' lets the message page show the preview.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// --- MIME ------------------------------------------------------------------

type parsedMessage struct {
	header     mail.Header
	html, text string
	types      []string
}

// parseMessage extracts the first text/html and text/plain parts of a
// message, walking nested multiparts and undoing transfer encodings.
func parseMessage(raw []byte) (*parsedMessage, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	pm := &parsedMessage{header: msg.Header}
	if err := pm.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0); err != nil {
		return nil, err
	}
	return pm, nil
}

func (pm *parsedMessage) walk(ctype, cte string, body io.Reader, depth int) error {
	if depth > 5 {
		return errors.New("read message: multipart nested too deep")
	}
	if ctype == "" {
		ctype = "text/plain; charset=utf-8"
	}
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return fmt.Errorf("read message: content type %q: %w", ctype, err)
	}
	pm.types = append(pm.types, mt)
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read message: part: %w", err)
			}
			if err := pm.walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1); err != nil {
				return err
			}
		}
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, newlineStripper{body})
	}
	b, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil {
		return fmt.Errorf("read message: decode %s: %w", mt, err)
	}
	switch {
	case mt == "text/html" && pm.html == "":
		pm.html = string(b)
	case mt == "text/plain" && pm.text == "":
		pm.text = string(b)
	}
	return nil
}

// newlineStripper drops CR and LF, which base64 bodies are wrapped with.
type newlineStripper struct{ r io.Reader }

func (n newlineStripper) Read(p []byte) (int, error) {
	for {
		c, err := n.r.Read(p)
		j := 0
		for _, b := range p[:c] {
			if b != '\r' && b != '\n' {
				p[j] = b
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

var headTag = regexp.MustCompile(`(?i)<head[^>]*>`)

// withBaseTarget makes links in the preview open a new tab (the sandbox
// allows popups, not navigating the page).
func withBaseTarget(h string) string {
	const base = `<base target="_blank">`
	if loc := headTag.FindStringIndex(h); loc != nil {
		return h[:loc[1]] + base + h[loc[1]:]
	}
	return base + h
}

// --- templates -------------------------------------------------------------

var mailboxFuncs = template.FuncMap{
	"num": leadview.Num,
	"when": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("Mon 2 Jan 15:04 MST")
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join": strings.Join,
	// dict2 and dict2r build the argument of the shared head: a title and
	// an optional refresh in seconds.
	"dict2": func(title string) map[string]any { return map[string]any{"Title": title} },
	"dict2r": func(title string, refresh int) map[string]any {
		return map[string]any{"Title": title, "Refresh": refresh}
	},
}

var mailboxPages = template.Must(template.New("mailbox").Funcs(mailboxFuncs).Parse(mailboxTemplates))

const mailboxTemplates = `
{{define "mb-head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
{{with .Refresh}}<meta http-equiv="refresh" content="{{.}}">{{end}}
<title>{{.Title}} · Nurture</title>
<style>
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1d1c1d;background:#f4f5f7}
main{max-width:1100px;margin:0 auto;padding:24px}
nav{margin:0 0 16px} nav a{margin-right:16px;color:#1264a3;text-decoration:none;font-weight:600}
.card{background:#fff;border-radius:8px;padding:20px 24px;margin:0 0 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
h1{margin:0 0 12px;font-size:24px} h2{font-size:17px;margin:0 0 12px}
.muted{color:#616061} table{border-collapse:collapse;width:100%}
td,th{padding:6px 8px;text-align:left;border-bottom:1px solid #eee;vertical-align:top;font-size:14px}
th{font-weight:600;color:#616061;white-space:nowrap} td.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;background:#e8f5fa;color:#1264a3;font-size:13px}
.badge.hot{background:#fdecea;color:#b00} .badge.ok{background:#e3f4ec;color:#007a5a} .badge.warn{background:#fdf0e0;color:#9a5b00}
pre{white-space:pre-wrap;word-break:break-word;background:#f8f8f8;padding:12px;border-radius:6px;font-size:13px}
iframe{width:100%;height:640px;border:1px solid #ddd;border-radius:6px;background:#fff}
code{font-size:13px} #headers td{word-break:break-all}
</style></head><body><main>
<nav><a href="/">Nurture</a><a href="/mail">Captured mail</a><a href="/leads">Leads</a></nav>{{end}}

{{define "mb-foot"}}</main></body></html>{{end}}

{{define "mb-message"}}{{template "mb-head" (dict2 .Title)}}
<div class="card"><h1>{{.Title}}</h1><p>{{.Text}}</p></div>
{{template "mb-foot"}}{{end}}

{{define "index"}}{{template "mb-head" (dict2 "Nurture")}}
<div class="card"><h1>Nurture</h1>{{with .Banner}}<p class="muted">{{.}}</p>{{end}}
<ul>
{{if .HasMail}}<li><a href="/mail" id="link-mail">Captured mail</a> ({{.Mails}}): every email Nurture wrote, as the recipient would see it.</li>
{{else}}<li>Mail is sent over SMTP, not captured.</li>{{end}}
{{if .HasLeads}}<li><a href="/leads" id="link-leads">Leads</a> ({{.Leads}}): score, status, owner and sequences; each links to its lead page.</li>{{end}}
<li><a href="/livez">/livez</a> · <a href="/readyz">/readyz</a>{{if .HasMetrics}} · <a href="/metrics">/metrics</a>{{end}}: health{{if .HasMetrics}} and metrics{{end}}.</li>
</ul>
<p class="muted">Send events with <code>POST /v1/events</code> (bearer token printed at start) or <code>nurture publish</code>.</p>
</div>
{{template "mb-foot"}}{{end}}

{{define "mail-list"}}{{template "mb-head" (dict2r "Captured mail" .Refresh)}}
<div class="card"><h1>Captured mail</h1>
{{if .Rows}}<table id="mail">
<thead><tr><th>Sent</th><th>To</th><th>Subject</th><th>Sequence / step</th><th>Lead (now)</th></tr></thead><tbody>
{{range .Rows}}<tr>
<td><time datetime="{{iso .At}}">{{when .At}}</time></td>
<td>{{.To}}</td>
<td><a href="/mail/{{.ID}}">{{.Subject}}</a>{{with .Engagement}} <span class="badge{{if eq . "clicked"}} ok{{end}}">{{.}}</span>{{end}}</td>
<td>{{if .Sequence}}{{.Sequence}}/{{.Step}}{{else}}<span class="muted">{{.Template}}</span>{{end}}</td>
<td>{{if .Lead}}<a href="/leads/{{.Lead}}">{{.Lead}}</a>{{with .LeadName}} ({{.}}){{end}}
<br><span class="muted">score {{num .Score}}{{if .Hot}} <span class="badge hot">hot</span>{{end}}{{with .Owner}} · owner <b>{{.}}</b>{{end}}</span>{{end}}</td>
</tr>{{end}}
</tbody></table>
{{else}}<p class="muted">No email captured yet. Emails appear here when a sequence sends one (within the lead's send window).</p>{{end}}
</div>
{{template "mb-foot"}}{{end}}

{{define "mail"}}{{template "mb-head" (dict2 .Msg.Subject)}}
<div class="card"><h1 id="subject">{{.Msg.Subject}}</h1>
<p class="muted">{{if .Msg.Sequence}}Sequence <b>{{.Msg.Sequence}}</b>, step <b>{{.Msg.Step}}</b>, template <b>{{.Msg.Template}}</b>. {{end}}
{{if .Msg.Lead}}Lead <a href="/leads/{{.Msg.Lead}}">{{.Msg.Lead}}</a>.{{end}}</p>
<table id="headers">{{range .Headers}}<tr><th>{{.Name}}</th><td><code>{{.Value}}</code></td></tr>{{end}}</table>
</div>
{{if .HasHTML}}<div class="card"><h2>HTML part</h2>
<p class="muted">Shown in a sandbox: no scripts run. Links are live and open a new tab: following one records a click for the lead. The open pixel is not loaded here.</p>
<iframe id="preview" title="HTML part" sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer" src="/mail/{{.Msg.ID}}/html"></iframe>
</div>{{end}}
<div class="card"><h2>Text part</h2>{{if .Text}}<pre id="text">{{.Text}}</pre>{{else}}<p class="muted">No text part.</p>{{end}}
<p class="muted">MIME structure: {{join .Parts ", "}}</p></div>
{{template "mb-foot"}}{{end}}

{{define "lead-list"}}{{template "mb-head" (dict2r "Leads" .Refresh)}}
<div class="card"><h1>Leads</h1>
{{if .Rows}}<table id="leads">
<thead><tr><th>Lead</th><th>Company</th><th>Score</th><th>Status</th><th>Owner</th><th>Sequences</th><th>Updated</th></tr></thead><tbody>
{{range .Rows}}<tr>
<td><a href="/leads/{{.Key}}">{{.Key}}</a><br><span class="muted">{{.Name}}</span></td>
<td>{{.Company}}</td>
<td class="num">{{num .Score}}{{if .Hot}} <span class="badge hot">hot</span>{{end}}</td>
<td><span class="badge{{if ne .Status "active"}} warn{{end}}">{{.Status}}</span></td>
<td>{{if .Owner}}<b>{{.Owner}}</b>{{else}}<span class="muted">–</span>{{end}}</td>
<td>{{if .Sequences}}{{join .Sequences ", "}}{{else}}<span class="muted">none active</span>{{end}}</td>
<td><time datetime="{{iso .Updated}}">{{when .Updated}}</time></td>
</tr>{{end}}
</tbody></table>
{{else}}<p class="muted">No leads yet. Publish an event (or run with --demo).</p>{{end}}
</div>
{{template "mb-foot"}}{{end}}
`
