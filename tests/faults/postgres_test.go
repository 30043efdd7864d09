package faults

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Timing of the PostgreSQL test.
const (
	// pgDBTimeout is the sidecar's DB_TIMEOUT.
	pgDBTimeout = 2 * time.Second
	// pgDownFor is how long the server stays down each time: long enough
	// for every talker to be refused several times.
	pgDownFor = 1500 * time.Millisecond
	// pgResumeBound bounds the time from the server answering again to
	// every talker having a new message acknowledged (typically well
	// under a second; the bound allows for the race detector).
	pgResumeBound = 10 * time.Second
	// pgSteady is how long the load runs between and after the faults.
	pgSteady = time.Second
	// pgAnswerWait is how long a talker waits for an answer: past the
	// three database calls a message may wait for (block check, save,
	// history), each bounded by DB_TIMEOUT.
	pgAnswerWait = 3*pgDBTimeout + 2*time.Second
)

// PostgreSQL is stopped (fast shutdown: sessions are terminated) and later
// crashed (immediate shutdown, crash recovery at start) while talkers send.
// Every message whose sender got it back is in the database; every send
// ends in its new_message, an error frame or a close with a code (after
// which the client reconnects, as the app does); a send made while the
// server is down is refused with the contract's text; /readyz says 503
// while the server is down and 200 after; the sidecar keeps running and
// every talker has a message acknowledged again within pgResumeBound of the
// server's return.
func TestPostgresRestartAndCrashUnderLoad(t *testing.T) {
	cluster := testenv.NewCluster(t)
	db := cluster.Postgres(t)
	w := newWorld(t, db, 3)
	sc := startSidecar(t, w.env("DB_TIMEOUT="+pgDBTimeout.String()))
	l := w.startLoad(sc.Addr, pgAnswerWait, true)
	l.waitAcked(time.Now(), warmTimeout)

	faults := []struct {
		name string
		down func(testing.TB)
	}{
		{"fast shutdown", cluster.Stop},
		{"crash", cluster.Crash},
	}
	for _, f := range faults {
		time.Sleep(pgSteady)
		f.down(t)
		downAt := time.Now() // the server has exited
		if code := readyz(sc.Addr); code != http.StatusServiceUnavailable {
			t.Errorf("%s: /readyz answered %d while PostgreSQL is down, want 503", f.name, code)
		}
		time.Sleep(pgDownFor)
		if code := readyz(sc.Addr); code != http.StatusServiceUnavailable {
			t.Errorf("%s: /readyz answered %d while PostgreSQL is down, want 503", f.name, code)
		}
		startAt := time.Now()
		cluster.Start(t)
		upAt := time.Now() // the server answers queries
		first, all := l.waitAcked(upAt, pgResumeBound)
		ready := waitReadyz(t, sc.Addr, http.StatusOK, pgResumeBound)
		t.Logf("%s: down %v, start took %v; first acknowledgement %v after the server answered, every talker's %v; /readyz 200 after %v",
			f.name, startAt.Sub(downAt).Round(time.Millisecond), upAt.Sub(startAt).Round(time.Millisecond),
			first.Round(time.Millisecond), all.Round(time.Millisecond), ready.Round(time.Millisecond))

		// A send made and answered while the server was down is refused
		// with the contract's text (or closed with a code). (A talker whose connection was closed
		// may spend the whole time reconnecting, refused with HTTP 500.)
		n := 0
		for tk, sends := range l.sendsBetween(downAt, startAt) {
			for _, s := range sends {
				if s.outcome == pending || s.end.After(startAt) {
					continue
				}
				n++
				ok := s.outcome == refused && s.text == errServer ||
					s.outcome == closed && s.code != websocket.CloseAbnormalClosure
				if !ok {
					t.Errorf("%s: %s sent %q while PostgreSQL was down: %s %q, want refused with %q (or a close with a code)",
						f.name, tk.name, s.content, s.outcome, s.text, errServer)
				}
			}
		}
		if n < len(l.talkers) {
			t.Errorf("%s: only %d sends were answered while PostgreSQL was down: the fault missed the load", f.name, n)
		}
	}
	time.Sleep(pgSteady)
	r := l.check()
	// A connection the server ends says why (and its client reconnects);
	// one ended without a close frame means the server dropped it.
	if n := r.connectionEnds[websocket.CloseAbnormalClosure]; n > 0 {
		t.Errorf("%d connections ended without a close frame while the sidecar ran", n)
	}
	stopSidecar(t, sc, 30*time.Second)
}

// The database fails between a message's save and the history load that
// its new_message needs, as in TestPostgresRestartAndCrashUnderLoad when a
// crash resets the history query's connection: here the history query
// waits on a lock (LOCK chat_fileattachment: a text message's save never
// touches that table, the history joins it) and is cancelled
// (pg_cancel_backend; a terminated session would not do, as database/sql
// retries a query whose connection ended with a FATAL error). The message
// is saved; its sender must still learn how the send ended (its
// new_message, an error frame or a close) within the bounds of the
// database calls.
func TestHistoryLoadFailsAfterSave(t *testing.T) {
	db := testenv.Postgres(t)
	w := newWorld(t, db, 1)
	sc := startSidecar(t, w.env("DB_TIMEOUT="+pgDBTimeout.String()))
	p := w.pairs[0]
	listener := w.dial(sc.Addr, p.conv, p.listener, "listener", false, false, nil)
	tk := &talker{peer: w.dial(sc.Addr, p.conv, p.talker, "talker", false, true, nil), pair: p, listener: listener, answerWait: pgAnswerWait}

	ctx := context.Background()
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `LOCK TABLE chat_fileattachment IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	s := &send{content: "saved, then the history load fails", start: time.Now()}
	msg, _ := json.Marshal(map[string]string{"type": "chat_message", "message": s.content})
	tk.write(msg)
	pid := waitLockWaiter(t, db, "chat_fileattachment", 10*time.Second)
	var cancelled bool
	if err := db.DB.QueryRowContext(ctx, `SELECT pg_cancel_backend($1)`, pid).Scan(&cancelled); err != nil || !cancelled {
		t.Fatalf("cancel the history load (pid %d): %v, %v", pid, cancelled, err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	o := tk.await(s)
	var saved int
	if err := db.DB.QueryRowContext(ctx, `SELECT count(*) FROM chat_message WHERE content = $1`, s.content).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	t.Logf("outcome: %s after %v%s; in the database: %d", o, s.latency().Round(time.Millisecond), detail(*s), saved)
	if saved != 1 {
		t.Errorf("the message is in the database %d times, want 1 (the save succeeded before the history load)", saved)
	}
	if o == unanswered {
		t.Errorf("the sender got no new_message, no error frame and no close within %v of sending a message that was saved", pgAnswerWait)
	}
	if _, ok := listener.deliveredAt(s.content); !ok {
		if _, gone := listener.closeCode(); !gone {
			t.Logf("the listener got no new_message for the saved message and was not closed either")
		}
	}
}

// waitLockWaiter waits until a session of db's database waits for a lock on
// table and returns its backend pid.
func waitLockWaiter(t *testing.T, db *testenv.Database, table string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var pid int
		err := db.DB.QueryRow(`SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND l.relation = $1::regclass AND a.datname = current_database() LIMIT 1`, table).Scan(&pid)
		if err == nil {
			return pid
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("look for a session waiting on %s: %v", table, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waited for a lock on %s within %v", table, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
