package consumer

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
)

// A message is saved, and both participants get new_message with the whole
// history (newest first) and the saved message as latest_message.
func TestChatMessageDelivered(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	tc.send(`{"type": "chat_message", "message": "one"}`)
	tc.send(`{"type": "chat_message", "message": "two"}`)
	for _, c := range []*client{tc, lc} {
		c.expectType("new_message")
		f := c.expectType("new_message")
		if n, _ := f.Get("count"); n != int64(2) {
			t.Errorf("count %v, want 2", n)
		}
		if got := mustMarshal(f); !strings.Contains(string(got), `"content": "two"`) ||
			strings.Index(string(got), `"content": "two"`) > strings.Index(string(got), `"content": "one"`) {
			t.Errorf("history not newest first: %s", got)
		}
	}
	if msgs := r.store.messages(); len(msgs) != 2 || msgs[0].Content != "one" || msgs[0].MessageType != chat.TypeText {
		t.Errorf("stored %+v", msgs)
	}
}

// Every error text of section 5, to the sender only; the connection stays.
func TestClientFrameErrors(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	for _, tt := range []struct{ frame, want string }{
		{`not json`, errInvalidJSON},
		{`[1, 2]`, errInvalidFormat},
		{`{}`, "Unknown message type: None"},
		{`{"type": null}`, "Unknown message type: None"},
		{`{"type": true}`, "Unknown message type: True"},
		{`{"type": 5}`, "Unknown message type: 5"},
		{`{"type": 2.5}`, "Unknown message type: 2.5"},
		{`{"type": ""}`, "Unknown message type: "},
		{`{"type": "chat_message"}`, errContentRequired},
		{`{"type": "chat_message", "message": ""}`, errContentRequired},
		{`{"type": "chat_message", "message": 0}`, errContentRequired},
		{`{"type": "chat_message", "message": [1]}`, errContentNotString},
		{`{"type": "chat_message", "message": "a\u0000b"}`, chat.ErrNUL.Error()},
		{`{"type": "file_message", "filename": "a.txt"}`, errFileRequired},
		{`{"type": "file_message", "file": "aGk="}`, errFileRequired},
		{`{"type": "file_message", "file": "!!!", "filename": "a.txt"}`, errInvalidFileData},
		{`{"type": "file_message", "file": "", "filename": "a.txt"}`, errFileRequired},
		{`{"type": "file_message", "file": "aGk=", "filename": ".."}`, errInvalidFileName},
		{`{"type": "file_message", "file": "` + strings.Repeat("QUFB", 400) + `", "filename": "a.txt"}`, "File is too large (max 1 KB)"},
	} {
		tc.send(tt.frame)
		tc.expectError(tt.want)
	}
	if err := tc.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	tc.expectError(errBinary)
	// Echoed server frames are ignored; the listener saw nothing of all this.
	tc.send(`{"type": "new_message"}`)
	barrier(tc, lc)
	if n := len(r.store.messages()); n != 0 {
		t.Errorf("%d messages saved", n)
	}
}

// The blocking timeline T2–T6 (section 9) with the block row made while
// both are connected.
func TestBlockingTimeline(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	r.store.setBlocked(r.listener.ID, r.talker.ID, true) // T1
	tc.send(`{"type": "chat_message", "message": "t2"}`)
	tc.expectError(errBlockedText)
	tc.send(`{"type": "file_message", "file": "aGk=", "filename": "t3.txt"}`)
	tc.expectError(errBlockedFile)
	tc.send(`{"type": "typing", "is_typing": true}`) // T4: nothing at all
	barrier(tc, lc)
	lc.send(`{"type": "chat_message", "message": "from the listener"}`)
	lc.expectError(errBlockedText)
	r.refused(r.chatPath(), token(r.talker), nil, http.StatusForbidden) // T4'
	if n, f := len(r.store.messages()), r.files.count(); n != 0 || f != 0 {
		t.Fatalf("%d messages, %d files saved while blocked", n, f)
	}
	r.store.setBlocked(r.listener.ID, r.talker.ID, false) // T5
	tc.send(`{"type": "chat_message", "message": "t6"}`)
	tc.expectType("new_message")
	lc.expectType("new_message")
}

