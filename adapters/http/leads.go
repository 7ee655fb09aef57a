package httpapi

// LeadsConfig holds the dependencies of the leads area.
// PLACEHOLDER: the helper that owns leads.go replaces this file.
type LeadsConfig struct{}

func (s *Server) routeLeads(c *LeadsConfig) {}
