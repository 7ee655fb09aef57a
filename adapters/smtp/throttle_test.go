package smtp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/internal/outbox"
)

// TestThrottleEvictsIdleDomains: one bucket per recipient domain would grow
// with the number of leads; buckets that have refilled are dropped, buckets
// still limiting a domain are kept.
func TestThrottleEvictsIdleDomains(t *testing.T) {
	t.Parallel()
	th := smtp.NewThrottle(smtp.ThrottleConfig{DomainPerMinute: 60, Domains: map[string]float64{"slow.example": 1}})
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	th.SetClock(func() time.Time { return now })
	ctx := context.Background()

	for i := range 1000 {
		require.NoError(t, th.Wait(ctx, fmt.Sprintf("d%d.example", i)))
	}
	require.Equal(t, 1000, th.DomainBuckets())

	now = now.Add(30 * time.Second)
	require.NoError(t, th.Wait(ctx, "slow.example")) // its one slot per minute is taken

	now = now.Add(31 * time.Second)
	require.NoError(t, th.Wait(ctx, "new.example"))
	require.Equal(t, 2, th.DomainBuckets(), "only slow.example (still limiting) and new.example remain")

	// Eviction did not reset the domain that is still limited.
	err := th.Wait(ctx, "slow.example")
	until, ok := outbox.DeferUntil(err)
	require.True(t, ok, "err: %v", err)
	require.Equal(t, now.Add(29*time.Second), until)
}
