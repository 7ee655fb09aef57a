package httpapi

// IngestConfig holds the dependencies of the ingest area.
// PLACEHOLDER: the helper that owns ingest.go replaces this file.
type IngestConfig struct{}

func (s *Server) routeIngest(c *IngestConfig) {}
