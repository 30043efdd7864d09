package e2e

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/consumer"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Section 8: a frame over the limit closes the connection with 1009; others
// are not affected.
func TestFrameTooBig(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active", func(c *config.Config) { c.MaxFrameBytes, c.MaxTextFrameBytes = 1024, 1024 })
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		tc.send(`{"type": "chat_message", "message": "` + strings.Repeat("a", 2000) + `"}`)
		if code := tc.closeCode(); code != websocket.CloseMessageTooBig {
			t.Errorf("close code %d, want 1009", code)
		}
		lc.send(`{"type": "chat_message", "message": "still here"}`)
		lc.expectType("new_message")
		if n := w.messages(); n != 1 {
			t.Errorf("%d messages, want 1", n)
		}
	})
}

// Section 8: a peer that stops answering pings is closed.
func TestDeadPeerClosed(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active", func(c *config.Config) {
			c.PingInterval = 50 * time.Millisecond
			c.PingTimeout = 100 * time.Millisecond
		})
		tc := w.connect(w.talker)
		tc.ws.SetPingHandler(func(string) error { return nil }) // never pong
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			for {
				if _, _, err := tc.ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
		waitFor(t, "the silent peer to be dropped", func() bool { return w.app.Connections() == 0 })
		<-ended
		// A peer that answers pings (gorilla does while reading) is kept.
		lc := w.connect(w.listener)
		lc.send(`{"type": "chat_message", "message": "alive"}`)
		lc.expectType("new_message")
	})
}

// holdStore makes SaveText wait until released, to catch a save in flight.
type holdStore struct {
	consumer.Store
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *holdStore) SaveText(ctx context.Context, m chat.Draft) (chat.Message, error) {
	h.once.Do(func() {
		close(h.started)
		<-h.release
	})
	return h.Store.SaveText(ctx, m)
}

// Graceful shutdown: no new connections, in-flight saves finish, every
// connection is closed with 1001.
func TestShutdown(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		hold := &holdStore{started: make(chan struct{}), release: make(chan struct{})}
		w := newWorldWith(t, be, "active", func(s consumer.Store) consumer.Store { hold.Store = s; return hold })
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		tc.send(`{"type": "chat_message", "message": "in flight"}`)
		<-hold.started

		w.stop() // SIGTERM
		// Each client closes its side once it has read the close frame
		// (closeCode), which lets the server close the socket at once.
		if code := lc.closeCode(); code != websocket.CloseGoingAway {
			t.Errorf("listener close code %d, want 1001", code)
		}
		waitFor(t, "the listener to be closed", func() bool { return w.app.Connections() == 1 })
		// New connections are refused while draining.
		if _, resp, err := w.dial(w.chatPath(), w.tokens[w.listener].Access, nil); err == nil || resp == nil || resp.StatusCode != 503 {
			t.Errorf("dial while draining: %v %s, want 503", err, status(resp))
		}
		close(hold.release)
		if code := tc.closeCode(); code != websocket.CloseGoingAway {
			t.Errorf("talker close code %d, want 1001", code)
		}
		if err := <-w.served; err != nil {
			t.Errorf("shutdown: %v", err)
		}
		w.served <- nil // for the cleanup
		if n := w.messages(); n != 1 {
			t.Errorf("in-flight message: %d rows, want 1", n)
		}
	})
}

// failStore fails every database call after the connection is made.
type failStore struct {
	consumer.Store
	fail bool
	mu   sync.Mutex
}

var errDown = errors.New("database is down")

func (f *failStore) failing() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.fail }

func (f *failStore) IsBlocked(ctx context.Context, l, t int64) (bool, error) {
	if f.failing() {
		return false, errDown
	}
	return f.Store.IsBlocked(ctx, l, t)
}

func (f *failStore) MarkRead(ctx context.Context, c, r int64) (int64, error) {
	if f.failing() {
		return 0, errDown
	}
	return f.Store.MarkRead(ctx, c, r)
}

