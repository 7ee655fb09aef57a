package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/nurture-oss/nurture/adapters/webhook"
)

// smtpSink is an in-process SMTP server that accepts every message and
// discards it, counting them.
type smtpSink struct {
	srv   *gosmtp.Server
	host  string
	port  int
	count atomic.Int64
}

func startSink() (*smtpSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtp sink: %w", err)
	}
	s := &smtpSink{host: "127.0.0.1", port: l.Addr().(*net.TCPAddr).Port}
	s.srv = gosmtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.bench.example"
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = 10 << 20
	s.srv.MaxRecipients = 50
	s.srv.AllowInsecureAuth = true
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *smtpSink) Close() { _ = s.srv.Close() }

type sinkBackend struct{ s *smtpSink }

func (b sinkBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return sinkSession{b.s}, nil }

type sinkSession struct{ s *smtpSink }

func (sinkSession) Reset()                                 {}
func (sinkSession) Logout() error                          { return nil }
func (sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (x sinkSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	x.s.count.Add(1)
	return nil
}

// receiver is an in-process HTTP endpoint for the escalation webhook: it
// records when the first notification for each lead arrived.
type receiver struct {
	srv *http.Server
	url string
	mu  sync.Mutex
	got map[string]time.Time // lead key → first arrival
	bad atomic.Int64
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	rc := &receiver{url: "http://" + l.Addr().String() + "/hook", got: map[string]time.Time{}}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := rc.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rc.bad.Add(1)
		}
	}()
	return rc, nil
}

func (rc *receiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	var p webhook.Payload
	if err := json.NewDecoder(io.LimitReader(req.Body, 1<<20)).Decode(&p); err != nil || p.Data.Lead.Key == "" ||
		req.Header.Get(webhook.HeaderSignature) == "" {
		rc.bad.Add(1)
		http.Error(w, "bad notification", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	if _, seen := rc.got[p.Data.Lead.Key]; !seen {
		rc.got[p.Data.Lead.Key] = at
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) arrivals() map[string]time.Time {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]time.Time, len(rc.got))
	for k, v := range rc.got {
		out[k] = v
	}
	return out
}

func (rc *receiver) Close() { _ = rc.srv.Close() }
