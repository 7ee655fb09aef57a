package runner

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const waitFor, tick = 5 * time.Second, time.Millisecond

// While a batch runs, concurrent calls pile up and run as the next batch;
// each caller gets its own result.
func TestCoalescerGroupsWaitingCalls(t *testing.T) {
	release := make(chan struct{})
	var batches [][]int
	var mu sync.Mutex
	c := newCoalescer(100, func(reqs []int) ([]int, error) {
		mu.Lock()
		batches = append(batches, append([]int(nil), reqs...))
		first := len(batches) == 1
		mu.Unlock()
		if first {
			<-release // hold the first batch until the others queued
		}
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	})
	var wg sync.WaitGroup
	got := make([]int, 6)
	wg.Go(func() { got[0], _ = c.do(0) })
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 }, waitFor, tick)
	for i := 1; i < 6; i++ {
		wg.Go(func() { got[i], _ = c.do(i) })
	}
	require.Eventually(t, func() bool { c.mu.Lock(); defer c.mu.Unlock(); return len(c.queue) == 5 }, waitFor, tick)
	close(release)
	wg.Wait()
	require.Equal(t, []int{0, 10, 20, 30, 40, 50}, got)
	require.Len(t, batches, 2, "the five waiting calls ran as one batch")
	require.ElementsMatch(t, []int{1, 2, 3, 4, 5}, batches[1])
}

// A batch never exceeds max; an error or a panic reaches every caller of
// its batch and the coalescer keeps working.
func TestCoalescerLimitsErrorsAndPanics(t *testing.T) {
	var biggest atomic.Int64
	mode := atomic.Value{}
	mode.Store("ok")
	c := newCoalescer(3, func(reqs []int) ([]string, error) {
		if int64(len(reqs)) > biggest.Load() {
			biggest.Store(int64(len(reqs)))
		}
		switch mode.Load() {
		case "err":
			return nil, errors.New("boom")
		case "panic":
			panic("kaput")
		case "short":
			return nil, nil
		}
		return make([]string, len(reqs)), nil
	})
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := c.do(i)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.LessOrEqual(t, biggest.Load(), int64(3))

	mode.Store("err")
	_, err := c.do(1)
	require.EqualError(t, err, "boom")
	mode.Store("panic")
	_, err = c.do(1)
	require.ErrorContains(t, err, "kaput")
	mode.Store("short")
	_, err = c.do(1)
	require.ErrorIs(t, err, errBatchShape)
	mode.Store("ok")
	_, err = c.do(1)
	require.NoError(t, err)
}
