package smtp

import "time"

// DomainBuckets reports how many per-domain buckets t holds.
func (t *Throttle) DomainBuckets() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.domain)
}

// SetClock replaces t's clock.
func (t *Throttle) SetClock(now func() time.Time) { t.now = now }

// Exported for the equivalence tests in equiv_test.go.
var (
	HTMLToText            = htmlToText
	RewriteLinks          = rewriteLinks
	InsertAfterBodyOpen   = insertAfterBodyOpen
	InsertBeforeBodyClose = insertBeforeBodyClose
)
