package djangodb

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// blockChecks runs the IsBlocked calls that arrive while one statement is
// running as one statement, the next: a round trip per batch instead of
// per call, the way group commit shares a flush. Each call is still
// answered by a statement that began after the call did, so a block row
// committed before the call is seen, as if the call ran alone.
type blockChecks struct {
	one  func(ctx context.Context, listenerID, talkerID int64) (bool, error)
	many func(ctx context.Context, pairs []blockPair) (map[blockPair]bool, error)

	mu      sync.Mutex
	pending []*blockCheck
	running bool
}

type blockPair struct{ listener, talker int64 }

type blockCheck struct {
	pair     blockPair
	deadline time.Time // of the caller's context; zero: none
	blocked  bool
	err      error
	done     chan struct{}
}

// maxBlockBatch bounds one statement's pairs (its two array parameters).
const maxBlockBatch = 256

// check answers one call, joining the next batch.
func (b *blockChecks) check(ctx context.Context, listenerID, talkerID int64) (bool, error) {
	c := &blockCheck{pair: blockPair{listenerID, talkerID}, done: make(chan struct{})}
	c.deadline, _ = ctx.Deadline()
	b.mu.Lock()
	b.pending = append(b.pending, c)
	if !b.running {
		b.running = true
		go b.run()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.blocked, c.err
	case <-ctx.Done():
		return false, ctx.Err() // the batch goes on without it
	}
}

// run answers batches until no call waits.
func (b *blockChecks) run() {
	for {
		b.mu.Lock()
		batch := b.pending
		if len(batch) > maxBlockBatch {
			batch = batch[:maxBlockBatch]
		}
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
func (b *blockChecks) answer(batch []*blockCheck) {
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
	if len(batch) == 1 {
		c := batch[0]
		c.blocked, c.err = b.one(ctx, c.pair.listener, c.pair.talker)
		close(c.done)
		return
	}
	pairs := make([]blockPair, len(batch))
	for i, c := range batch {
		pairs[i] = c.pair
	}
	blocked, err := b.many(ctx, pairs)
	for _, c := range batch {
		c.blocked, c.err = blocked[c.pair], err
		close(c.done)
	}
}

// blockedPairs answers many pairs in one statement (isBlockedMany): the
// pairs that have a block row.
func (d *DB) blockedPairs(ctx context.Context, pairs []blockPair) (map[blockPair]bool, error) {
	listeners, talkers := make([]byte, 0, 16*len(pairs)), make([]byte, 0, 16*len(pairs))
	for i, p := range pairs {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		listeners = strconv.AppendInt(append(listeners, sep), p.listener, 10)
		talkers = strconv.AppendInt(append(talkers, sep), p.talker, 10)
	}
	listeners, talkers = append(listeners, '}'), append(talkers, '}')
	rows, err := d.query(ctx, d.q.isBlockedMany, string(listeners), string(talkers))
	if err != nil {
		return nil, fmt.Errorf("in a batch of %d: %w", len(pairs), err)
	}
	defer rows.Close()
	blocked := map[blockPair]bool{}
	for rows.Next() {
		var p blockPair
		if err := rows.Scan(&p.listener, &p.talker); err != nil {
			return nil, fmt.Errorf("in a batch of %d: %w", len(pairs), err)
		}
		blocked[p] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("in a batch of %d: %w", len(pairs), err)
	}
	return blocked, nil
}
