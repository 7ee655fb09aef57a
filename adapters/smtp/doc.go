// Package smtp delivers Nurture's marketing email: it composes each email
// outbox item into a multipart/alternative message with go-mail
// (github.com/wneessen/go-mail) — rendered template, tracked links, open
// pixel, generated text part, List-Unsubscribe with RFC 8058 one-click,
// a stable Message-ID per (enrollment, step), optional postal-address footer
// and DKIM signature — and sends it over a small pool of reused SMTP
// connections, throttled per recipient domain and globally.
//
// Send results are translated into the outbox error classes:
//
//	250 after the data                         → delivered
//	4xx reply, connection error before the end → transient (retried)
//	5.1.x at RCPT or end of data               → *outbox.SuppressError (permanent, suppress)
//	5.7.x                                      → permanent, not suppressed, logged + observed as "policy"
//	other 5xx                                  → permanent
//	connection lost after the end of data      → outbox.ErrUnknown
//	throttle full                              → *outbox.DeferError (retry later, not a failure)
//
// Capture composes the same messages for `nurture dev` and writes them to a
// directory instead of sending them.
package smtp
