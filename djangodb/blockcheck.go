package djangodb

import (
	"context"
	"fmt"

	"github.com/lib/pq"
)

type blockPair struct{ listener, talker int64 }

// maxBlockBatch bounds one statement's pairs (its two array parameters).
const maxBlockBatch = 256

// newBlockChecks batches the IsBlocked calls (layer 1 of the blocking
// design) on PostgreSQL; a batch of one runs the plain statement.
func (d *DB) newBlockChecks() *batcher[blockPair, bool] {
	return &batcher[blockPair, bool]{max: maxBlockBatch, run: func(ctx context.Context, pairs []blockPair) ([]bool, error) {
		out := make([]bool, len(pairs))
		if len(pairs) == 1 {
			var err error
			out[0], err = d.isBlocked(ctx, pairs[0].listener, pairs[0].talker)
			return out, err
		}
		blocked, err := d.blockedPairs(ctx, pairs)
		for i, p := range pairs {
			out[i] = blocked[p]
		}
		return out, err
	}}
}

// blockedPairs answers many pairs in one statement (isBlockedMany): the
// pairs that have a block row.
func (d *DB) blockedPairs(ctx context.Context, pairs []blockPair) (map[blockPair]bool, error) {
	listeners, talkers := make([]int64, len(pairs)), make([]int64, len(pairs))
	for i, p := range pairs {
		listeners[i], talkers[i] = p.listener, p.talker
	}
	rows, err := d.query(ctx, d.q.isBlockedMany, pq.Array(listeners), pq.Array(talkers))
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
