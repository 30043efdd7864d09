package pgfeed_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pgfeed"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// slots lists the replication slots of the test database: name, active pid.
func slots(t testing.TB, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT slot_name, coalesce(active_pid, 0) FROM pg_replication_slots WHERE database = current_database()`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var pid int
		if err := rows.Scan(&name, &pid); err != nil {
			t.Fatal(err)
		}
		out[name] = pid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Killing the walsender takes the feed down at once (Up false, a pending
// WaitFor fails, a new one fails at once); it reconnects by itself with a
// new slot, calls Reset, and delivers again. The old slot is gone.
func TestReconnectAfterWalsenderKilled(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *pgfeed.Config) { c.RetryMin = time.Second }) // long enough to see the feed down
	e.insertMessage(t, "before")
	e.sync(t)
	before := slots(t, e.db.DB)
	if len(before) != 1 {
		t.Fatalf("slots before: %v, want one", before)
	}
	var oldSlot string
	var pid int
	for oldSlot, pid = range before {
	}

	// Far ahead: only the stream's end can end this wait early.
	pending := make(chan error, 1)
	var waitedFrom time.Time
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		waitedFrom = time.Now()
		pending <- e.feed.WaitFor(ctx, e.feed.Applied()+1<<40)
	}()
	time.Sleep(10 * time.Millisecond) // let the waiter start waiting (it fails either way)
	killed := time.Now()
	var ok bool
	if err := e.db.DB.QueryRow(`SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v, %v", pid, ok, err)
	}
	if err := <-pending; !isDown(err) {
		t.Fatalf("pending WaitFor: %v, want ErrDown", err)
	}
	t.Logf("pending WaitFor failed %s after the kill (waited %s)", time.Since(killed), time.Since(waitedFrom))
	if e.feed.Up() {
		t.Fatal("Up right after the walsender was killed")
	}
	begin := time.Now()
	if err := e.feed.WaitFor(context.Background(), 1); !isDown(err) {
		t.Fatalf("WaitFor while down: %v, want ErrDown", err)
	}
	if d := time.Since(begin); d > 50*time.Millisecond {
		t.Errorf("WaitFor while down took %s", d)
	}

	e.waitUp(t)
	t.Logf("streaming again %s after the kill", time.Since(killed))
	if n := e.rec.resetCount(); n != 2 {
		t.Errorf("%d Resets, want 2", n)
	}
	from := e.sync(t)
	msg := e.insertMessage(t, "after")
	e.sync(t)
	if txs := e.rec.since(from); len(txs) != 1 || txs[0].Changes[0].New["id"] != id(msg) {
		t.Fatalf("after reconnecting: %d transactions", len(txs))
	}
	after := slots(t, e.db.DB)
	if _, ok := after[oldSlot]; ok || len(after) != 1 {
		t.Errorf("slots after: %v (old %s)", after, oldSlot)
	}
}

// Once Run has returned, the slot is gone from the server.
func TestNoSlotAfterStop(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	if s := slots(t, e.db.DB); len(s) != 1 {
		t.Fatalf("slots while running: %v", s)
	}
	e.stop()
	if s := slots(t, e.db.DB); len(s) != 0 {
		t.Fatalf("slots after Run returned: %v", s)
	}
	if e.feed.Up() {
		t.Fatal("Up after Run returned")
	}
	if err := e.feed.WaitFor(context.Background(), 1); !isDown(err) {
		t.Fatalf("WaitFor after Run returned: %v", err)
	}
}

