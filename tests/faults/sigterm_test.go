package faults

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lib/pq"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Timing of the SIGTERM test.
const (
	// termShutdownTimeout is the sidecar's SHUTDOWN_TIMEOUT.
	termShutdownTimeout = 10 * time.Second
	// termHold is how long the saves in flight are held in the database
	// after SIGTERM: shorter than DB_TIMEOUT (the default 5 s, also the
	// lock_timeout), so they complete.
	termHold = 500 * time.Millisecond
	// termCloseWait is a deadlock guard for the clients' close frames.
	termCloseWait = 20 * time.Second
)

// SIGTERM reaches the sidecar while talkers send, with one save of each
// talker in flight: the test holds every conversation's row (SELECT ... FOR
// UPDATE), so each talker's next save waits inside the database, sends
// SIGTERM once all of them wait, and lets them go. Each save in flight
// completes (its message is in the database), every connection is closed
// with 1001, every acknowledged message is in the database, and the process
// exits 0 within SHUTDOWN_TIMEOUT.
func TestSIGTERMUnderLoad(t *testing.T) {
	db := testenv.Postgres(t)
	w := newWorld(t, db, 3)
	sc := startSidecar(t, w.env("SHUTDOWN_TIMEOUT="+termShutdownTimeout.String()))
	l := w.startLoad(sc.Addr, 0, false)
	l.waitAcked(time.Now(), warmTimeout)
	time.Sleep(time.Second)

	convs := make([]int64, len(w.pairs))
	for i, p := range w.pairs {
		convs[i] = p.conv
	}
	ctx := context.Background()
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT id FROM chat_conversation WHERE id = ANY($1) FOR UPDATE`, pq.Array(convs)); err != nil {
		t.Fatal(err)
	}
	waitLockWaiters(t, db, len(l.talkers), 10*time.Second)
	inFlight := map[*talker]send{}
	for _, tk := range l.talkers {
		sends := tk.snapshot()
		inFlight[tk] = sends[len(sends)-1]
	}

	termAt := time.Now()
	if err := sc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Let the shutdown begin (it stops every reader) before the saves go on.
	waitLog(t, sc, "shutting down", 10*time.Second)
	time.Sleep(termHold)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	code, ok := sc.Wait(termShutdownTimeout + 5*time.Second)
	exitedIn := time.Since(termAt)
	switch {
	case !ok:
		t.Fatalf("the sidecar still runs %v after SIGTERM (SHUTDOWN_TIMEOUT %v)", exitedIn, termShutdownTimeout)
	case code != 0:
		t.Errorf("the sidecar exited %d after SIGTERM, want 0", code)
	case exitedIn > termShutdownTimeout:
		t.Errorf("the sidecar exited %v after SIGTERM, past SHUTDOWN_TIMEOUT %v", exitedIn, termShutdownTimeout)
	}
	if strings.Contains(sc.Log(), "connections cut") {
		t.Errorf("the shutdown gave up waiting and cut connections")
	}
	checkLog(t, sc)

	var peers []*peer
	for _, tk := range l.talkers {
		peers = append(peers, tk.peer, tk.listener)
	}
	for _, p := range peers {
		select {
		case <-p.gone:
		case <-time.After(termCloseWait):
			t.Fatalf("%s: no close %v after SIGTERM", p.name, termCloseWait)
		}
		if code, _ := p.closeCode(); code != websocket.CloseGoingAway {
			t.Errorf("%s: closed with %d, want %d", p.name, code, websocket.CloseGoingAway)
		}
	}
	r := l.check()
	saved := l.savedMessages()
	for tk, s := range inFlight {
		after := tk.snapshot()
		for _, a := range after {
			if a.content == s.content {
				s = a
			}
		}
		t.Logf("%s: save in flight at SIGTERM: %s%s", tk.name, s.outcome, detail(s))
		if saved[s.content] != 1 {
			t.Errorf("%s: %q was being saved when SIGTERM came, and is not in the database", tk.name, s.content)
		}
	}
	t.Logf("SIGTERM to exit: %v; closed by 1001 without their new_message: %d, of them saved: %d", exitedIn.Round(time.Millisecond), r.closed, r.closedSaved)
}

// waitLockWaiters waits until n sessions of db's database wait for a lock
// (a row lock is waited for as the holder's transaction id, so the table
// cannot be named).
func waitLockWaiters(t *testing.T, db *testenv.Database, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got int
		err := db.DB.QueryRow(`SELECT count(DISTINCT a.pid) FROM pg_stat_activity a
			WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'`).Scan(&got)
		if err != nil {
			t.Fatalf("count the sessions waiting for a lock: %v", err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions waited for a lock within %v, want %d", got, timeout, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog waits until the sidecar's log has text.
func waitLog(t *testing.T, sc *testenv.Sidecar, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(sc.Log(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar did not log %q within %v", text, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
