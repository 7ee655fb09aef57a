package httpapi

// MailboxConfig holds the dependencies of the mailbox area.
// PLACEHOLDER: the helper that owns mailbox.go replaces this file.
type MailboxConfig struct{}

func (s *Server) routeMailbox(c *MailboxConfig) {}
