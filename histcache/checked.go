package histcache

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
)

// Source reads the messages of a conversation above a message id, with
// their versions, and the digest of the rows up to it, in one snapshot
// (djangodb.DB).
type Source interface {
	HistorySince(ctx context.Context, conversationID, afterID int64, each func(m chat.Message, version int64) error) (djangodb.Digest, error)
}

// Checked keeps histories in memory without the change feed, on
// PostgreSQL. Every Get still asks the database, in one statement, for
// the messages added since the cached copy and for a digest of the
// versions (xmin) of the rows the copy holds: the copy is served only when
// that digest is the one it was read with, so nothing in it changed,
// whoever wrote. Otherwise the whole history is read again. The database
// still visits every row of the history, but sends and the sidecar decodes
// and encodes only the new ones.
type Checked struct {
	maxBytes int64
	maxConv  int64 // the most one history may take: an eighth of maxBytes
	encode   func(chat.Message) ([]byte, error)
	src      Source

	mu    sync.Mutex
	convs map[int64]*checkedConv
	lru   *list.List // of *checkedConv, most recently used first
	bytes int64
	stats Stats
}

// ErrTooLarge is the caches' answer for a history larger than they keep
// (an eighth of their bound): read it the usual way, within the memory
// budget.
var ErrTooLarge = errors.New("histcache: history too large to keep")

// largeFor is how long a history found too large is not tried again.
const largeFor = time.Minute

// checkedMaxAge is how long a copy is checked by digest before it is
// read whole again. Far within the 2^32 transactions after which an xmin
// could repeat.
const checkedMaxAge = time.Hour

type checkedConv struct {
	id  int64
	sem chan struct{} // one Get at a time: the next one checks what this one read

	read  time.Time // of the last whole read; zero: none yet
	large time.Time // when it was found too large to keep
	maxID int64
	dg    djangodb.Digest // as of the copy: Count and Sum are of every row
	msgs  []checkedMsg    // newest first
	json  int64           // the bytes of the messages' JSON
	list  encList
	bytes int64
	elem  *list.Element
}

type checkedMsg struct {
	id   int64
	at   time.Time
	json []byte
}

// NewChecked returns an empty checked cache of at most maxBytes.
func NewChecked(maxBytes int64, encode func(chat.Message) ([]byte, error), src Source) *Checked {
	return &Checked{maxBytes: maxBytes, maxConv: maxBytes / 8, encode: encode, src: src,
		convs: map[int64]*checkedConv{}, lru: list.New()}
}

// Stats returns the counts so far: Hits were served after a matching
// digest (reading only the new messages), Loads read a whole history,
// NotExact counts digests that did not match (a change to a cached row).
func (c *Checked) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Bytes = c.bytes
	return st
}

