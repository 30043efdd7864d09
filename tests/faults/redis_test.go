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
	// redisTimeout is the sidecar's REDIS_TIMEOUT.
	redisTimeout = time.Second
	// redisMargin is what a refused send may take besides REDIS_TIMEOUT:
	// the block check and the save (milliseconds), and the race detector.
	redisMargin = 1500 * time.Millisecond
	// redisFrozenFor is how long Redis stays frozen: several bounds, so
	// every talker is refused more than once and a hang shows.
	redisFrozenFor = 5 * time.Second
	// redisResumeBound bounds the time from SIGCONT to every talker having
	// a new message acknowledged.
	redisResumeBound = 10 * time.Second
	// redisSteady is how long the load runs before and after the freeze.
	redisSteady = time.Second
)

// The channel layer's Redis is frozen (SIGSTOP: connections stay open,
// commands go unanswered) while talkers send, then resumed (SIGCONT).
// While frozen, every send is answered within REDIS_TIMEOUT plus a margin,
// with "saved but could not be delivered", and the message is in the
// database; nothing hangs; /readyz says 503. After SIGCONT, delivery
// resumes by itself within redisResumeBound, and /readyz says 200.
func TestRedisFrozenUnderLoad(t *testing.T) {
	redis := testenv.StartRedis(t)
	db := testenv.Postgres(t)
	w := newWorld(t, db, 3)
	prefix := make([]byte, 6)
	_, _ = rand.Read(prefix)
	sc := startSidecar(t, w.env("CHANNEL_LAYER=redis", "REDIS_URL="+redis.URL(),
		"CHANNEL_LAYER_PREFIX=faults"+hex.EncodeToString(prefix), "REDIS_TIMEOUT="+redisTimeout.String()))
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
	// refused with the text that says the message is saved (check has
	// verified that it is).
	bound := redisTimeout + redisMargin
	var slowest time.Duration
	during := l.sendsBetween(frozenAt, thawAt)
	for _, tk := range l.talkers {
		answered := 0
		for _, s := range during[tk] {
			if s.end.After(thawAt) {
				continue // made just before SIGCONT: answered either way
			}
			answered++
			slowest = max(slowest, s.latency())
			if s.latency() > bound {
				t.Errorf("%s: %q, sent while Redis was frozen, was answered after %v, past REDIS_TIMEOUT+%v", tk.name, s.content, s.latency(), redisMargin)
			}
			if s.outcome != refused || s.text != errNotDelivered {
				t.Errorf("%s: %q, sent while Redis was frozen: %s %q, want refused with %q", tk.name, s.content, s.outcome, s.text, errNotDelivered)
			}
		}
		if answered < 2 {
			t.Errorf("%s: only %d sends answered during a %v freeze: a send hung", tk.name, answered, redisFrozenFor)
		}
	}
	// A send in flight when Redis froze may have been taken by Redis
	// before it stopped: its new_message comes after SIGCONT.
	for tk, sends := range l.sendsBetween(frozenAt.Add(-time.Hour), frozenAt) {
		s := sends[len(sends)-1]
		if s.end.After(frozenAt) && s.end.After(thawAt.Add(bound)) {
			t.Errorf("%s: %q, in flight when Redis froze, was answered %v after SIGCONT", tk.name, s.content, s.end.Sub(thawAt))
		}
	}
	if r.refusedBy[errNotDelivered] < len(l.talkers) {
		t.Errorf("only %d sends refused with %q: the freeze missed the load", r.refusedBy[errNotDelivered], errNotDelivered)
	}
	if r.closed > 0 {
		t.Errorf("%d connections closed: a frozen channel layer must not end a connection", r.closed)
	}
	t.Logf("slowest answer during the freeze: %v (bound %v)", slowest.Round(time.Millisecond), bound)
	stopSidecar(t, sc, 30*time.Second)
}
