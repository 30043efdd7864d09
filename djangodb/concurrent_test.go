package djangodb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// TestSaveTextConcurrentBlock is layer 2 of the blocking design under load:
// 8 senders × 50 messages on one conversation while the block row is
// inserted midway. Once the block has committed, no save that starts after
// it may succeed; every save that reported success is stored, and nothing else is.
func TestSaveTextConcurrentBlock(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		const workers, perWorker, maxPerWorker = 8, 50, 2000
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()

		var (
			started        atomic.Int64
			afterCount     atomic.Int64
			blockCommitted atomic.Bool
			blockErr       = make(chan error, 1)
		)
		go func() {
			// Block after a quarter of the saves have started, as the REST
			// endpoint would: one autocommit INSERT.
			for started.Load() < workers*perWorker/4 {
				time.Sleep(50 * time.Microsecond)
			}
			_, err := p.pg.DB.Exec(`INSERT INTO listener_listenerblockedtalker (listener_id, talker_id, blocked_at)
			VALUES ($1, $2, $3)`, p.listener.ID, p.talker.ID, p.pg.Time(time.Now()))
			blockCommitted.Store(true)
			blockErr <- err
		}()

		type result struct {
			msg        chat.Message
			err        error
			afterBlock bool // the save started after the block had committed
		}
		results := make(chan result, workers*maxPerWorker)
		var wg sync.WaitGroup
		for w := range workers {
			sender := p.talker
			if w%2 == 1 {
				sender = p.listener // blocking stops both participants
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// At least perWorker saves each, and on until a few start after
				// the block: on SQLite the block's INSERT waits for a gap between
				// the sidecar's writes, which a burst like this one leaves rarely.
				for i := 0; i < perWorker || (i < maxPerWorker && afterCount.Load() < workers); i++ {
					after := blockCommitted.Load()
					if after {
						afterCount.Add(1)
					}
					started.Add(1)
					m, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: sender, Content: "m"})
					results <- result{msg: m, err: err, afterBlock: after}
				}
			}()
		}
		wg.Wait()
		close(results)
		if err := <-blockErr; err != nil {
			t.Fatalf("insert block row: %v", err)
		}

		saved := map[int64]bool{}
		var refused, after int
		for r := range results {
			if r.afterBlock {
				after++
			}
			switch {
			case r.err == nil:
				if r.afterBlock {
					t.Errorf("message %d saved by a SaveText that started after the block committed", r.msg.ID)
				}
				if saved[r.msg.ID] {
					t.Errorf("message id %d returned twice", r.msg.ID)
				}
				saved[r.msg.ID] = true
			case errors.Is(r.err, chat.ErrBlocked):
				refused++
			default:
				t.Errorf("SaveText: %v", r.err)
			}
		}
		t.Logf("%d saved, %d refused, %d started after the block committed", len(saved), refused, after)
		if len(saved) == 0 || after == 0 {
			t.Fatalf("the block did not land midway (%d saved, %d started after it): the test exercised nothing", len(saved), after)
		}

		h, err := historyOf(ctx, p.db, p.conv)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		inHistory := map[int64]bool{}
		for _, m := range h {
			inHistory[m.ID] = true
		}
		for id := range saved {
			if !inHistory[id] {
				t.Errorf("saved message %d is not in History", id)
			}
		}
		if len(h) != len(saved) {
			t.Errorf("History has %d messages, %d saves succeeded", len(h), len(saved))
		}
		if n := countRows(t, p.pg.DB, "chat_message"); n != len(saved) {
			t.Errorf("chat_message has %d rows, %d saves succeeded", n, len(saved))
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Valid {
			t.Errorf("last_message_at is NULL after %d saves", len(saved))
		}
	})
}

// TestIsBlockedConcurrent is layer 1 of the blocking design under load: 8
// checkers ask about 4 pairs at once (on PostgreSQL concurrent calls share
// statements) while a block row is inserted for one of them midway. Every
// answer is its own pair's; no call that starts after the block committed
// says the pair is not blocked.
func TestIsBlockedConcurrent(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		const checkers, perChecker = 8, 300
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		type pairIDs struct{ listener, talker int64 }
		pairs := make([]pairIDs, 4)
		for i := range pairs {
			pairs[i] = pairIDs{
				p.pg.CreateUser(t, fmt.Sprintf("l%d@example.com", i), "", "listener"),
				p.pg.CreateUser(t, fmt.Sprintf("t%d@example.com", i), "", "talker"),
			}
		}
		p.pg.Block(t, pairs[0].listener, pairs[0].talker) // blocked throughout
		// pairs[1] is blocked midway; pairs[2] and [3] never.
		var calls, checked atomic.Int64
		var committed atomic.Bool
		blocked, stopped := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(blocked)
			for calls.Load() < checkers*perChecker/3 {
				select {
				case <-stopped: // the checkers failed early
					return
				case <-time.After(50 * time.Microsecond):
				}
			}
			p.pg.Block(t, pairs[1].listener, pairs[1].talker)
			committed.Store(true)
		}()
		var wg sync.WaitGroup
		for c := range checkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perChecker {
					k := (c + i) % len(pairs)
					after := committed.Load()
					calls.Add(1)
					got, err := p.db.IsBlocked(ctx, pairs[k].listener, pairs[k].talker)
					if err != nil {
						t.Errorf("IsBlocked: %v", err)
						return
					}
					want := k == 0 || (k == 1 && after)
					if got != want && !(k == 1 && !after) { // pairs[1] before the commit: either
						t.Errorf("pair %d (block committed before the call: %v): IsBlocked = %v, want %v", k, after, got, want)
						return
					}
					checked.Add(1)
				}
			}()
		}
		wg.Wait()
		close(stopped)
		<-blocked
		if n := checked.Load(); n != checkers*perChecker {
			t.Fatalf("%d answers checked, want %d", n, checkers*perChecker)
		}
	})
}
