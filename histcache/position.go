package histcache

import (
	"context"
	"database/sql"
	"sync"
	"time"

	"github.com/chatsidecar/sidecar/pgfeed"
)

// positions shares the reads of the database's WAL position among the
// Gets that need one: a Get joins the read that has not started yet, never
// one already running (its answer could be from before the Get asked), so
// at most two exist at a time and a burst of connects costs a few reads,
// not one each.
type positions struct {
	db      *sql.DB
	timeout time.Duration
	mu      sync.Mutex
	running bool
	next    *positionRead // waiting for the running read to end
	reads   int64         // reads made, under mu
}

type positionRead struct {
	done chan struct{}
	lsn  pgfeed.LSN
	err  error
}

// current returns a WAL position read after the call began.
func (p *positions) current(ctx context.Context) (pgfeed.LSN, error) {
	p.mu.Lock()
	r := p.next
	if r == nil {
		r = &positionRead{done: make(chan struct{})}
		if p.running {
			p.next = r
		} else {
			p.running = true
			go p.run(r)
		}
	}
	p.mu.Unlock()
	select {
	case <-r.done:
		return r.lsn, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run reads r's position, then the next read's while one waits. A read
// is not cancelled with one of its callers: the others still wait for it.
func (p *positions) run(r *positionRead) {
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		r.lsn, r.err = pgfeed.CurrentLSN(ctx, p.db)
		cancel()
		// The state first, then the answer: a caller that has its answer
		// finds the read over.
		p.mu.Lock()
		p.reads++
		next := p.next
		p.next, p.running = nil, next != nil
		p.mu.Unlock()
		close(r.done)
		r = next
	}
}
