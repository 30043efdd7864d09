package mixed

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// feedPair is one conversation followed by two sidecars on one database:
// one with the change feed (FEED=on), one reading every history from the
// database (FEED=off), the reference. The listener is on both; every
// new_message must be the same bytes on both.
type feedPair struct {
	*stack
	py       string
	feed     *testenv.Sidecar
	plain    *testenv.Sidecar
	sender   *client // the talker, on the feed's sidecar
	onFeed   *client
	onQuery  *client
	sequence int
}

func newFeedPair(t *testing.T) *feedPair {
	s := newStackOn(t, testenv.PostgresFeed(t), redisURL(t))
	p := &feedPair{stack: s, py: s.daphne()}
	p.feed = s.sidecarWith("FEED=on", "ADMIN_ADDR=127.0.0.1:0")
	p.plain = s.sidecarWith("FEED=off")
	p.sender = s.join(p.feed.Addr, s.talker)
	p.onFeed = s.join(p.feed.Addr, s.listener)
	p.onQuery = s.join(p.plain.Addr, s.listener)
	return p
}

// same reads the next new_message on both listener connections and
// asserts they are the same bytes; it returns the frame.
func (p *feedPair) same(what string) string {
	p.t.Helper()
	a, b := dump(p.onFeed.expect("new_message")), dump(p.onQuery.expect("new_message"))
	if a != b {
		p.t.Fatalf("%s: the feed's history differs from the database's\nfeed:  %s\nquery: %s", what, a, b)
	}
	return a
}

// send sends a message from the talker and checks both listeners' frames.
func (p *feedPair) send(what string) string {
	p.t.Helper()
	p.sequence++
	p.sender.send(`{"type": "chat_message", "message": "message ` + strconv.Itoa(p.sequence) + `"}`)
	p.sender.expect("new_message")
	return p.same(what)
}

// history connects the listener to addr and returns its history frame.
func (p *feedPair) history(addr string) string {
	p.t.Helper()
	c, resp, err := p.dial(addr, "/ws/chat/"+itoa(p.conv)+"/", p.listener)
	if err != nil {
		p.t.Fatalf("connect to %s: %v %v", addr, err, resp)
	}
	c.expect("connection_established")
	c.expect("api_info")
	return dump(c.expect("conversation_history"))
}

func (p *feedPair) manage(args ...string) {
	p.t.Helper()
	testenv.RunManage(p.t, []string{"DATABASE_URL=" + p.db.DSN}, args...)
}

// Every change made by anyone reaches the next new_message and history
// through the feed exactly as a fresh query shows it: the REST API's
// mark_read (no event), a REST upload, an admin edit, an unchanged TOASTed
// content when is_read flips, a delete and a user renamed through the ORM.
func TestFeedExactness(t *testing.T) {
	t.Parallel()
	p := newFeedPair(t)
	for i := 0; i < 3; i++ {
		p.send("a message")
	}
	if code, body := p.rest(p.py, "/api/chat/conversations/"+itoa(p.conv)+"/mark_read/", p.listener, "application/json", strings.NewReader(`{}`)); code != http.StatusOK {
		t.Fatalf("REST mark_read: %d %s", code, body)
	}
	if f := p.send("after REST mark_read"); strings.Count(f, `"is_read": true`) != 3 {
		t.Errorf("REST mark_read is not in the history: %s", f)
	}
	p.upload(p.py, p.talker, "photo.png", []byte("\x89PNG\r\n\x1a\nfake"), "a caption")
	p.sender.expect("new_message")
	p.same("a REST upload")
	p.send("after a REST upload")

	var first int64
	if err := p.db.DB.QueryRow(`SELECT min(id) FROM chat_message WHERE conversation_id = $1`, p.conv).Scan(&first); err != nil {
		t.Fatal(err)
	}
	p.manage("admin_edit", "edit_message", itoa(first), "edited by the admin")
	if f := p.send("after an admin edit"); !strings.Contains(f, "edited by the admin") {
		t.Errorf("the admin's edit is not in the history: %s", f)
	}

	// Large content is TOASTed: an UPDATE of is_read carries it only as
	// "unchanged"; the cached row must keep it.
	big := strings.Repeat("lorem ipsum dolor sit amet, ", 4000)
	var bigID int64
	err := p.db.DB.QueryRow(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
		VALUES ($1, $2, $3, 'text', false, now()) RETURNING id`, p.conv, p.talker, big).Scan(&bigID)
	if err != nil {
		t.Fatal(err)
	}
	p.send("after a large message")
	if code, body := p.rest(p.py, "/api/chat/conversations/"+itoa(p.conv)+"/mark_read/", p.listener, "application/json", strings.NewReader(`{}`)); code != http.StatusOK {
		t.Fatalf("REST mark_read: %d %s", code, body)
	}
	if f := p.send("after is_read flipped on TOASTed content"); !strings.Contains(f, big[:100]) {
		t.Errorf("the large content was lost")
	}

	p.manage("admin_edit", "delete_message", itoa(first))
	if f := p.send("after a delete through the ORM"); strings.Contains(f, "edited by the admin") {
		t.Errorf("the deleted message is still in the history")
	}
	p.manage("admin_edit", "rename_user", itoa(p.talker), "Tom Renamed")
	if f := p.send("after the talker was renamed"); !strings.Contains(f, `"full_name": "Tom Renamed"`) {
		t.Errorf("the rename is not in the history")
	}

	// A new connection's history, too.
	if a, b := p.history(p.feed.Addr), p.history(p.plain.Addr); a != b {
		t.Errorf("connect history differs\nfeed:  %s\nquery: %s", a, b)
	}
	if hits := p.feed.Metric(p.t, "sidecar_history_cache_hits_total"); hits < 8 {
		t.Errorf("%v histories served from the cache, want most of them", hits)
	}
}

// The feed killed mid-load (its walsender terminated) never yields a stale
// frame: the sidecar reads from the database while it reconnects, then the
// cache comes back.
func TestFeedKilledMidLoad(t *testing.T) {
	t.Parallel()
	p := newFeedPair(t)
	p.send("before")
	admin, err := sql.Open("postgres", p.db.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	kills := 0
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := admin.ExecContext(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
				WHERE database = current_database() AND active_pid IS NOT NULL`)
			cancel()
			if err == nil {
				if n, _ := res.RowsAffected(); n > 0 {
					mu.Lock()
					kills++
					mu.Unlock()
				}
			}
		}
	}()
	killed := func() int { mu.Lock(); defer mu.Unlock(); return kills }
	sent := 0
	for deadline := time.Now().Add(30 * time.Second); sent < 100 || killed() < 4; sent++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages, %d kills in 30 s", sent, killed())
		}
		p.send(fmt.Sprintf("message %d while the feed is killed", sent))
	}
	close(stop)
	wg.Wait()
	t.Logf("walsender killed %d times during %d messages; every frame equal to the database's", killed(), sent)
	// The cache comes back by itself.
	before := p.feed.Metric(p.t, "sidecar_history_cache_hits_total")
	deadline := time.Now().Add(20 * time.Second)
	for p.feed.Metric(p.t, "sidecar_feed_up") != 1 || p.feed.Metric(p.t, "sidecar_history_cache_hits_total") == before {
		if time.Now().After(deadline) {
			t.Fatalf("the cache did not come back: feed_up %v, hits %v", p.feed.Metric(p.t, "sidecar_feed_up"), p.feed.Metric(p.t, "sidecar_history_cache_hits_total"))
		}
		p.send("after the kills")
	}
}
