package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/engine"
)

// TestTickFailedBacksOff: a lead whose tick keeps failing is retried after
// TickRetry, doubling per failure up to TickRetryMax, not every TickRetry
// forever.
func TestTickFailedBacksOff(t *testing.T) {
	t.Parallel()
	r := &Runner{cfg: Config{TickRetry: 5 * time.Minute, TickRetryMax: time.Hour}}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	l := engine.NewLead("k", now)
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute, time.Hour, time.Hour}
	for i, w := range want {
		require.Equal(t, w, r.tickFailed(l, now), "failure %d", i+1)
		require.Equal(t, i+1, l.TickFailures)
		require.Equal(t, now.Add(w), l.NextRunAt)
	}
	l.TickFailures = 200 // no overflow however long it fails
	require.Equal(t, time.Hour, r.tickFailed(l, now))
}
