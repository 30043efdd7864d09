package histcache

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pgfeed"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Every caller gets a position at or past the commits it saw before it
// asked, though many share one read.
func TestPositionsShared(t *testing.T) {
	db := testenv.Postgres(t)
	p := &positions{db: db.DB, timeout: 5 * time.Second}
	if _, err := db.DB.Exec(`CREATE TABLE bump (n int)`); err != nil {
		t.Fatal(err)
	}
	const callers = 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for range 5 {
				if _, err := db.DB.ExecContext(ctx, `INSERT INTO bump VALUES (1)`); err != nil {
					errs <- err
					return
				}
				seen, err := pgfeed.CurrentLSN(ctx, db.DB) // at or past the insert's commit
				if err != nil {
					errs <- err
					return
				}
				got, err := p.current(ctx)
				if err != nil {
					errs <- err
					return
				}
				if got < seen {
					t.Errorf("position %s, before %s read by the caller before it asked", got, seen)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running || p.next != nil {
		t.Errorf("a read still running or waiting after every caller returned")
	}
	t.Logf("%d callers, %d reads", callers*5, p.reads)
	if p.reads >= callers*5 {
		t.Errorf("%d reads for %d callers: none shared", p.reads, callers*5)
	}
}
