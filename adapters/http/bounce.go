package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
	"github.com/nurture-oss/nurture/internal/redact"
	"github.com/nurture-oss/nurture/internal/token"
)

// Bounce and complaint intake: POST /v1/bounces accepts
//
//   - a DSN (RFC 3464): a raw message, multipart/report; report-type=delivery-status
//   - an ARF report (RFC 5965): multipart/report; report-type=feedback-report
//   - an Amazon SES notification delivered by SNS (HTTP/S subscription,
//     raw message delivery off): a JSON envelope whose TopicArn must be one
//     of TrackingConfig.SESTopicARNs. SNS signatures are not verified (that
//     needs the signing certificate from the internet); the bearer token
//     (or Basic auth in the subscription URL) and the topic check stand in.
//     SubscriptionConfirmation messages are logged with their SubscribeURL
//     for the operator to open once; nothing is fetched.
//
// Each report is normalised into email.bounced (properties.kind hard|soft)
// or email.complained. Hard bounces and complaints put the address on the
// suppression list synchronously. The lead and send are found through the
// signed X-Nurture-Ref header every message carries, which DSNs, ARF reports
// and SES (with "include original headers") quote back. A report without it
// still suppresses the address but publishes no event.

type bounceReport struct {
	Complaint  bool
	Hard       bool
	Email      string
	Status     string // enhanced status code, e.g. 5.1.1
	Diagnostic string
	Feedback   string // ARF feedback type / SES complaint type
	Source     string // dsn, arf, ses
	SourceID   string // provider id (SES feedbackId), if any
	Ref        *token.Ref
}

type bounceResult struct {
	Reports    int `json:"reports"`
	Suppressed int `json:"suppressed"`
	Published  int `json:"published"`
	Unmatched  int `json:"unmatched"`
}

var errBadReport = errors.New("not a bounce or complaint report")

func (t *tracking) routeBounces(s *Server) {
	tokens := make([][32]byte, 0, len(t.c.BounceTokens))
	for _, tok := range t.c.BounceTokens {
		if tok != "" {
			tokens = append(tokens, sha256.Sum256([]byte(tok)))
		}
	}
	maxBody := s.cfg.MaxBody
	s.mux.HandleFunc("POST /v1/bounces", func(w http.ResponseWriter, r *http.Request) {
		if len(tokens) == 0 {
			bounceReply(w, http.StatusServiceUnavailable, map[string]string{"error": "bounce intake is closed: no tokens configured"})
			return
		}
		if !bounceAuthorized(r, tokens) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nurture"`)
			bounceReply(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid token"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			bounceReply(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "body too large or unreadable"})
			return
		}
		t.bounces(w, r, body)
	})
}

func bounceReply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func bounceAuthorized(r *http.Request, tokens [][32]byte) bool {
	var got string
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		got = strings.TrimSpace(tok)
	} else if user, pass, ok := r.BasicAuth(); ok {
		got = pass
		if got == "" {
			got = user
		}
	}
	if got == "" {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	ok := 0
	for _, want := range tokens {
		ok |= subtle.ConstantTimeCompare(sum[:], want[:])
	}
	return ok == 1
}

