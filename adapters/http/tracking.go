package httpapi

// TrackingConfig holds the dependencies of the tracking area.
// PLACEHOLDER: the helper that owns tracking.go replaces this file.
type TrackingConfig struct{}

func (s *Server) routeTracking(c *TrackingConfig) {}
