package nats

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Embedded is a running in-process nats-server with JetStream.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts an in-process nats-server with JetStream (using
// o.StoreDir, o.Host and o.Port; the other fields are ignored) and waits
// until it accepts connections.
func StartEmbedded(o Options) (*Embedded, error) {
	if o.StoreDir == "" {
		return nil, fmt.Errorf("start embedded nats: %w: no store directory", ErrNATS)
	}
	if err := os.MkdirAll(o.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "nurture-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		// Keep the embedded server's footprint modest.
		JetStreamMaxMemory: 256 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w: %s", ErrNATS, err.Error())
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("start embedded nats: %w: not ready after 10s", ErrUnavailable)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL, e.g. nats://127.0.0.1:41234.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it to finish.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
