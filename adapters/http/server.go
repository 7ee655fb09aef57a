// Package httpapi is Nurture's HTTP surface: the event ingest API, email
// tracking (open pixel, click redirects), unsubscribe pages, bounce and
// complaint intake, lead pages and the lead API, captured mail (dev), health
// and metrics.
//
// Each area lives in its own file and declares the small interfaces it
// needs; Server only routes. An area whose dependencies are nil in Config is
// not mounted.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Config holds every area's dependencies. Leave an area's fields nil to
// leave it out.
type Config struct {
	Logger *slog.Logger
	// PublicURL is the base URL written into emails and notifications.
	PublicURL string
	// MaxBody limits request bodies (bytes); default 1 MiB.
	MaxBody int64

	// Health: Ready reports whether the process is ready to serve (nil =
	// always ready once started). Metrics is the /metrics handler.
	Ready   func() error
	Metrics http.Handler

	// Ingest (ingest.go).
	Ingest *IngestConfig
	// Tracking, unsubscribe and bounce intake (tracking.go, unsubscribe.go, bounce.go).
	Tracking *TrackingConfig
	// Leads: lead API and pages, acknowledgements, rep away (leads.go).
	Leads *LeadsConfig
	// Mailbox: captured mail pages for `nurture dev` (mailbox.go).
	Mailbox *MailboxConfig
}

// Server is the HTTP handler tree.
type Server struct {
	cfg Config
	mux *http.ServeMux
	log *slog.Logger
}

// New builds the handler tree.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger}
	s.routeHealth()
	if cfg.Ingest != nil {
		s.routeIngest(cfg.Ingest)
	}
	if cfg.Tracking != nil {
		s.routeTracking(cfg.Tracking)
	}
	if cfg.Leads != nil {
		s.routeLeads(cfg.Leads)
	}
	if cfg.Mailbox != nil {
		s.routeMailbox(cfg.Mailbox)
	}
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// HTTPServer wraps the handler in an *http.Server with sane timeouts.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
}

func (s *Server) routeHealth() {
	s.mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.cfg.Ready != nil {
			if err := s.cfg.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if s.cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.cfg.Metrics)
	}
}