// A block made between the check and the save is caught by the save
// (layer 2), and the save's own refusals have the contract's texts.
func TestSaveRefusals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status string
		sender string
		want   string
	}{
		{chat.StatusRejected, "talker", "Cannot send messages in a Rejected conversation"},
		{chat.StatusClosed, "listener", "Cannot send messages in a Closed conversation"},
		{chat.StatusPending, "listener", errNotTalker},
	} {
		r := newRig(t)
		r.store.addConversation(chat.Conversation{ID: 7, ListenerID: 1, TalkerID: 2, Status: tt.status})
		u := r.talker
		if tt.sender == "listener" {
			u = r.listener
		}
		c := r.connect(u)
		c.send(`{"type": "chat_message", "message": "x"}`)
		c.expectError(tt.want)
	}
	r := newRig(t)
	c := r.connect(r.talker)
	r.store.mu.Lock()
	delete(r.store.convs, r.conv.ID)
	r.store.mu.Unlock()
	c.send(`{"type": "chat_message", "message": "x"}`)
	c.expectError(errConversationGone)
	c.send(`{"type": "file_message", "file": "!!", "filename": "x"}`)
	c.expectError(errConversationGone) // gone comes before the file's own errors
}

// Typing goes to the others only; mark_read marks the others' messages and
// sends read_receipt to the others.
func TestTypingAndMarkRead(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	tc.send(`{"type": "typing", "is_typing": {"a": [1, 2.5]}}`)
	if got := lc.raw(); got != `{"type": "typing", "user_id": 2, "user_email": "t@example.com", "is_typing": {"a": [1, 2.5]}}` {
		t.Errorf("typing frame %s", got)
	}
	tc.send(`{"type": "typing"}`)
	if got := lc.raw(); !strings.HasSuffix(got, `"is_typing": false}`) {
		t.Errorf("typing without is_typing: %s", got)
	}
	tc.send(`{"type": "chat_message", "message": "hi"}`)
	tc.expectType("new_message")
	lc.expectType("new_message")
	barrier(lc, tc)
	if m := r.store.messages(); !m[0].IsRead {
		t.Error("mark_read left the talker's message unread")
	}
}

// A database failure is an error frame, the cause only in the log, and the
// connection works again once the database is back.
func TestDatabaseFailure(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc := r.connect(r.talker)
	r.store.setFail(errors.New("connection refused"))
	tc.send(`{"type": "chat_message", "message": "x"}`)
	tc.expectError(errServer)
	tc.send(`{"type": "mark_read"}`)
	tc.expectError(errServer)
	r.store.setFail(nil)
	tc.send(`{"type": "chat_message", "message": "x"}`)
	tc.expectType("new_message")
}

// Handshake refusals: HTTP 403 for every check of section 4, 404 off the
// route, 400 without an upgrade or with a malformed Origin.
func TestConnectRefusals(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	inactive := r.store.addUser(chat.User{ID: 3, Email: "x@example.com", UserType: "talker"})
	outsider := r.store.addUser(chat.User{ID: 4, Email: "o@example.com", UserType: "talker", IsActive: true})
	for _, tt := range []struct {
		path, token string
	}{
		{r.chatPath(), ""},
		{r.chatPath(), "garbage"},
		{r.chatPath(), "user:99"},
		{r.chatPath(), token(inactive)},
		{r.chatPath(), token(outsider)},
		{"/ws/chat/8/", token(r.talker)},
		{"/ws/chat/abc/", token(r.talker)},
		{"/ws/chat/99999999999999999999/", token(r.talker)},
	} {
		r.refused(tt.path, tt.token, nil, http.StatusForbidden)
	}
	r.refused(r.chatPath(), token(r.talker), http.Header{"Origin": {"https://evil.example.net"}}, http.StatusForbidden)
	r.refused(r.chatPath(), token(r.talker), http.Header{"Origin": {"garbage"}}, http.StatusBadRequest)
	r.refused("/ws/chat/7/x/", token(r.talker), nil, http.StatusNotFound)
	c, _, err := r.dial("/ws/chat/007/", token(r.talker), http.Header{"Origin": {"https://chat.example.com"}})
	if err != nil {
		t.Fatalf("/ws/chat/007/ from an allowed origin: %v", err)
	}
	c.expectType("connection_established")
	if f := c.expectType("api_info"); !strings.Contains(string(mustMarshal(f)), "/conversations/007/") {
		t.Errorf("api_info does not use the segment as written: %s", mustMarshal(f))
	}
}

