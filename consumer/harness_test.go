package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/memlayer"
	"github.com/chatsidecar/sidecar/pyjson"
)

// frameWait bounds every wait for a frame: a deadlock guard, not a speed
// requirement.
const frameWait = 10 * time.Second

// rig is a Server on an in-memory store and layer, reached through
// synchronous in-memory pipes: a write blocks until the peer reads, so
// whether a client reads decides exactly when the server's writer waits.
type rig struct {
	t        *testing.T
	store    *memStore
	swap     *swapStore // what the server calls: store, unless a test swaps it
	files    *memFiles
	layer    *memlayer.Layer
	srv      *Server
	ln       *pipeListener
	listener chat.User
	talker   chat.User
	conv     chat.Conversation
}

// testConfig is the configuration of the unit tests: the server's
// defaults, with no rate limit unless a test sets one.
func testConfig() Config {
	return Config{
		AllowedHosts: []string{"chat.example.com"}, PublicBaseURL: "https://chat.example.com",
		MaxFrameBytes: 1 << 20, MaxTextFrameBytes: 64 << 10, MaxFileBytes: 1 << 10, MaxMessageChars: 100,
		MessageTimeout: 10 * time.Second, InboxConcurrency: 2, SendQueueBytes: 1 << 20, MemoryBudget: 64 << 20, BudgetWait: time.Second,
		PingInterval: 20 * time.Second, PingTimeout: 30 * time.Second, WriteTimeout: 10 * time.Second,
		DBTimeout: 5 * time.Second, LayerTimeout: 5 * time.Second,
	}
}

func newRig(t *testing.T, mods ...func(*Config)) *rig {
	t.Helper()
	cfg := testConfig()
	for _, m := range mods {
		m(&cfg)
	}
	r := &rig{t: t, store: newMemStore(), files: &memFiles{}, layer: memlayer.New(0), ln: newPipeListener()}
	r.listener = r.store.addUser(chat.User{ID: 1, Email: "l@example.com", FullName: "Lena Listener", UserType: "listener", IsActive: true})
	r.talker = r.store.addUser(chat.User{ID: 2, Email: "t@example.com", UserType: "talker", IsActive: true})
	r.conv = chat.Conversation{ID: 7, ListenerID: 1, TalkerID: 2, Status: chat.StatusActive}
	r.store.addConversation(r.conv)
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.swap = &swapStore{}
	r.swap.set(r.store)
	r.srv = New(cfg, r.swap, tokenVerifier{}, r.files, r.layer, log, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go r.srv.Run(ctx)
	hs := &http.Server{Handler: r.srv}
	go hs.Serve(r.ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = r.srv.Shutdown(sctx)
		cancel()
		_ = hs.Close()
	})
	return r
}

// tokenVerifier accepts "user:<id>" (auth's own tests cover real tokens).
type tokenVerifier struct{}

func (tokenVerifier) Verify(token string) (int64, error) {
	id, ok := strings.CutPrefix(token, "user:")
	if !ok {
		return 0, errors.New("invalid token")
	}
	return strconv.ParseInt(id, 10, 64)
}

func token(u chat.User) string { return fmt.Sprintf("user:%d", u.ID) }

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pipeListener hands the server one end of a net.Pipe per dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// client is a real WebSocket client on a pipe.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (r *rig) dial(path, tok string, header http.Header) (*client, *http.Response, error) {
	d := websocket.Dialer{NetDialContext: r.ln.dial, HandshakeTimeout: frameWait}
	u := "ws://chat.example.com" + path
	if tok != "" {
		u += "?token=" + tok
	}
	ws, resp, err := d.Dial(u, header)
	if err != nil {
		return nil, resp, err
	}
	r.t.Cleanup(func() { ws.Close() })
	return &client{t: r.t, ws: ws}, resp, nil
}

func (r *rig) chatPath() string { return "/ws/chat/" + strconv.FormatInt(r.conv.ID, 10) + "/" }

// connect connects u to the rig's conversation and reads the connect frames.
func (r *rig) connect(u chat.User) *client {
	r.t.Helper()
	c, resp, err := r.dial(r.chatPath(), token(u), nil)
	if err != nil {
		r.t.Fatalf("connect user %d: %v (%v)", u.ID, err, resp)
	}
	for _, want := range []string{"connection_established", "api_info", "conversation_history"} {
		c.expectType(want)
	}
	return c
}

// refused asserts the handshake is answered with status.
func (r *rig) refused(path, tok string, header http.Header, status int) {
	r.t.Helper()
	c, resp, err := r.dial(path, tok, header)
	if err == nil {
		c.ws.Close()
		r.t.Fatalf("dial %s: accepted, want %d", path, status)
	}
	if resp == nil || resp.StatusCode != status {
		r.t.Fatalf("dial %s: %v (%v), want %d", path, err, resp, status)
	}
}

func (c *client) raw() string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(frameWait))
	typ, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	if typ != websocket.TextMessage {
		c.t.Fatalf("frame type %d, want text", typ)
	}
	return string(data)
}

func (c *client) next() pyjson.Object {
	c.t.Helper()
	raw := c.raw()
	v, err := pyjson.Decode([]byte(raw))
	if err != nil {
		c.t.Fatalf("frame %q: %v", raw, err)
	}
	o, ok := v.(pyjson.Object)
	if !ok {
		c.t.Fatalf("frame %q is not an object", raw)
	}
	return o
}

func (c *client) expectType(typ string) pyjson.Object {
	c.t.Helper()
	f := c.next()
	if got, _ := f.Get("type"); got != typ {
		c.t.Fatalf("frame type %v, want %s: %s", got, typ, mustMarshal(f))
	}
	return f
}

func (c *client) expectError(text string) {
	c.t.Helper()
	if got, want := c.raw(), string(errorFrame(text)); got != want {
		c.t.Fatalf("frame\n got %s\nwant %s", got, want)
	}
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("send %s: %v", frame, err)
	}
}

// barrier proves nothing was sent to the others before it: sender sends
// mark_read (never blocked), so every other participant's next frame must
// be its read_receipt.
func barrier(sender *client, others ...*client) {
	sender.t.Helper()
	sender.send(`{"type": "mark_read"}`)
	for _, o := range others {
		o.expectType("read_receipt")
	}
}

// closeCode reads until the connection ends and returns the close code
// (-1: ended without a close frame).
func (c *client) closeCode() int {
	c.t.Helper()
	// Then close the socket, as a client does once the server has closed.
	defer c.ws.Close()
	_ = c.ws.SetReadDeadline(time.Now().Add(frameWait))
	for {
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		return -1
	}
}

// waitFor polls cond: the server's state changes on its own goroutines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(frameWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// testutilCount reads a counter's value.
func testutilCount(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
