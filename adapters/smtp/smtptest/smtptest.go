// Package smtptest runs a real SMTP server (emersion/go-smtp) in-process
// for tests: it receives messages, keeps their bytes, and can inject faults
// (reply codes and dropped connections) at each stage of the transaction.
package smtptest

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// Message is one message the sink accepted.
type Message struct {
	From string
	To   []string
	Data []byte
}

// Stage of an SMTP transaction at which a Fault applies.
type Stage string

const (
	StageMail Stage = "mail"
	StageRcpt Stage = "rcpt"
	StageData Stage = "data" // after the message data was read, before the reply
)

// Fault is what the server does at a stage. Zero value: nothing.
type Fault struct {
	Code     int    // reply code (e.g. 451, 550); 0 = no error reply
	Enhanced [3]int // enhanced status code; zero = none sent
	Message  string
	// Drop closes the connection instead of replying.
	Drop bool
	// DropAfterReply accepts (250) and then closes the connection (StageData).
	DropAfterReply bool
}

// Sink is a running SMTP server.
type Sink struct {
	Host string
	Port int

	srv *gosmtp.Server
	mu  sync.Mutex
	// Faults maps a stage to the fault to inject; Once removes it after it
	// fired once.
	faults map[Stage]Fault
	once   bool
	msgs   []Message
	notify chan struct{}
	conns  int
}

// Start runs a sink on 127.0.0.1 until the test ends.
func Start(tb testing.TB) *Sink {
	tb.Helper()
	s := &Sink{faults: map[Stage]Fault{}, notify: make(chan struct{}, 1)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &session{s: s, c: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("smtptest: listen: %v", err)
	}
	s.srv = srv
	s.Host = "127.0.0.1"
	s.Port = l.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return s
}

// Addr is host:port.
func (s *Sink) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL is an smtp:// URL for the sink (no TLS).
func (s *Sink) URL() string { return "smtp://" + s.Addr() + "?starttls=none" }

// SetFault injects f at stage (until cleared with a zero Fault). When once
// is true every fault fires a single time.
func (s *Sink) SetFault(stage Stage, f Fault, once bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[stage] = f
	s.once = once
}

func (s *Sink) fault(stage Stage) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[stage]
	if s.once {
		delete(s.faults, stage)
	}
	return f
}

// Messages returns a copy of what was accepted so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Connections is the number of SMTP sessions opened so far.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Wait blocks until at least n messages arrived or timeout passed, and
// returns what arrived.
func (s *Sink) Wait(n int, timeout time.Duration) []Message {
	deadline := time.Now().Add(timeout)
	for {
		m := s.Messages()
		if len(m) >= n || time.Now().After(deadline) {
			return m
		}
		select {
		case <-s.notify:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type session struct {
	s    *Sink
	c    *gosmtp.Conn
	from string
	to   []string
}

func (f Fault) err() error {
	if f.Code == 0 {
		return nil
	}
	e := &gosmtp.SMTPError{Code: f.Code, EnhancedCode: gosmtp.NoEnhancedCode, Message: f.Message}
	if f.Enhanced != [3]int{} {
		e.EnhancedCode = gosmtp.EnhancedCode(f.Enhanced)
	}
	if e.Message == "" {
		e.Message = "injected fault"
	}
	return e
}

func (x *session) apply(stage Stage) error {
	f := x.s.fault(stage)
	if f.Drop {
		_ = x.c.Conn().Close()
		return io.ErrUnexpectedEOF
	}
	return f.err()
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

func (x *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if err := x.apply(StageMail); err != nil {
		return err
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if err := x.apply(StageRcpt); err != nil {
		return err
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	f := x.s.fault(StageData)
	switch {
	case f.Drop:
		_ = x.c.Conn().Close()
		return io.ErrUnexpectedEOF
	case f.Code != 0:
		return f.err()
	}
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, Message{From: x.from, To: append([]string(nil), x.to...), Data: buf.Bytes()})
	x.s.mu.Unlock()
	select {
	case x.s.notify <- struct{}{}:
	default:
	}
	if f.DropAfterReply {
		conn := x.c.Conn()
		go func() {
			time.Sleep(5 * time.Millisecond)
			_ = conn.Close()
		}()
	}
	return nil
}