// Get returns the history of conversation id, newest first, as Cache.Get
// does, exact as of a moment after the call: its statement starts after
// it. after is not needed for that and is ignored.
func (c *Checked) Get(ctx context.Context, id int64, after []int64) ([][]byte, int, error) {
	cv, err := c.take(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	defer func() { <-cv.sem }()
	if time.Since(cv.large) < largeFor {
		return nil, 0, ErrTooLarge
	}
	body, n, err := c.refresh(ctx, cv)
	if errors.Is(err, ErrTooLarge) {
		// Kept as a mark, without its messages, so it is not read again
		// for a while.
		cv.reset()
		cv.read, cv.large = time.Time{}, time.Now()
		c.account(cv)
		return nil, 0, err
	}
	if err != nil {
		c.mu.Lock()
		c.dropLocked(cv)
		c.mu.Unlock()
		return nil, 0, err
	}
	return [][]byte{openList, body}, n, nil
}

// take returns the conversation's entry, made if missing, with its turn.
func (c *Checked) take(ctx context.Context, id int64) (*checkedConv, error) {
	for {
		c.mu.Lock()
		cv := c.convs[id]
		if cv == nil {
			cv = &checkedConv{id: id, sem: make(chan struct{}, 1)}
			cv.elem = c.lru.PushFront(cv)
			c.convs[id] = cv
		}
		c.mu.Unlock()
		select {
		case cv.sem <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		current := c.convs[id] == cv
		c.mu.Unlock()
		if current {
			return cv, nil
		}
		<-cv.sem // dropped while waiting: take the new entry
	}
}

// refresh brings cv up to date and returns its body and length; cv is
// the caller's alone.
func (c *Checked) refresh(ctx context.Context, cv *checkedConv) ([]byte, int, error) {
	var fresh []chat.Message
	var versions []int64
	size := cv.bytes
	each := func(m chat.Message, v int64) error {
		// What its JSON will take, about: a large history stops the query.
		if size += rowCost(m); size > c.maxConv {
			return ErrTooLarge
		}
		fresh, versions = append(fresh, m), append(versions, v)
		return nil
	}
	hit := false
	if !cv.read.IsZero() && time.Since(cv.read) < checkedMaxAge {
		old, err := c.src.HistorySince(ctx, cv.id, cv.maxID, each)
		if err != nil {
			return nil, 0, err
		}
		if hit = old.Equal(cv.dg); !hit {
			c.mu.Lock()
			c.stats.NotExact++
			c.mu.Unlock()
			fresh, versions, size = fresh[:0], versions[:0], 0
		}
	}
	if !hit {
		start := time.Now()
		if _, err := c.src.HistorySince(ctx, cv.id, 0, each); err != nil {
			return nil, 0, err
		}
		cv.reset()
		cv.read = start
	}
	if err := c.add(cv, fresh, versions); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	if hit {
		c.stats.Hits++
	} else {
		c.stats.Loads++
	}
	c.usedLocked(cv)
	c.mu.Unlock()
	return cv.list.body, len(cv.msgs), nil
}

// reset empties cv's copy for a whole read.
func (cv *checkedConv) reset() {
	cv.msgs, cv.json, cv.list, cv.maxID, cv.dg = nil, 0, encList{}, 0, djangodb.Digest{}
}

// add puts fresh (every id above cv's, in any order) into cv.
func (c *Checked) add(cv *checkedConv, fresh []chat.Message, versions []int64) error {
	msgs := make([]checkedMsg, len(fresh))
	jsons := make([][]byte, len(fresh))
	for i, m := range fresh {
		b, err := c.encode(m)
		if err != nil {
			return fmt.Errorf("encode message %d: %w", m.ID, err)
		}
		msgs[i] = checkedMsg{id: m.ID, at: m.CreatedAt, json: b}
	}
	for i, m := range fresh {
		cv.maxID = max(cv.maxID, m.ID)
		cv.dg.Add(versions[i])
		cv.json += int64(len(msgs[i].json))
	}
	if len(msgs) == 0 && cv.list.body != nil {
		return nil
	}
	slices.SortFunc(msgs, newestFirst)
	for i, m := range msgs {
		jsons[i] = m.json
	}
	// Usually the new messages are the newest and go in front; one written
	// with an older created_at (another writer's clock) needs a new order.
	inFront := len(msgs) > 0 && len(cv.msgs) > 0 && newestFirst(msgs[len(msgs)-1], cv.msgs[0]) < 0
	cv.msgs = append(msgs, cv.msgs...)
	if !inFront || !cv.list.prepend(jsons...) {
		slices.SortFunc(cv.msgs, newestFirst)
		cv.list.build(len(cv.msgs), func(i int) []byte { return cv.msgs[i].json })
	}
	c.account(cv)
	return nil
}

// newestFirst is the history's order: created_at, then id, descending.
func newestFirst(a, b checkedMsg) int {
	switch {
	case older(b.at, b.id, a.at, a.id):
		return -1
	case older(a.at, a.id, b.at, b.id):
		return 1
	}
	return 0
}

// account counts cv's memory: its buffer and each message's own JSON.
func (c *Checked) account(cv *checkedConv) {
	n := int64(cap(cv.list.buf)) + cv.json + 64*int64(len(cv.msgs))
	c.mu.Lock()
	if c.convs[cv.id] == cv {
		c.bytes += n - cv.bytes
	}
	cv.bytes = n
	c.mu.Unlock()
}

// usedLocked marks cv most recently used and drops the least recently
// used past the bound (cv too, if it alone is past it: it is still served).
func (c *Checked) usedLocked(cv *checkedConv) {
	if c.convs[cv.id] == cv {
		c.lru.MoveToFront(cv.elem)
	}
	for c.bytes > c.maxBytes && c.lru.Len() > 0 {
		c.dropLocked(c.lru.Back().Value.(*checkedConv))
		c.stats.Evictions++
	}
}

func (c *Checked) dropLocked(cv *checkedConv) {
	if c.convs[cv.id] != cv {
		return
	}
	delete(c.convs, cv.id)
	c.lru.Remove(cv.elem)
	c.bytes -= cv.bytes
}
