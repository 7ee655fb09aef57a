// Package e2e holds end-to-end tests that run Nurture's real parts together
// (PostgreSQL, embedded NATS JetStream, an in-process SMTP server, the HTTP
// tracking endpoints). It has no non-test code.
package e2e