// syncBuffer is a log destination safe for the feed's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Neither the log nor New's errors show the DSN's password.
func TestPasswordNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pw"
	if _, err := pgfeed.New(pgfeed.Config{DSN: "postgres://u:" + secret + "@127.0.0.1:notaport/db", Publication: "p"}); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("New with a bad DSN: %v", err)
	}
	var logs syncBuffer
	f, err := pgfeed.New(pgfeed.Config{DSN: "postgres://u:" + secret + "@127.0.0.1:1/db?sslmode=disable", Publication: "p",
		RetryMin: 10 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := f.Run(ctx, &recorder{}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "feed down") || strings.Contains(out, secret) {
		t.Fatalf("log:\n%s", out)
	}
	if err := f.Run(ctx, &recorder{}); err != nil { // ctx done: returns at once
		t.Fatalf("second Run after the first returned: %v", err)
	}
}

// The documented slow case: while an idle open transaction's record spans
// the flush position (a page boundary the WAL writer flushed up to), the
// walsender cannot reach that position; the next commit anywhere ends the
// wait. Its own cluster: other tests' commits would end it early.
func TestWaitForFlushInsideRecord(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t, "autovacuum=off") // nothing else commits
	db, err := sql.Open("postgres", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE wide (v text)`,
		`ALTER TABLE wide ALTER v SET STORAGE PLAIN`, // rows of 3 KB stay inline: records span pages
		`CREATE TABLE other (v int)`,
		`CREATE PUBLICATION pgfeed_test FOR TABLE other`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	f, err := pgfeed.New(pgfeed.Config{DSN: c.URL(), Publication: publication})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, &recorder{}) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(waitTimeout); !f.Up(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("feed not up")
		}
	}

	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO wide SELECT (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 100)) || g
		FROM generate_series(1, 20) g`); err != nil {
		t.Fatal(err)
	}
	// Wait for the WAL writer to flush the completed pages (every 200 ms).
	var flush, insert pgfeed.LSN
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var fs, is string
		if err := db.QueryRow(`SELECT pg_current_wal_flush_lsn()::text, pg_current_wal_insert_lsn()::text`).Scan(&fs, &is); err != nil {
			t.Fatal(err)
		}
		flush, _ = pgfeed.ParseLSN(fs)
		insert, _ = pgfeed.ParseLSN(is)
		if flush < insert && flush%8192 == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the WAL writer did not flush up to a page boundary: flush %s, insert %s", flush, insert)
		}
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer wcancel()
	if err := f.WaitFor(wctx, flush); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(%s) with a record spanning it: %v, want a timeout (applied %s)", flush, err, f.Applied())
	}
	t.Logf("flush %s inside a record: the feed stays at %s", flush, f.Applied())
	if _, err := db.Exec(`INSERT INTO other VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	wctx2, wcancel2 := context.WithTimeout(context.Background(), waitTimeout)
	defer wcancel2()
	if err := f.WaitFor(wctx2, flush); err != nil {
		t.Fatalf("WaitFor(%s) after a commit elsewhere: %v", flush, err)
	}
}

// The feed outlives its server: a fast shutdown (which waits for the feed
// to confirm all it was sent) and a crash each take it down, and it comes
// back by itself with a Reset once the server is up again.
func TestServerRestartAndCrash(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t)
	db, err := sql.Open("postgres", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE item (id int PRIMARY KEY, v text); CREATE PUBLICATION pgfeed_test FOR TABLE item`); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	f, err := pgfeed.New(pgfeed.Config{DSN: c.URL(), Publication: publication, RetryMax: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, rec) }()
	defer func() { cancel(); <-done }()
	up := func() {
		t.Helper()
		for deadline := time.Now().Add(waitTimeout); !f.Up(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("feed not up")
			}
		}
	}
	// insert commits a row and waits for the feed to apply it.
	insert := func(n int) {
		t.Helper()
		if _, err := db.Exec(`INSERT INTO item VALUES ($1, 'x')`, n); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), waitTimeout)
		defer wcancel()
		l, err := pgfeed.CurrentLSN(wctx, db)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.WaitFor(wctx, l); err != nil {
			t.Fatalf("WaitFor after insert %d: %v", n, err)
		}
	}
	up()
	insert(1)

	begin := time.Now()
	c.Stop(t)
	t.Logf("fast shutdown with the feed connected took %s", time.Since(begin))
	for deadline := time.Now().Add(waitTimeout); f.Up(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Up with the server stopped")
		}
	}
	c.Start(t)
	up()
	insert(2)

	c.Crash(t)
	c.Start(t)
	up()
	insert(3)
	if n := rec.resetCount(); n != 3 {
		t.Errorf("%d Resets, want 3 (start, after the restart, after the crash)", n)
	}
	if got := len(rec.since(0)); got != 3 {
		t.Errorf("%d transactions, want 3", got)
	}
}
