package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/chatsidecar/sidecar/chat"
)

// historyChunk is the size of the pieces a history is encoded into: the
// budget is acquired one piece at a time, and no piece is ever copied to
// grow another.
const historyChunk = 64 << 10

// history is a conversation's messages, newest first, encoded once as the
// JSON list the connect and new_message frames carry.
type history struct {
	list  *frame // held by the caller of histories.get
	count int
}

// histories shares history loads. A caller needs every message committed
// before it asked, so it joins a load that has not started yet (the next
// one) and never one already running; everyone who asks while a load runs
// shares the load after it. At most two loads of a conversation exist at a
// time, and a load whose callers have all gone is cancelled.
type histories struct {
	s     *Server
	mu    sync.Mutex
	convs map[int64]*convLoads
}

type convLoads struct {
	conv    int64
	running *historyLoad
	next    *historyLoad
}

type historyLoad struct {
	conv int64
	// after are the messages its callers saved and need in the history;
	// current, that one needs every commit before it asked.
	after   []int64
	current bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	waiters int // callers waiting or not yet served
	hist    history
	err     error
}

func newHistories(s *Server) *histories {
	return &histories{s: s, convs: map[int64]*convLoads{}}
}

// get returns the history of conversation conv as of a moment after the
// call, its list held for the caller (release it). after, when not empty,
// are messages this process saved before asking: the history is then
// exact as of their commits, which the change feed can tell without
// reading the database's WAL position.
func (h *histories) get(ctx context.Context, conv int64, after []int64) (history, error) {
	h.mu.Lock()
	cl := h.convs[conv]
	if cl == nil {
		cl = &convLoads{conv: conv}
		h.convs[conv] = cl
	}
	var l *historyLoad
	switch {
	case cl.running == nil:
		l = h.newLoad(conv)
		cl.running = l
		go h.run(cl, l)
	case cl.next != nil:
		l = cl.next
		h.s.metrics.historyLoads.WithLabelValues("shared").Inc()
	default:
		l = h.newLoad(conv)
		cl.next = l
	}
	l.waiters++
	if len(after) == 0 {
		l.current = true
	} else {
		l.after = append(l.after, after...)
	}
	h.mu.Unlock()

	select {
	case <-l.done:
	case <-ctx.Done():
		h.mu.Lock()
		select {
		case <-l.done: // finished meanwhile: take it as served
			h.mu.Unlock()
		default:
			if l.waiters--; l.waiters == 0 {
				l.cancel()
			}
			h.mu.Unlock()
			return history{}, ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if l.err != nil {
		l.waiters--
		return history{}, l.err
	}
	l.hist.list.hold()
	if l.waiters--; l.waiters == 0 {
		l.hist.list.release() // the load's own hold
	}
	return l.hist, nil
}

func (h *histories) newLoad(conv int64) *historyLoad {
	ctx, cancel := context.WithCancel(h.s.ctx)
	return &historyLoad{conv: conv, ctx: ctx, cancel: cancel, done: make(chan struct{})}
}

// run loads l, then starts the next load if anyone waits for it.
func (h *histories) run(cl *convLoads, l *historyLoad) {
	for l != nil {
		h.mu.Lock()
		var after []int64 // nil: exact as of now
		if !l.current {
			after = l.after // no caller joins a running load
		}
		h.mu.Unlock()
		l.hist, l.err = h.load(l.ctx, l.conv, after)
		h.mu.Lock()
		if l.err == nil && l.waiters == 0 {
			l.hist.list.release() // everyone left: nobody takes it
		}
		l.cancel()
		close(l.done)
		l, cl.running, cl.next = cl.next, cl.next, nil
		for l != nil && l.waiters == 0 {
			l.cancel() // all its callers left before it started
			close(l.done)
			l, cl.running = nil, nil
		}
		if l == nil {
			delete(h.convs, cl.conv)
		}
		h.mu.Unlock()
	}
}

// load returns a history from the cache when it can be exact, else reads
// and encodes it, acquiring the budget one chunk at a time.
func (h *histories) load(ctx context.Context, conv int64, after []int64) (history, error) {
	s := h.s
	// The load may wait for memory (BudgetWait, then errBusy) while its
	// query is open: the deadline leaves room for both.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout+s.cfg.BudgetWait)
	defer cancel()
	if s.cache != nil {
		parts, n, err := s.cache.Get(ctx, conv, after)
		if err == nil {
			// The cache owns the bytes (bounded on its own); frames only
			// point at them.
			s.metrics.historyLoads.WithLabelValues("cache").Inc()
			var size int64
			for _, p := range parts {
				size += int64(len(p))
			}
			return history{list: acquired(s.mem, parts, size, 0), count: n}, nil
		}
		if ctx.Err() != nil {
			return history{}, ctx.Err()
		}
		s.metrics.historyLoads.WithLabelValues("cache_miss").Inc()
	}
	var (
		chunks  [][]byte
		cur     []byte
		charged int64
		size    int64
		count   int
		// The load waits for memory BudgetWait in all, however many
		// chunks wait: a load that gets some memory, waits, gets some
		// more, must not outlast its deadline and fail as a database
		// error instead of errBusy.
		waitLeft = s.cfg.BudgetWait
	)
	fail := func(err error) (history, error) {
		s.mem.release(charged)
		outcome := "error"
		if err == errBusy {
			outcome = "busy"
		}
		s.metrics.historyLoads.WithLabelValues(outcome).Inc()
		return history{}, err
	}
	add := func(b []byte) error {
		for len(b) > 0 {
			if len(cur) == cap(cur) {
				if cur != nil {
					chunks = append(chunks, cur)
				}
				start := time.Now()
				err := s.mem.acquire(ctx, historyChunk, waitLeft, cur == nil)
				waitLeft -= time.Since(start)
				if err != nil {
					return err
				}
				charged += historyChunk
				cur = make([]byte, 0, historyChunk)
			}
			n := min(len(b), cap(cur)-len(cur))
			cur = append(cur, b[:n]...)
			b = b[n:]
			size += int64(n)
		}
		return nil
	}
	var enc []byte
	err := s.store.History(ctx, conv, func(m chat.Message) error {
		sep := ", "
		if count == 0 {
			sep = "["
		}
		count++
		enc = appendMessage(append(enc[:0], sep...), m, s.media)
		return add(enc)
	})
	if err == nil {
		if count == 0 {
			err = add([]byte("[]"))
		} else {
			err = add([]byte("]"))
		}
	}
	if err != nil {
		return fail(err)
	}
	chunks = append(chunks, cur)
	s.metrics.historyLoads.WithLabelValues("ok").Inc()
	s.metrics.historyBytes.Add(float64(size))
	return history{list: acquired(s.mem, chunks, size, charged), count: count}, nil
}
