package runner

import (
	"errors"
	"fmt"
	"sync"
)

// coalescer turns concurrent single calls into batches, the way a
// database groups commits: a call that arrives while a batch is running
// waits and joins the next one. An idle coalescer runs a lone call at
// once, so batching adds no latency; under load each batch is as large as
// what piled up during the previous one (at most max).
type coalescer[Req, Res any] struct {
	max int
	// run answers a batch: one result per request, in order, or one error
	// for all of them.
	run func(reqs []Req) ([]Res, error)

	mu      sync.Mutex
	queue   []*call[Req, Res]
	running bool
}

type call[Req, Res any] struct {
	req  Req
	res  Res
	err  error
	done chan struct{}
}

func newCoalescer[Req, Res any](max int, run func(reqs []Req) ([]Res, error)) *coalescer[Req, Res] {
	return &coalescer[Req, Res]{max: max, run: run}
}

// do submits req and waits for its batch to be answered. It does not give
// up on cancellation: run must bound its own time.
func (c *coalescer[Req, Res]) do(req Req) (Res, error) {
	cl := &call[Req, Res]{req: req, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, cl)
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	<-cl.done
	return cl.res, cl.err
}

// loop runs batches until the queue is empty.
func (c *coalescer[Req, Res]) loop() {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), max(1, c.max))
		batch := make([]*call[Req, Res], n)
		copy(batch, c.queue)
		c.queue = append(c.queue[:0], c.queue[n:]...)
		c.mu.Unlock()

		reqs := make([]Req, n)
		for i, cl := range batch {
			reqs[i] = cl.req
		}
		res, err := c.safeRun(reqs)
		if err == nil && len(res) != n {
			err = errBatchShape
		}
		for i, cl := range batch {
			if err != nil {
				cl.err = err
			} else {
				cl.res = res[i]
			}
			close(cl.done)
		}
	}
}

func (c *coalescer[Req, Res]) safeRun(reqs []Req) (res []Res, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("batch panicked: %v", p)
		}
	}()
	return c.run(reqs)
}

var errBatchShape = errors.New("batch answered a different number of requests")
