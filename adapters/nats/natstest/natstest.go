// Package natstest starts throwaway nats-servers with JetStream for tests:
// in-process (Start) or as a separate /usr/sbin/nats-server process that a
// test can kill and restart (StartProcess).
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nurture-oss/nurture/adapters/nats"
)

// Server is a running test server.
type Server struct {
	URL string
	Dir string // JetStream store directory
	emb *nats.Embedded
}

// Start runs an embedded nats-server with JetStream on a random port and a
// temporary store; it is shut down when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	emb, err := nats.StartEmbedded(nats.Options{StoreDir: dir, Port: -1})
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	t.Cleanup(emb.Shutdown)
	return &Server{URL: emb.URL(), Dir: dir, emb: emb}
}

// Shutdown stops the embedded server early (e.g. to test a broker loss).
func (s *Server) Shutdown() {
	if s.emb != nil {
		s.emb.Shutdown()
	}
}

// Connect connects to url, ensures the streams and closes the connection
// when the test ends.
func Connect(t testing.TB, url string, opts nats.Options) *nats.Conn {
	t.Helper()
	opts.URL = url
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := nats.Connect(ctx, opts)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.EnsureStreams(ctx); err != nil {
		t.Fatalf("natstest: streams: %v", err)
	}
	return c
}

// Binary is the nats-server executable StartProcess runs.
var Binary = "/usr/sbin/nats-server"

// Process is a nats-server running as a child process.
type Process struct {
	URL  string
	Port int
	Dir  string
	t    testing.TB
	cmd  *exec.Cmd
}

// StartProcess runs nats-server -js as a separate process on a free port
// with its own store directory. Kill and Restart simulate a broker crash;
// the process is killed when the test ends.
func StartProcess(t testing.TB) *Process {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("natstest: %s not found: %v", Binary, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	p := &Process{Port: port, Dir: t.TempDir(), t: t, URL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	p.start()
	t.Cleanup(p.Kill)
	return p
}

func (p *Process) start() {
	p.t.Helper()
	p.cmd = exec.Command(Binary, "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(p.Port),
		"-sd", filepath.Join(p.Dir, "js"), "-n", "natstest")
	p.cmd.Stdout = nil
	p.cmd.Stderr = nil
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("natstest: start nats-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), 200*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("natstest: nats-server on port %d not ready", p.Port)
}

// Kill stops the server with SIGKILL (no clean shutdown).
func (p *Process) Kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// Restart kills the server and starts it again on the same port and store.
func (p *Process) Restart() {
	p.t.Helper()
	p.Kill()
	p.start()
}