func (t *tracking) bounces(w http.ResponseWriter, r *http.Request, body []byte) {
	var reports []bounceReport
	var err error
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var confirm bool
		reports, confirm, err = t.parseSNS(trimmed)
		if confirm {
			bounceReply(w, http.StatusOK, map[string]string{"status": "subscription confirmation logged; confirm it by opening SubscribeURL"})
			return
		}
		if errors.Is(err, errTopic) {
			bounceReply(w, http.StatusForbidden, map[string]string{"error": err.Error()})
			return
		}
	} else {
		reports, err = parseReport(t.c.Signer, body)
	}
	if err != nil {
		bounceReply(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	res, err := t.applyReports(r.Context(), reports)
	if err != nil {
		t.log.Error("bounce intake", "error", redact.Error(err))
		bounceReply(w, http.StatusServiceUnavailable, map[string]string{"error": "could not record the report; retry"})
		return
	}
	bounceReply(w, http.StatusOK, res)
}

// applyReports suppresses (hard bounces, complaints) and publishes events.
// It fails (so the sender retries) when a suppression or publish fails;
// both are idempotent.
func (t *tracking) applyReports(ctx context.Context, reports []bounceReport) (bounceResult, error) {
	res := bounceResult{Reports: len(reports)}
	now := t.now().UTC()
	for _, b := range reports {
		if (b.Hard || b.Complaint) && b.Email != "" {
			if t.c.Suppressor == nil {
				return res, errors.New("no suppressor configured")
			}
			reason := "bounced"
			if b.Complaint {
				reason = "complained"
			}
			if err := t.c.Suppressor.Suppress(ctx, b.Email, reason, now); err != nil {
				return res, fmt.Errorf("suppress (%s): %w", reason, err)
			}
			res.Suppressed++
		}
		if b.Ref == nil {
			res.Unmatched++
			continue
		}
		ev := bounceEvent(b, now)
		if t.c.Publisher != nil {
			if err := t.c.Publisher.PublishEvent(ctx, ev); err != nil {
				return res, fmt.Errorf("publish %s: %w", ev.ID, err)
			}
			res.Published++
		}
	}
	return res, nil
}

func bounceEvent(b bounceReport, now time.Time) *engine.Event {
	props := refProps(*b.Ref)
	props["source"] = b.Source
	if b.Status != "" {
		props["status"] = b.Status
	}
	if b.Diagnostic != "" {
		props["diagnostic"] = truncate(b.Diagnostic, 500)
	}
	if b.Complaint {
		if b.Feedback != "" {
			props["feedback_type"] = b.Feedback
		}
		return &engine.Event{ID: "email.complained:" + b.Ref.Send, Type: engine.EventEmailComplained, Lead: b.Ref.Lead, Time: now, Properties: props}
	}
	kind := "soft"
	if b.Hard {
		kind = "hard"
	}
	props["kind"] = kind
	id := "email.bounced:" + b.Ref.Send + ":" + kind
	if !b.Hard {
		// Soft bounces may repeat for one send; each report is one event.
		key := b.SourceID + "|" + b.Status + "|" + b.Diagnostic
		sum := sha256.Sum256([]byte(key))
		id += ":" + hex.EncodeToString(sum[:6])
	}
	return &engine.Event{ID: id, Type: engine.EventEmailBounced, Lead: b.Ref.Lead, Time: now, Properties: props}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// parseReport reads a DSN or ARF message.
func parseReport(signer *token.Signer, raw []byte) ([]bounceReport, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadReport, err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["boundary"] == "" {
		return nil, fmt.Errorf("%w: content type %q, want multipart/report", errBadReport, msg.Header.Get("Content-Type"))
	}
	reportType := strings.ToLower(params["report-type"])
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var status []byte // message/delivery-status or message/feedback-report
	var original []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadReport, err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		b, err := io.ReadAll(io.LimitReader(p, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errBadReport, err)
		}
		switch strings.ToLower(ct) {
		case "message/delivery-status", "message/global-delivery-status", "message/feedback-report":
			status = b
		case "message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global", "message/global-headers":
			original = b
		}
	}
	if status == nil {
		return nil, fmt.Errorf("%w: no %s part", errBadReport, reportType)
	}
	orig := originalHeaders(original)
	ref := refFromHeader(signer, orig.Get("X-Nurture-Ref"))
	switch reportType {
	case "delivery-status":
		return parseDSN(status, ref)
	case "feedback-report":
		return parseARF(status, orig, ref)
	}
	return nil, fmt.Errorf("%w: report-type %q", errBadReport, reportType)
}

func originalHeaders(b []byte) textproto.MIMEHeader {
	if len(b) == 0 {
		return textproto.MIMEHeader{}
	}
	h, err := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(b), strings.NewReader("\r\n\r\n")))).ReadMIMEHeader()
	if err != nil && h == nil {
		return textproto.MIMEHeader{}
	}
	return h
}

func refFromHeader(signer *token.Signer, v string) *token.Ref {
	v = strings.Join(strings.Fields(v), "") // unfold
	if v == "" || signer == nil {
		return nil
	}
	r, err := signer.VerifyRef(token.PurposeRef, v)
	if err != nil {
		return nil
	}
	return &r
}

// statusBlocks splits a delivery-status/feedback-report body into its
// header blocks (separated by blank lines).
func statusBlocks(b []byte) []textproto.MIMEHeader {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	var out []textproto.MIMEHeader
	for _, block := range strings.Split(string(b), "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(strings.TrimLeft(block, "\n") + "\n\n"))).ReadMIMEHeader()
		if err != nil && len(h) == 0 {
			continue
		}
		out = append(out, h)
	}
	return out
}

func addrField(v string) string {
	// "rfc822; user@example.com"
	if _, a, ok := strings.Cut(v, ";"); ok {
		v = a
	}
	v = strings.Trim(strings.TrimSpace(v), "<>")
	if a, err := mail.ParseAddress(v); err == nil {
		return strings.ToLower(a.Address)
	}
	return ""
}