// Section 8: a connection that does not read is closed once its queue
// passes SendQueueBytes; the sender and everyone else never wait for it.
// On a synchronous pipe the first frame the server writes to the silent
// client blocks, so what is queued is known without kernel buffers.
func TestSlowReaderDropped(t *testing.T) {
	t.Parallel()
	// The frame stuck on the pipe must end (WriteTimeout) before the close
	// frame can follow it.
	r := newRig(t, func(c *Config) { c.SendQueueBytes, c.WriteTimeout = 4<<10, 300*time.Millisecond })
	slow, _, err := r.dial(r.chatPath(), token(r.listener), nil) // never reads
	if err != nil {
		t.Fatal(err)
	}
	fast := r.connect(r.talker)
	waitFor(t, "both connected", func() bool { return r.srv.Connections() == 2 })
	sent := 0
	for ; sent < 20 && r.srv.Connections() == 2; sent++ {
		fast.send(`{"type": "chat_message", "message": "` + strings.Repeat("x", 90) + `"}`)
		fast.expectType("new_message")
	}
	waitFor(t, "the slow reader to be dropped", func() bool { return r.srv.Connections() == 1 })
	fast.send(`{"type": "chat_message", "message": "after"}`)
	fast.expectType("new_message")
	if n := len(r.store.messages()); n != sent+1 {
		t.Errorf("%d messages, want %d", n, sent+1)
	}
	if got := testutilCount(r.srv.metrics.drops.WithLabelValues("send_queue")); got != 1 {
		t.Errorf("send_queue drops counted %v, want 1", got)
	}
	_ = slow
}

// Section 8: frames over the rate limit get an error frame and are not
// handled; a client that keeps on is closed with 1008.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.RateLimit, c.RateBurst = 0.01, 3 })
	tc := r.connect(r.talker)
	for i := 0; i < 3; i++ {
		tc.send(`{"type": "nope"}`)
		tc.expectError("Unknown message type: nope")
	}
	for i := 0; i < 3; i++ {
		tc.send(`{"type": "chat_message", "message": "over"}`)
		tc.expectError("Too many messages: at most 0.01 per second")
	}
	tc.send(`{"type": "nope"}`)
	if code := tc.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
	if n := len(r.store.messages()); n != 0 {
		t.Errorf("%d messages saved over the limit", n)
	}
}

// A frame over MaxFrameBytes closes the connection with 1009.
func TestFrameTooBig(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MaxFrameBytes = 1024 })
	tc := r.connect(r.talker)
	// The server stops reading at the limit; on a pipe the rest of the
	// write then fails, so it is written aside.
	go tc.ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "chat_message", "message": "`+strings.Repeat("x", 2000)+`"}`))
	if code := tc.closeCode(); code != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", code)
	}
	waitFor(t, "the connection to leave", func() bool { return r.srv.Connections() == 0 })
}

// Shutdown: the connection finishes the frame in hand, then every
// connection gets 1001 after what was queued for it.
func TestShutdownGoingAway(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	tc.send(`{"type": "chat_message", "message": "last"}`)
	tc.expectType("new_message")
	done := make(chan error, 1)
	go func() { done <- r.srv.Shutdown(t.Context()) }()
	lc.expectType("new_message")
	for _, c := range []*client{tc, lc} {
		if code := c.closeCode(); code != websocket.CloseGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	r.refused(r.chatPath(), token(r.talker), nil, http.StatusServiceUnavailable)
}
