package consumer

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errBusy is returned when work waited its turn for memory and did not get
// it: the client is told to try again (HTTP 503 at connect, close 1013
// after).
var errBusy = errors.New("server busy: memory budget exhausted")

// budget is the process's memory for what clients make it hold, in bytes:
// client frames being read and decoded, histories being loaded and encoded,
// and frames waiting in send queues (a frame shared by many connections, or
// a history inside many frames, counted once). Work that can wait acquires
// before it allocates; frames produced on the way (error frames, relays)
// are charged without waiting, and a connection that falls behind while
// the budget is spent is closed instead (enqueue).
type budget struct {
	limit int64
	used  atomic.Int64

	mu    sync.Mutex
	freed chan struct{} // closed and replaced whenever bytes are released
}

func newBudget(limit int64) *budget {
	return &budget{limit: limit, freed: make(chan struct{})}
}

// acquire takes n bytes, waiting up to wait (or until ctx is done) for
// others to release them. A request larger than the whole budget is
// refused at once. The first piece of a piece of work (first) may dip into
// a reserve past the limit, an eighth of it: work that holds part of the
// budget while it waits for more (a long history loading chunk by chunk, a
// large frame growing) must not keep every small request waiting too.
func (b *budget) acquire(ctx context.Context, n int64, wait time.Duration, first bool) error {
	if n > b.limit {
		return errBusy
	}
	limit := b.limit
	if first {
		limit += b.limit / 8
	}
	var timer <-chan time.Time
	for {
		b.mu.Lock()
		if b.used.Load()+n <= limit {
			b.used.Add(n)
			b.mu.Unlock()
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		if timer == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-freed:
		case <-timer:
			return errBusy
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// charge takes n bytes without waiting, even past the limit.
func (b *budget) charge(n int64) { b.used.Add(n) }

// release gives back n bytes and wakes the waiters.
func (b *budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used.Add(-n)
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// spent reports whether the budget is used up.
func (b *budget) spent() bool { return b.used.Load() >= b.limit }
