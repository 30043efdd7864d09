package djangodb

import (
	"context"
	"sync"
	"time"
)

// batcher runs the calls that arrive while one statement is running as
// one statement, the next: a round trip, and a plan, per batch instead
// of per call, the way group commit shares a flush. Each call is still
// answered by a statement that began after the call did, so it sees
// every row committed before the call, as if it ran alone.
type batcher[Req, Res any] struct {
	// run answers reqs, one result each, in order; the context carries
	// the latest of their callers' deadlines.
	run func(ctx context.Context, reqs []Req) ([]Res, error)
	max int // the most requests in one statement

	mu      sync.Mutex
	pending []*batchCall[Req, Res]
	running bool
}

type batchCall[Req, Res any] struct {
	req      Req
	deadline time.Time // of the caller's context; zero: none
	res      Res
	err      error
	done     chan struct{}
}

// do answers one call, with the next batch.
func (b *batcher[Req, Res]) do(ctx context.Context, req Req) (Res, error) {
	c := &batchCall[Req, Res]{req: req, done: make(chan struct{})}
	c.deadline, _ = ctx.Deadline()
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if !b.running {
		b.running = true
		go b.loop()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero Res
		return zero, ctx.Err() // the batch goes on without it
	}
}

// loop answers batches until no call waits.
func (b *batcher[Req, Res]) loop() {
	for {
		b.mu.Lock()
		batch := b.pending[:min(len(b.pending), b.max)]
		b.pending = b.pending[len(batch):]
		if len(batch) == 0 {
			b.running = false
			b.pending = nil
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.answer(batch)
	}
}

// answer runs one statement for batch, within the latest of its callers'
// deadlines (the callers that leave earlier stop waiting on their own).
func (b *batcher[Req, Res]) answer(batch []*batchCall[Req, Res]) {
	ctx := context.Background()
	var latest time.Time
	for _, c := range batch {
		if c.deadline.IsZero() {
			latest = time.Time{}
			break
		}
		if c.deadline.After(latest) {
			latest = c.deadline
		}
	}
	if !latest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, latest)
		defer cancel()
	}
	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	res, err := b.run(ctx, reqs)
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}
