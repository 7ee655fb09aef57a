package httpapi

import (
	"context"
	"errors"
	"html/template"
	"io"
	"net/http"
	"net/mail"
	"strings"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/redact"
	"github.com/nurture-oss/nurture/internal/store"
	"github.com/nurture-oss/nurture/internal/token"
)

// Unsubscribe: GET /u/<token> shows a confirmation page with a form; POST
// /u/<token> (that form, or the RFC 8058 one-click POST a mail client sends
// with the body "List-Unsubscribe=One-Click") unsubscribes. A GET never
// unsubscribes: link scanners and prefetchers follow GETs.
//
// Unsubscribing is idempotent and effective before the next send: the
// address the email was sent to (from the send's outbox payload; the lead's
// current address when that record is gone) goes on the suppression list
// synchronously (the dispatcher checks that list when it claims a send),
// then email.unsubscribed is published so the engine ends the lead's
// sequences. Its event id is stable per send, so repeating the POST changes
// nothing.

func (t *tracking) routeUnsubscribe(s *Server) {
	s.mux.HandleFunc("GET /u/{token}", t.unsubscribePage)
	s.mux.HandleFunc("HEAD /u/{token}", t.unsubscribePage)
	s.mux.HandleFunc("POST /u/{token}", t.unsubscribe)
}

var unsubTmpl = template.Must(template.New("unsub").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#111}
button{font-size:1rem;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #111;background:#111;color:#fff;cursor:pointer}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p>
{{if .Form}}<form method="post" action=""><input type="hidden" name="confirm" value="yes"><button type="submit">Unsubscribe</button></form>{{end}}
</body></html>`))

type unsubView struct {
	Title, Text string
	Form        bool
}

func pageHeaders(h http.Header) {
	noStore(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
}

func (t *tracking) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	pageHeaders(w.Header())
	if _, err := t.c.Signer.VerifyRef(token.PurposeUnsubscribe, cleanToken(r.PathValue("token"))); err != nil {
		w.WriteHeader(http.StatusNotFound)
		_ = unsubTmpl.Execute(w, unsubView{Title: "Link not valid", Text: "This unsubscribe link is not valid. Use the link in the latest email you received from us."})
		return
	}
	_ = unsubTmpl.Execute(w, unsubView{Title: "Unsubscribe", Text: "Stop receiving these emails? Press the button to confirm.", Form: true})
}

func (t *tracking) unsubscribe(w http.ResponseWriter, r *http.Request) {
	ref, err := t.c.Signer.VerifyRef(token.PurposeUnsubscribe, cleanToken(r.PathValue("token")))
	if err != nil {
		pageHeaders(w.Header())
		w.WriteHeader(http.StatusNotFound)
		_ = unsubTmpl.Execute(w, unsubView{Title: "Link not valid", Text: "This unsubscribe link is not valid."})
		return
	}
	// Read (and bound) the body: the one-click body or our form.
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	oneClick := strings.Contains(string(body), "List-Unsubscribe=One-Click")
	ctx := r.Context()
	now := t.now().UTC()

	if t.c.Leads == nil || t.c.Suppressor == nil {
		t.log.Error("unsubscribe: no lead reader or suppressor configured", "lead_id", redact.Email(ref.Lead))
		http.Error(w, "unsubscribe is not available right now", http.StatusServiceUnavailable)
		return
	}
	lead, err := t.c.Leads.Lead(ctx, ref.Lead)
	switch {
	case errors.Is(err, store.ErrNotFound):
		lead = nil
	case err != nil:
		t.log.Error("unsubscribe: load lead", "lead_id", redact.Email(ref.Lead), "error", redact.Error(err))
		http.Error(w, "unsubscribe failed, please try again", http.StatusServiceUnavailable)
		return
	}
	addr, err := t.unsubscribeAddress(ctx, ref, lead)
	if err != nil {
		t.log.Error("unsubscribe: load send", "lead_id", redact.Email(ref.Lead), "send_id", redact.Email(ref.Send), "error", redact.Error(err))
		http.Error(w, "unsubscribe failed, please try again", http.StatusServiceUnavailable)
		return
	}
	if addr != "" {
		if err := t.c.Suppressor.Suppress(ctx, addr, "unsubscribed", now); err != nil {
			t.log.Error("unsubscribe: suppress", "lead_id", redact.Email(ref.Lead), "error", redact.Error(err))
			http.Error(w, "unsubscribe failed, please try again", http.StatusServiceUnavailable)
			return
		}
	}
	props := refProps(ref)
	if oneClick {
		props["method"] = "one_click"
	} else {
		props["method"] = "form"
	}
	ev := &engine.Event{ID: "email.unsubscribed:" + ref.Send, Type: engine.EventEmailUnsubscribed, Lead: ref.Lead, Time: now, Properties: props}
	if t.c.Publisher != nil {
		if err := t.c.Publisher.PublishEvent(ctx, ev); err != nil {
			// The suppression already stops every further send; the event
			// ends the sequences once published. Ask the client to retry.
			t.log.Error("unsubscribe: publish", "lead_id", redact.Email(ref.Lead), "event_id", redact.Email(ev.ID), "error", redact.Error(err))
			http.Error(w, "unsubscribe recorded; please try again to confirm", http.StatusServiceUnavailable)
			return
		}
	}
	if oneClick {
		noStore(w.Header())
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "unsubscribed\n")
		return
	}
	pageHeaders(w.Header())
	_ = unsubTmpl.Execute(w, unsubView{Title: "You are unsubscribed", Text: "You will not receive these emails any more."})
}

// unsubscribeAddress is the address to suppress: the one the send went to
// (the lead's address may have changed since), else the lead's current
// address when the send record is gone; "" when neither is known.
func (t *tracking) unsubscribeAddress(ctx context.Context, ref token.Ref, lead *engine.Lead) (string, error) {
	if t.c.Sends != nil && ref.Send != "" {
		p, err := t.c.Sends.EmailPayload(ctx, ref.Lead, ref.Send)
		switch {
		case err == nil && p.To != "":
			if a, perr := mail.ParseAddress(p.To); perr == nil {
				return a.Address, nil
			}
			return p.To, nil
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return "", err
		}
	}
	if lead != nil {
		return lead.Email, nil
	}
	return "", nil
}