func parseDSN(status []byte, ref *token.Ref) ([]bounceReport, error) {
	blocks := statusBlocks(status)
	var out []bounceReport
	for _, h := range blocks[min(1, len(blocks)):] { // the first block is per-message
		email := addrField(h.Get("Final-Recipient"))
		if email == "" {
			email = addrField(h.Get("Original-Recipient"))
		}
		action := strings.ToLower(strings.TrimSpace(h.Get("Action")))
		if email == "" || (action != "failed" && action != "delayed") {
			continue // delivered, relayed, expanded: not a bounce
		}
		st := strings.TrimSpace(h.Get("Status"))
		if f := strings.Fields(st); len(f) > 0 {
			st = f[0]
		}
		out = append(out, bounceReport{
			Hard: action == "failed" && strings.HasPrefix(st, "5."), Email: email, Status: st,
			Diagnostic: strings.TrimSpace(h.Get("Diagnostic-Code")), Source: "dsn", Ref: ref,
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no failed or delayed recipient in the DSN", errBadReport)
	}
	return out, nil
}

func parseARF(report []byte, orig textproto.MIMEHeader, ref *token.Ref) ([]bounceReport, error) {
	blocks := statusBlocks(report)
	if len(blocks) == 0 {
		return nil, fmt.Errorf("%w: empty feedback report", errBadReport)
	}
	h := blocks[0]
	email := addrField(h.Get("Original-Rcpt-To"))
	if email == "" {
		if a, err := mail.ParseAddress(orig.Get("To")); err == nil {
			email = strings.ToLower(a.Address)
		}
	}
	if email == "" {
		return nil, fmt.Errorf("%w: feedback report names no recipient", errBadReport)
	}
	return []bounceReport{{
		Complaint: true, Email: email, Feedback: strings.ToLower(strings.TrimSpace(h.Get("Feedback-Type"))),
		Source: "arf", Ref: ref,
	}}, nil
}

// --- Amazon SES via SNS ---

var errTopic = errors.New("SNS topic not accepted")

type snsEnvelope struct {
	Type         string `json:"Type"`
	MessageID    string `json:"MessageId"`
	TopicArn     string `json:"TopicArn"`
	Message      string `json:"Message"`
	SubscribeURL string `json:"SubscribeURL"`
}

type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"`
		BounceSubType     string `json:"bounceSubType"`
		FeedbackID        string `json:"feedbackId"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		FeedbackID            string `json:"feedbackId"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		ComplainedRecipients  []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Mail struct {
		MessageID string `json:"messageId"`
		Headers   []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
	} `json:"mail"`
}

func (t *tracking) parseSNS(body []byte) (reports []bounceReport, confirm bool, err error) {
	var env snsEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, false, fmt.Errorf("%w: SNS JSON: %v", errBadReport, err)
	}
	if env.TopicArn == "" || !slices.Contains(t.c.SESTopicARNs, env.TopicArn) {
		return nil, false, fmt.Errorf("%w: %q (configure it in the SES topic list)", errTopic, env.TopicArn)
	}
	switch env.Type {
	case "SubscriptionConfirmation":
		t.log.Warn("SNS subscription confirmation received: open SubscribeURL once to confirm",
			"topic", env.TopicArn, "subscribe_url", env.SubscribeURL)
		return nil, true, nil
	case "Notification":
	default:
		return nil, false, fmt.Errorf("%w: SNS message type %q", errBadReport, env.Type)
	}
	var n sesNotification
	if err := json.Unmarshal([]byte(env.Message), &n); err != nil {
		return nil, false, fmt.Errorf("%w: SES notification: %v", errBadReport, err)
	}
	var ref *token.Ref
	for _, h := range n.Mail.Headers {
		if strings.EqualFold(h.Name, "X-Nurture-Ref") {
			ref = refFromHeader(t.c.Signer, h.Value)
		}
	}
	kind := n.NotificationType
	if kind == "" {
		kind = n.EventType
	}
	switch kind {
	case "Bounce":
		if n.Bounce == nil {
			return nil, false, fmt.Errorf("%w: bounce notification without bounce", errBadReport)
		}
		hard := n.Bounce.BounceType == "Permanent"
		for _, r := range n.Bounce.BouncedRecipients {
			email := addrField(r.EmailAddress)
			if email == "" {
				continue
			}
			reports = append(reports, bounceReport{
				Hard: hard, Email: email, Status: r.Status, Diagnostic: r.DiagnosticCode,
				Feedback: n.Bounce.BounceSubType, Source: "ses", SourceID: n.Bounce.FeedbackID, Ref: ref,
			})
		}
	case "Complaint":
		if n.Complaint == nil {
			return nil, false, fmt.Errorf("%w: complaint notification without complaint", errBadReport)
		}
		for _, r := range n.Complaint.ComplainedRecipients {
			email := addrField(r.EmailAddress)
			if email == "" {
				continue
			}
			reports = append(reports, bounceReport{
				Complaint: true, Email: email, Feedback: n.Complaint.ComplaintFeedbackType,
				Source: "ses", SourceID: n.Complaint.FeedbackID, Ref: ref,
			})
		}
	default:
		// Delivery, Send, Open…: acknowledged, nothing to do.
		return nil, false, nil
	}
	return reports, false, nil
}
