package consumer

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// The conversation list's connect frames, byte for byte (section 10).
func TestInboxConnect(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	created := time.Date(2026, 1, 14, 10, 0, 0, 120000000, time.UTC)
	r.store.setMeta(r.conv.ID, convMeta{created: created, initial: "hi"})
	c, _, err := r.dial("/ws/conversations", token(r.talker), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.raw(); got != `{"type": "connection_established", "message": "Connected to conversation list updates"}` {
		t.Errorf("first frame %s", got)
	}
	want := `{"type": "conversation_list", "conversations": [{"id": 7, "listener_id": 1, "listener_email": "l@example.com", ` +
		`"listener_name": "Lena Listener", "talker_id": 2, "talker_email": "t@example.com", "talker_name": "t@example.com", ` +
		`"other_user_id": 1, "other_user_email": "l@example.com", "other_user_name": "Lena Listener", "status": "active", ` +
		`"initial_message": "hi", "last_message_preview": "", "last_message_sender_id": 2, ` +
		`"last_message_at": "2026-01-14T10:00:00.120000+00:00", "total_messages": 0, "created_at": "2026-01-14T10:00:00.120000+00:00"}], ` +
		`"count": 1, "message": "You have 1 conversation(s)"}`
	if got := c.raw(); got != want {
		t.Errorf("list\n got %s\nwant %s", got, want)
	}
	r.refused("/ws/conversations/", "", nil, http.StatusForbidden)
	r.refused("/ws/conversations/", "garbage", nil, http.StatusForbidden)
}

// A chat message updates both participants' lists; the list client's own
// frames, text or binary, are ignored.
func TestInboxUpdatedByChat(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inbox := r.connectInbox(r.listener)
	if err := inbox.ws.WriteMessage(websocket.BinaryMessage, []byte{1}); err != nil {
		t.Fatal(err)
	}
	inbox.send(`{"type": "chat_message", "message": "ignored here"}`)
	tc := r.connect(r.talker)
	tc.send(`{"type": "chat_message", "message": "` + strings.Repeat("😀", 60) + `"}`)
	tc.expectType("new_message")
	f := inbox.expectType("conversation_list_updated")
	got := string(mustMarshal(f))
	for _, want := range []string{
		`"latest_conversation_id": 7`, `"message": "Conversation 7 updated with new message"`,
		`"last_message_preview": "` + strings.Repeat(`\ud83d\ude00`, 50) + `"`, `"total_messages": 1`, `"count": 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("update lacks %s: %s", want, got)
		}
	}
}

// Updates that arrive while a user's list is being computed are merged
// into one more computation after it, whose latest_conversation_id is the
// last update's; nothing is lost, nothing is computed twice.
func TestInboxMergesUpdates(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inbox := r.connectInbox(r.listener)
	gate := &inboxGate{memStore: r.store, release: make(chan struct{})}
	r.swap.set(gate)
	send := func(id any) {
		ev := pyjson.Object{{Key: "type", Value: "conversation_update"}, {Key: "conversation_id", Value: id}}
		if err := r.layer.GroupSend(context.Background(), "user_1_conversations", ev); err != nil {
			t.Fatal(err)
		}
	}
	send(int64(7))
	waitFor(t, "the first computation to start", func() bool { return gate.count() == 1 })
	send(int64(8))
	send("nine")
	send(nil)
	waitFor(t, "the updates to queue", func() bool {
		r.srv.events.mu.Lock()
		defer r.srv.events.mu.Unlock()
		return len(r.srv.events.queues["user_1_conversations"]) == 3
	})
	close(gate.release)
	if f := inbox.expectType("conversation_list_updated"); get(f, "latest_conversation_id") != int64(7) {
		t.Errorf("first update for %v", get(f, "latest_conversation_id"))
	}
	f := inbox.expectType("conversation_list_updated")
	if id := get(f, "latest_conversation_id"); id != nil || get(f, "message") != "Conversation None updated with new message" {
		t.Errorf("merged update: %s", mustMarshal(f))
	}
	if n := gate.count(); n != 2 {
		t.Errorf("%d computations for 4 updates, want 2", n)
	}
	if merged := testutilCount(r.srv.metrics.inbox.WithLabelValues("merged")); merged != 2 {
		t.Errorf("merged updates counted %v, want 2", merged)
	}
	// An event of another type is ignored; the socket stays.
	if err := r.layer.GroupSend(context.Background(), "user_1_conversations", pyjson.Object{{Key: "type", Value: "nope"}}); err != nil {
		t.Fatal(err)
	}
	send(int64(7))
	inbox.expectType("conversation_list_updated")
}

type inboxGate struct {
	*memStore
	release chan struct{}
	mu      sync.Mutex
	n       int
}

func (g *inboxGate) count() int { g.mu.Lock(); defer g.mu.Unlock(); return g.n }

func (g *inboxGate) Inbox(ctx context.Context, user int64) ([]chat.InboxItem, error) {
	g.mu.Lock()
	g.n++
	g.mu.Unlock()
	<-g.release
	return g.memStore.Inbox(ctx, user)
}

func (r *rig) connectInbox(u chat.User) *client {
	r.t.Helper()
	c, resp, err := r.dial("/ws/conversations/", token(u), nil)
	if err != nil {
		r.t.Fatalf("connect inbox of %d: %v (%v)", u.ID, err, resp)
	}
	c.expectType("connection_established")
	c.expectType("conversation_list")
	return c
}

// Notifications: the pending list for a listener with requests waiting
// (none for a talker), and every event's frame byte for byte; an event
// missing a key, or of another type, is ignored and the socket stays.
func TestNotifications(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.store.addConversation(chat.Conversation{ID: 9, ListenerID: 1, TalkerID: 2, Status: chat.StatusPending})
	r.store.setMeta(9, convMeta{created: time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC), initial: "Can we talk?"})
	lc, _, err := r.dial("/ws/notifications/", token(r.listener), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := lc.raw(); got != `{"type": "connection_established", "message": "Connected to notifications"}` {
		t.Errorf("first frame %s", got)
	}
	want := `{"type": "pending_conversations_list", "conversations": [{"id": 9, "talker_id": 2, "talker_email": "t@example.com", ` +
		`"talker_name": "t@example.com", "initial_message": "Can we talk?", "created_at": "2026-01-14T10:00:00+00:00"}], ` +
		`"count": 1, "message": "You have 1 pending conversation(s)"}`
	if got := lc.raw(); got != want {
		t.Errorf("pending\n got %s\nwant %s", got, want)
	}
	tc, _, err := r.dial("/ws/notifications", token(r.talker), nil)
	if err != nil {
		t.Fatal(err)
	}
	tc.expectType("connection_established")

	for _, tt := range []struct{ event, frame string }{
		{`{"type": "conversation_request", "conversation_id": 9, "talker_id": 2, "talker_email": "t@example.com", "talker_name": 42, "initial_message": "hi", "created_at": "2026-01-14T10:00:00+00:00"}`,
			`{"type": "conversation_request", "conversation_id": 9, "talker_id": 2, "talker_email": "t@example.com", "talker_name": 42, "initial_message": "hi", "created_at": "2026-01-14T10:00:00+00:00", "message": "New conversation request from 42"}`},
		{`{"type": "conversation_accepted", "conversation_id": 9, "listener_id": 1, "listener_email": "l@example.com", "listener_name": "Lena", "accepted_at": "x"}`,
			`{"type": "conversation_accepted", "conversation_id": 9, "listener_id": 1, "listener_email": "l@example.com", "listener_name": "Lena", "accepted_at": "x", "message": "Your conversation request was accepted by Lena"}`},
		{`{"type": "conversation.rejected", "conversation_id": 9, "listener_id": 1, "listener_email": "l@example.com", "listener_name": null, "rejected_at": "y"}`,
			`{"type": "conversation_rejected", "conversation_id": 9, "listener_id": 1, "listener_email": "l@example.com", "listener_name": null, "rejected_at": "y", "message": "Your conversation request was rejected by None"}`},
		{`{"type": "incoming_call", "session_id": "s1", "call_package_id": 3, "talker_id": 2, "talker_email": "t@example.com", "talker_name": "Tom", "call_type": "voice", "total_minutes": 15, "created_at": "z"}`,
			`{"type": "incoming_call", "message": "Incoming call from Tom", "session_id": "s1", "call_package_id": 3, "talker": {"id": 2, "email": "t@example.com", "full_name": "Tom", "profile_image": null}, "call_type": "voice", "total_minutes": 15, "created_at": "z"}`},
		{`{"type": "call_ended_notification", "message": "Call ended", "session_id": "s1", "duration_minutes": 2.5, "ended_by": 1, "timestamp": "t"}`,
			`{"type": "call_ended", "message": "Call ended", "session_id": "s1", "duration_minutes": 2.5, "ended_by": 1, "ended_by_name": null, "timestamp": "t"}`},
		{`{"type": "call_ending_notification", "data": {"type": "call_ending", "seconds_left": 60, "note": "é"}}`,
			`{"type": "call_ending", "seconds_left": 60, "note": "\u00e9"}`},
	} {
		ev, err := pyjson.Decode([]byte(tt.event))
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []pyjson.Object{
			{{Key: "type", Value: "no_such_event"}},
			{{Key: "type", Value: "incoming_call"}, {Key: "session_id", Value: "missing the rest"}},
		} {
			if err := r.layer.GroupSend(context.Background(), "user_2_notifications", bad); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.layer.GroupSend(context.Background(), "user_2_notifications", ev.(pyjson.Object)); err != nil {
			t.Fatal(err)
		}
		if got := tc.raw(); got != tt.frame {
			t.Errorf("event %s\n got %s\nwant %s", tt.event, got, tt.frame)
		}
	}
}

// Frames over the rate limit on a route that ignores client frames get no
// error frame; a client that keeps on is still closed with 1008.
func TestQuietRateLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.RateLimit, c.RateBurst = 0.01, 2 })
	c := r.connectInbox(r.talker)
	for i := 0; i < 5; i++ {
		c.send(`{}`)
	}
	if code := c.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
}
