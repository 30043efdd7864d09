package faults

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Timing of the Redis test.
const (
	// redisTimeout and redisDBTimeout are the sidecar's REDIS_TIMEOUT and
	// DB_TIMEOUT.
	redisTimeout   = time.Second
	redisDBTimeout = 2 * time.Second
	// redisBound is the longest a send may wait for its answer while Redis
	// is frozen: the block check and the save (each within DB_TIMEOUT,
	// milliseconds unless the machine is overloaded), the group send
	// (REDIS_TIMEOUT), and slack for the scheduling of both processes.
	// DB_TIMEOUT (+ MEMORY_WAIT) is also the sidecar's statement_timeout,
	// which its start-up schema check on the shared server must not run
	// into.
	redisBound = redisTimeout + 2*redisDBTimeout + time.Second
	// redisFrozenFor is how long Redis stays frozen: longer than the
	// bound, so a send made as Redis froze that waits for SIGCONT shows
	// as one past the bound.
	redisFrozenFor = redisBound + 3*time.Second
	// redisResumeBound bounds the time from SIGCONT to every talker having
	// a new message acknowledged.
	redisResumeBound = 10 * time.Second
	// redisSteady is how long the load runs before and after the freeze.
	redisSteady = time.Second
)

// The channel layer's Redis is frozen (SIGSTOP: connections stay open,
// commands go unanswered) while talkers send, then resumed (SIGCONT).
// Every send made while it is frozen is answered within redisBound
// (REDIS_TIMEOUT and the database calls' own bounds), mostly with "saved
// but could not be delivered", whose message is then in the database (or
// with its new_message, when the group send that began before SIGCONT ends
// after it); nothing hangs; /readyz says 503. After SIGCONT, delivery
// resumes by itself within redisResumeBound, and /readyz says 200.
func TestRedisFrozenUnderLoad(t *testing.T) {
	redis := testenv.StartRedis(t)
	db := testenv.Postgres(t)
	w := newWorld(t, db, 3)
	prefix := make([]byte, 6)
	_, _ = rand.Read(prefix)
	sc := startSidecar(t, w.env("CHANNEL_LAYER=redis", "REDIS_URL="+redis.URL(),
		"CHANNEL_LAYER_PREFIX=faults"+hex.EncodeToString(prefix), "REDIS_TIMEOUT="+redisTimeout.String(), "DB_TIMEOUT="+redisDBTimeout.String()))
	l := w.startLoad(sc.Addr, 0, true)
	l.waitAcked(time.Now(), warmTimeout)
	time.Sleep(redisSteady)

	redis.Freeze()
	frozenAt := time.Now() // the server is stopped
	time.Sleep(redisFrozenFor / 2)
	if code := readyz(sc.Addr); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz answered %d while Redis is frozen, want 503", code)
	}
	time.Sleep(time.Until(frozenAt.Add(redisFrozenFor)))
	thawAt := time.Now()
	redis.Thaw()
	first, all := l.waitAcked(thawAt, redisResumeBound)
	ready := waitReadyz(t, sc.Addr, http.StatusOK, redisResumeBound)
	t.Logf("frozen %v; first acknowledgement %v after SIGCONT, every talker's %v; /readyz 200 after %v",
		thawAt.Sub(frozenAt).Round(time.Millisecond), first.Round(time.Millisecond), all.Round(time.Millisecond), ready.Round(time.Millisecond))
	time.Sleep(redisSteady)
	r := l.check()

	// Sends made while Redis was frozen: each answered within the bound,
	// with an error frame, or with its new_message after SIGCONT.
	var slowest time.Duration
	answered := 0
	for tk, sends := range l.sendsBetween(frozenAt, thawAt) {
		for _, s := range sends {
			slowest = max(slowest, s.latency())
			if s.latency() > redisBound {
				t.Errorf("%s: %q, sent %v after Redis froze, was answered after %v (%s), past the bound %v",
					tk.name, s.content, s.start.Sub(frozenAt), s.latency(), s.outcome, redisBound)
			}
			switch {
			case s.end.After(thawAt):
				if s.outcome != acked && s.outcome != refused {
					t.Errorf("%s: %q, sent while Redis was frozen: %s", tk.name, s.content, s.outcome)
				}
			case s.outcome == refused:
				answered++
			default:
				t.Errorf("%s: %q, sent while Redis was frozen: %s %q before SIGCONT, want an error frame", tk.name, s.content, s.outcome, s.text)
			}
		}
	}
	if answered < len(l.talkers) {
		t.Errorf("only %d sends made during the freeze were answered during it: the freeze missed the load", answered)
	}
	// A send in flight when Redis froze was either taken by Redis before
	// it stopped (its new_message comes after SIGCONT) or answered within
	// the bound.
	for tk, sends := range l.sendsBetween(frozenAt.Add(-time.Hour), frozenAt) {
		s := sends[len(sends)-1]
		switch {
		case !s.end.After(frozenAt):
		case s.outcome == acked && s.end.After(thawAt):
			t.Logf("%s: %q, in flight when Redis froze, was acknowledged %v after SIGCONT", tk.name, s.content, s.end.Sub(thawAt).Round(time.Millisecond))
			if s.end.After(thawAt.Add(redisResumeBound)) {
				t.Errorf("%s: %q, in flight when Redis froze, was acknowledged only %v after SIGCONT", tk.name, s.content, s.end.Sub(thawAt))
			}
		case s.latency() > redisBound:
			t.Errorf("%s: %q, in flight when Redis froze: %s after %v, past the bound %v", tk.name, s.content, s.outcome, s.latency(), redisBound)
		}
	}
	if r.refusedBy[errNotDelivered] < len(l.talkers) {
		t.Errorf("only %d sends refused with %q: the freeze missed the load", r.refusedBy[errNotDelivered], errNotDelivered)
	}
	if r.closed > 0 {
		t.Errorf("%d connections closed: a frozen channel layer must not end a connection", r.closed)
	}
	t.Logf("slowest answer to a send made during the freeze: %v (bound %v)", slowest.Round(time.Millisecond), redisBound)
	stopSidecar(t, sc, 30*time.Second)
}