// A database failure is an error frame; the connection stays and works
// again when the database is back.
func TestDatabaseFailureFrames(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		fs := &failStore{}
		w := newWorldWith(t, be, "active", func(s consumer.Store) consumer.Store { fs.Store = s; return fs })
		tc := w.connect(w.talker)
		fs.mu.Lock()
		fs.fail = true
		fs.mu.Unlock()
		for _, f := range []string{`{"type": "chat_message", "message": "x"}`, `{"type": "file_message", "file": "aGk=", "filename": "a"}`, `{"type": "mark_read"}`} {
			tc.send(f)
			tc.expectError("Could not complete the request, please try again")
		}
		fs.mu.Lock()
		fs.fail = false
		fs.mu.Unlock()
		tc.send(`{"type": "chat_message", "message": "back"}`)
		tc.expectType("new_message")
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(frameWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Section 8: frames over the rate limit get an error frame and are not
// handled; a client that keeps on is closed with 1008.
func TestRateLimit(t *testing.T) {
	w := newWorld(t, testenv.Backends[0], "active", func(c *config.Config) {
		c.RateLimit = 0.01 // one frame per 100 s: the burst is all a test gets
		c.RateBurst = 3
	})
	tc := w.connect(w.talker)
	for i := 0; i < 3; i++ {
		tc.send(`{"type": "nope"}`)
		tc.expectError("Unknown message type: nope")
	}
	for i := 0; i < 3; i++ {
		tc.send(`{"type": "chat_message", "message": "over the limit"}`)
		tc.expectError("Too many messages: at most 0.01 per second")
	}
	if n := w.messages(); n != 0 {
		t.Errorf("%d messages saved over the limit", n)
	}
	tc.send(`{"type": "nope"}`)
	if code := tc.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
}

// Section 8: a connection closed while the client is still sending gets
// the end of the frame in progress and the close frame, however much of
// both is still in the kernel's buffers: the server half-closes and reads
// on until the client closes too, instead of closing a socket with unread
// bytes, which the kernel answers with a reset that discards both. Here the
// history (12 MiB, more than loopback's buffers hold) is stuck on a client
// that does not read; a message left half-sent past MESSAGE_TIMEOUT closes
// the connection with 1008; the client sends on, then reads.
func TestCloseAfterFrameInProgress(t *testing.T) {
	t.Parallel()
	w := newWorld(t, testenv.Backends[0], "active", func(c *config.Config) { c.MessageTimeout = 300 * time.Millisecond })
	const messages, size = 12, 1 << 20
	content := strings.Repeat("h", size)
	for i := 0; i < messages; i++ {
		if _, err := w.db.Fixture().Message(context.Background(), w.conv, w.talker, content, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	c, resp, err := w.dial(w.chatPath(), w.tokens[w.talker].Access, nil)
	if err != nil {
		t.Fatalf("connect: %v (response %v)", err, status(resp))
	}
	nc := c.ws.UnderlyingConn()
	fragment := func(opcode byte, fin bool, payload string) {
		t.Helper()
		if fin {
			opcode |= 0x80
		}
		// A masked client frame, with an all-zero mask for brevity.
		frame := append([]byte{opcode, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
		if _, err := nc.Write(frame); err != nil {
			t.Fatalf("write fragment: %v", err)
		}
	}
	fragment(websocket.TextMessage, false, `{"type": "chat_message", `)
	time.Sleep(time.Second) // past MESSAGE_TIMEOUT: the server is closing
	fragment(0, false, `"message": "late"`)

	_ = c.ws.SetReadDeadline(time.Now().Add(frameWait))
	for _, want := range []string{"connection_established", "api_info", "conversation_history"} {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("read %s: %v", want, err)
		}
		if !strings.Contains(string(b), `"type": "`+want+`"`) {
			t.Fatalf("got %.100s, want %s", b, want)
		}
		if want == "conversation_history" && strings.Count(string(b), content) != messages {
			t.Errorf("history of %d bytes does not hold the %d messages", len(b), messages)
		}
	}
	if code := c.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
	waitFor(t, "the connection to leave", func() bool { return w.app.Connections() == 0 })
	if n := w.messages(); n != messages {
		t.Errorf("%d messages, want %d", n, messages)
	}
}

// A history load that waits for memory keeps its query open; PostgreSQL's
// statement_timeout must leave it the memory wait on top of DB_TIMEOUT, or
// the query is cancelled while it waits and the load fails as a database
// error (500) as soon as memory is freed. One client that does not read
// holds a 40 MiB history of the 48 MiB budget; a second connect to the
// conversation waits for memory, past DB_TIMEOUT, with most of the rows
// still to be sent (more than the sockets' buffers hold), until the first
// client goes away; it must then get its history.
func TestMemoryWaitWithQueryOpen(t *testing.T) {
	t.Parallel()
	w := newWorld(t, testenv.Backends[0], "active", func(c *config.Config) {
		c.MemoryLimit = 96 << 20 // a budget of 48 MiB
		c.DBTimeout, c.MemoryWait = time.Second, 4*time.Second
	})
	const messages = 40
	content := strings.Repeat("h", 1<<20)
	for i := 0; i < messages; i++ {
		if _, err := w.db.Fixture().Message(context.Background(), w.conv, w.talker, content, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	holder, resp, err := w.dial(w.chatPath(), w.tokens[w.talker].Access, nil) // never reads
	if err != nil {
		t.Fatalf("connect: %v (response %v)", err, status(resp))
	}
	waitFor(t, "the first history to be held", func() bool { return w.app.Connections() == 1 })
	go func() {
		time.Sleep(2 * time.Second) // past DB_TIMEOUT, within MEMORY_WAIT
		holder.ws.Close()
	}()
	c, resp, err := w.dial(w.chatPath(), w.tokens[w.listener].Access, nil)
	if err != nil {
		t.Fatalf("a connect that waited for memory: %v %s, want its history once memory was freed", err, status(resp))
	}
	c.expectType("connection_established")
	c.expectType("api_info")
	_ = c.ws.SetReadDeadline(time.Now().Add(frameWait))
	_, b, err := c.ws.ReadMessage()
	if err != nil || strings.Count(string(b), content) != messages {
		t.Errorf("history: %d bytes, %v; want the %d messages", len(b), err, messages)
	}
}
