package redislayer

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelineChunk bounds the commands sent in one pipeline when memberships
// are re-added.
const pipelineChunk = 1000

func (l *Layer) kickMaintainer() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// runID returns the server's run_id (INFO server), which changes when the
// server restarts.
func runID(ctx context.Context, c *redis.Client) (string, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "run_id:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("INFO server has no run_id")
}

// maintain keeps this process's memberships alive: every GroupExpiry/2 it
// re-adds them all with a fresh score (Python never does; its members drop
// out after group_expiry), and when a server's run_id changes (a restart,
// which empties a server without persistence) it re-adds those on that
// server. It runs until Close.
func (l *Layer) maintain(runIDs []string) {
	defer l.wg.Done()
	ctx := l.ctx
	refreshEvery := max(l.cfg.GroupExpiry/2, 100*time.Millisecond)
	refresh := time.NewTimer(refreshEvery)
	defer refresh.Stop()
	check := time.NewTicker(min(checkInterval, refreshEvery))
	defer check.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := backoffMin

	checkAll := func() {
		failed := false
		for i, c := range l.clients {
			id, err := runID(ctx, c)
			if err != nil {
				var rerr redis.Error
				if !errors.As(err, &rerr) {
					failed = true
					continue
				}
				id = "" // INFO refused (a managed server): re-add every time
			}
			if id != "" && id == runIDs[i] {
				continue
			}
			n, err := l.readd(ctx, i)
			if err != nil {
				l.log.Warn("channel layer: re-adding group memberships failed", "host", i, "err", err)
				failed = true
				continue
			}
			if runIDs[i] != "" {
				l.log.Info("channel layer: redis server restarted, group memberships re-added", "host", i, "memberships", n)
			}
			runIDs[i] = id
		}
		if failed && ctx.Err() == nil {
			retry.Reset(backoff)
			backoff = min(2*backoff, backoffMax)
		} else {
			backoff = backoffMin
		}
	}

	for {
		select {
		case <-ctx.Done():
			return
		case <-l.kick:
			checkAll()
		case <-check.C:
			checkAll()
		case <-retry.C:
			checkAll()
		case <-refresh.C:
			failed := false
			for i := range l.clients {
				if _, err := l.readd(ctx, i); err != nil {
					l.log.Warn("channel layer: refreshing group memberships failed", "host", i, "err", err)
					failed = true
				}
			}
			if failed {
				refresh.Reset(min(refreshEvery, backoffMax))
			} else {
				refresh.Reset(refreshEvery)
			}
		}
	}
}

// readd re-adds, with the current time as score, every membership of this
// process's channels in groups stored on shard, and re-EXPIREs those group
// keys. It returns how many memberships it wrote.
func (l *Layer) readd(ctx context.Context, shard int) (int, error) {
	type membership struct{ group, channel string }
	var snapshot []membership
	l.mu.Lock()
	for g, m := range l.groups {
		if consistentHash(g, len(l.clients)) != shard {
			continue
		}
		for ch := range m {
			snapshot = append(snapshot, membership{g, ch})
		}
	}
	l.mu.Unlock()
	if len(snapshot) == 0 {
		return 0, nil
	}
	c := l.clients[shard]
	ttl := time.Duration(l.groupExpSec) * time.Second
	for start := 0; start < len(snapshot); start += pipelineChunk {
		part := snapshot[start:min(start+pipelineChunk, len(snapshot))]
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			score := epoch(time.Now())
			for _, m := range part {
				p.ZAdd(ctx, l.groupKey(m.group), redis.Z{Score: score, Member: m.channel})
				p.Expire(ctx, l.groupKey(m.group), ttl)
			}
			return nil
		})
		if err != nil {
			return start, err
		}
	}
	// A GroupDiscard that ran meanwhile may have sent its ZREM before our
	// ZADD: take such memberships out again.
	var gone []membership
	l.mu.Lock()
	for _, m := range snapshot {
		if _, ok := l.groups[m.group][m.channel]; !ok {
			gone = append(gone, m)
		}
	}
	l.mu.Unlock()
	if len(gone) > 0 {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range gone {
				p.ZRem(ctx, l.groupKey(m.group), m.channel)
			}
			return nil
		})
		if err != nil {
			return len(snapshot), err
		}
	}
	return len(snapshot), nil
}
