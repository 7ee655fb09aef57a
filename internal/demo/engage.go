package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Mail finds the delivered message of a send (the capture mailer of
// `nurture dev` in internal/app).
type Mail interface {
	// BySend returns the raw RFC 5322 message of a send; ok=false when it
	// is not delivered yet.
	BySend(ctx context.Context, sendID string) (raw []byte, ok bool, err error)
}

// UserAgent is what the demo's "people" browse with: a desktop browser, so
// the tracking endpoints count them as people, not as link scanners.
const UserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"

// HTTPEngager opens and clicks captured emails through their real tracking
// links (the open pixel and click redirects in the message) and
// acknowledges escalations through the lead API, like people would.
type HTTPEngager struct {
	Mail Mail
	// BaseURL is the Nurture HTTP server, e.g. http://127.0.0.1:8080. Links
	// in messages are rewritten onto it (the public URL may differ).
	BaseURL string
	// Token is an API bearer token, for acknowledgements.
	Token  string
	Client *http.Client
}

// NewHTTPEngager returns an engager whose client does not follow redirects
// (a click answers 302 to the link's target on the internet).
func NewHTTPEngager(m Mail, baseURL, token string) *HTTPEngager {
	return &HTTPEngager{Mail: m, BaseURL: strings.TrimRight(baseURL, "/"), Token: token, Client: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var trackedLink = regexp.MustCompile(`https?://[^\s"'<>]+?/t/([oc])/[A-Za-z0-9_\-.~%]+`)

// links returns the open pixel and the click links of a message, in order.
func links(raw []byte) (opens, clicks []string, err error) {
	html, text, err := bodies(raw)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, body := range []string{html, text} {
		for _, m := range trackedLink.FindAllStringSubmatch(body, -1) {
			u := strings.ReplaceAll(m[0], "&amp;", "&")
			if seen[u] {
				continue
			}
			seen[u] = true
			if m[1] == "o" {
				opens = append(opens, u)
			} else {
				clicks = append(clicks, u)
			}
		}
	}
	return opens, clicks, nil
}

func (e *HTTPEngager) message(ctx context.Context, s Send) (opens, clicks []string, ok bool, err error) {
	raw, ok, err := e.Mail.BySend(ctx, s.SendID)
	if err != nil || !ok {
		return nil, nil, false, err
	}
	opens, clicks, err = links(raw)
	if err != nil {
		return nil, nil, false, fmt.Errorf("read send %s: %w", s.SendID, err)
	}
	return opens, clicks, true, nil
}

// onBase moves a link onto BaseURL, keeping its path.
func (e *HTTPEngager) onBase(link string) (string, error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", err
	}
	return e.BaseURL + u.EscapedPath(), nil
}

func (e *HTTPEngager) get(ctx context.Context, link string) error {
	target, err := e.onBase(link)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("Accept", "text/html,image/*,*/*")
	resp, err := e.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", u0(target), resp.Status)
	}
	return nil
}

// u0 strips the token from a tracking URL for messages.
func u0(s string) string {
	if i := strings.Index(s, "/t/"); i >= 0 {
		return s[:i+5] + "…"
	}
	return s
}

// Open implements Engager: it loads the message's open pixel.
func (e *HTTPEngager) Open(ctx context.Context, s Send) (bool, error) {
	opens, _, ok, err := e.message(ctx, s)
	if err != nil || !ok {
		return false, err
	}
	if len(opens) == 0 {
		return true, nil // no pixel (tracking off): nothing to open
	}
	return true, e.get(ctx, opens[0])
}

// Click implements Engager: it follows one tracked link of the message.
func (e *HTTPEngager) Click(ctx context.Context, s Send, link int) (bool, error) {
	_, clicks, ok, err := e.message(ctx, s)
	if err != nil || !ok {
		return false, err
	}
	if len(clicks) == 0 {
		return true, nil
	}
	return true, e.get(ctx, clicks[link%len(clicks)])
}

// Ack implements Engager through POST /v1/escalations/{id}/ack.
func (e *HTTPEngager) Ack(ctx context.Context, lead, escalation, rep string) error {
	body, _ := json.Marshal(map[string]string{"rep": rep})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		e.BaseURL+"/v1/escalations/"+url.PathEscape(escalation)+"/ack", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.Token)
	resp, err := e.Client.Do(req)
	if err != nil {
		return fmt.Errorf("acknowledge %s: %w", escalation, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusConflict {
		return fmt.Errorf("acknowledge %s: %s: %s", escalation, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// bodies returns the decoded first text/html and text/plain parts.
func bodies(raw []byte) (html, text string, err error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", err
	}
	var walk func(ctype, cte string, r io.Reader, depth int) error
	walk = func(ctype, cte string, r io.Reader, depth int) error {
		if depth > 5 {
			return errors.New("multipart nested too deep")
		}
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil {
			mt = "text/plain"
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(r, params["boundary"])
			for {
				p, err := mr.NextRawPart()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if err := walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, depth+1); err != nil {
					return err
				}
			}
		}
		switch strings.ToLower(cte) {
		case "quoted-printable":
			r = quotedprintable.NewReader(r)
		case "base64":
			b, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			r = base64.NewDecoder(base64.StdEncoding, strings.NewReader(strings.NewReplacer("\r", "", "\n", "").Replace(string(b))))
		}
		b, err := io.ReadAll(io.LimitReader(r, 4<<20))
		if err != nil {
			return err
		}
		switch {
		case mt == "text/html" && html == "":
			html = string(b)
		case mt == "text/plain" && text == "":
			text = string(b)
		}
		return nil
	}
	err = walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0)
	return html, text, err
}
