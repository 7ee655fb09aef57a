package runner

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fill takes n slots, as items in flight would.
func fill(slots chan struct{}, n int) {
	for range n {
		slots <- struct{}{}
	}
}

// An idle pipeline claims at once, as much as it may.
func TestReserveIdleTakesWant(t *testing.T) {
	slots := make(chan struct{}, 64)
	require.Equal(t, 32, reserve(context.Background(), slots, 32, time.Minute))
	require.Len(t, slots, 32)
}

// A busy pipeline with a few free slots waits for half of want, so it
// claims in groups rather than an item at a time.
func TestReserveBusyWaitsForAGroup(t *testing.T) {
	slots := make(chan struct{}, 64)
	fill(slots, 60) // 60 in flight, 4 free
	got := make(chan int, 1)
	go func() { got <- reserve(context.Background(), slots, 32, time.Minute) }()
	require.Eventually(t, func() bool { return len(slots) == 64 }, waitFor, tick, "the 4 free slots are taken")
	select {
	case n := <-got:
		t.Fatalf("claimed %d items while waiting for a group", n)
	default:
	}
	for range 12 { // 12 deliveries end
		<-slots
	}
	require.Equal(t, 16, <-got)
}

// The wait is bounded: a pipeline whose items do not finish claims what
// it has after linger.
func TestReserveLingerBounded(t *testing.T) {
	slots := make(chan struct{}, 64)
	fill(slots, 62)
	start := time.Now()
	require.Equal(t, 2, reserve(context.Background(), slots, 32, 5*time.Millisecond))
	require.GreaterOrEqual(t, time.Since(start), 5*time.Millisecond)
}

// A small pipeline (want 1) never waits beyond the first slot, and a
// cancelled context ends the wait for it.
func TestReserveSmallAndCancelled(t *testing.T) {
	slots := make(chan struct{}, 2)
	require.Equal(t, 1, reserve(context.Background(), slots, 1, time.Minute))
	fill(slots, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Zero(t, reserve(ctx, slots, 1, time.Minute), "no slot free and ctx over")
}
