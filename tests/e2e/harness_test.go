package e2e

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/app"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/consumer"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

const (
	secretKey  = "e2e-secret-key-not-for-production"
	publicBase = "https://chat.example.com"
	// frameWait bounds every wait for a frame; it is a deadlock guard, not
	// a speed requirement.
	frameWait = 20 * time.Second
)

// world is one sidecar serving a fresh Django database with a listener, a
// talker and a conversation between them.
type world struct {
	t        *testing.T
	db       *testenv.Database
	app      *app.App
	layer    *recordingLayer
	url      string // http://host:port
	media    string
	listener int64
	talker   int64
	conv     int64
	tokens   map[int64]testenv.Tokens
	stop     func() // cancels Serve: the graceful shutdown
	served   chan error
}

// option changes the sidecar's configuration.
type option func(*config.Config)

// newWorld starts a sidecar on a fresh database; status is the
// conversation's status.
func newWorld(t *testing.T, be testenv.Backend, status string, opts ...option) *world {
	t.Helper()
	return newWorldWith(t, be, status, nil, opts...)
}

// eachBackend runs f as a parallel subtest on each database engine the
// sidecar serves (PostgreSQL, SQLite), and on PostgreSQL with the change
// feed on; each world has its own database.
func eachBackend(t *testing.T, f func(t *testing.T, be testenv.Backend)) {
	t.Helper()
	t.Parallel()
	for _, be := range append(testenv.Backends, testenv.FeedBackend) {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f(t, be)
		})
	}
}

// newWorldWith is newWorld with the store wrapped, to hold or fail calls.
func newWorldWith(t *testing.T, be testenv.Backend, status string, wrap func(consumer.Store) consumer.Store, opts ...option) *world {
	t.Helper()
	db := be.New(t)
	w := &world{t: t, db: db, media: t.TempDir()}
	w.listener = db.CreateUser(t, "listener@example.com", "Lena Listener", "listener")
	w.talker = db.CreateUser(t, "talker@example.com", "", "talker")
	w.conv = db.CreateConversation(t, w.listener, w.talker, status)
	w.tokens = testenv.Mint(secretKey, w.listener, w.talker)
	w.start(wrap, opts...)
	return w
}

// start runs the application main runs, built by app.New, on a loopback
// port, with the e2e settings and opts.
func (w *world) start(wrap func(consumer.Store) consumer.Store, opts ...option) {
	t := w.t
	cfg := config.Default()
	cfg.DatabaseURL = w.db.DSN
	cfg.SecretKey = secretKey
	cfg.MediaRoot = w.media
	cfg.PublicBaseURL = publicBase
	cfg.AllowedHosts = []string{"chat.example.com", ".example.org"}
	cfg.DrainTimeout = 10 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.New(context.Background(), cfg, log, app.Options{
		WrapStore: wrap,
		WrapLayer: func(l consumer.Layer) consumer.Layer { w.layer = &recordingLayer{Layer: l}; return w.layer },
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.app, w.url = a, "http://"+ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	w.served = make(chan error, 1)
	go func() { w.served <- a.Serve(ctx, ln) }()
	var once sync.Once
	w.stop = func() { once.Do(cancel) }
	t.Cleanup(func() {
		w.stop()
		if err := <-w.served; err != nil {
			t.Errorf("serve: %v", err)
		}
		a.Close()
	})
}

// testWriter sends the server's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// recordingLayer is the channel layer, remembering every group send.
type recordingLayer struct {
	consumer.Layer
	mu    sync.Mutex
	sends []sent
}

type sent struct {
	group string
	event pyjson.Object
}

func (l *recordingLayer) GroupSend(ctx context.Context, group string, event pyjson.Object) error {
	l.mu.Lock()
	l.sends = append(l.sends, sent{group, event})
	l.mu.Unlock()
	return l.Layer.GroupSend(ctx, group, event)
}

func (l *recordingLayer) sentTo(group string) []pyjson.Object {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []pyjson.Object
	for _, s := range l.sends {
		if s.group == group {
			out = append(out, s.event)
		}
	}
	return out
}

// wsURL is the sidecar's URL for path with the token in the query string.
func (w *world) wsURL(path, token string) string {
	u := "ws" + strings.TrimPrefix(w.url, "http") + path
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	return u
}

// client is a real WebSocket client.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

// dial connects and returns the handshake's response (nil client when refused).
func (w *world) dial(path, token string, header http.Header) (*client, *http.Response, error) {
	ws, resp, err := websocket.DefaultDialer.Dial(w.wsURL(path, token), header)
	if err != nil {
		return nil, resp, err
	}
	c := &client{t: w.t, ws: ws}
	w.t.Cleanup(func() { ws.Close() })
	return c, resp, nil
}

// connect connects user to the world's conversation and reads the three
// connect frames.
func (w *world) connect(user int64) *client {
	w.t.Helper()
	c, resp, err := w.dial(w.chatPath(), w.tokens[user].Access, nil)
	if err != nil {
		w.t.Fatalf("connect user %d: %v (response %v)", user, err, status(resp))
	}
	for _, want := range []string{"connection_established", "api_info", "conversation_history"} {
		c.expectType(want)
	}
	return c
}

func (w *world) chatPath() string { return "/ws/chat/" + itoa(w.conv) + "/" }

func status(resp *http.Response) string {
	if resp == nil {
		return "none"
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b)
}

// refused asserts that the handshake is answered with HTTP 403.
func (w *world) refused(path, token string, header http.Header) {
	w.t.Helper()
	c, resp, err := w.dial(path, token, header)
	if err == nil {
		c.ws.Close()
		w.t.Fatalf("dial %s: accepted, want 403", path)
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		w.t.Fatalf("dial %s: %v (%s), want 403", path, err, status(resp))
	}
}

// raw returns the next text frame as written.
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

// next returns the next frame, decoded.
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
		c.t.Fatalf("frame type %v, want %s: %s", got, typ, mustJSON(f))
	}
	return f
}

// expectError asserts that the next frame is the error frame with text.
func (c *client) expectError(text string) {
	c.t.Helper()
	got := c.raw()
	want := mustJSON(pyjson.Object{{Key: "type", Value: "error"}, {Key: "message", Value: text}})
	if got != want {
		c.t.Fatalf("frame\n got %s\nwant %s", got, want)
	}
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("send %s: %v", frame, err)
	}
}

func (c *client) sendJSON(o pyjson.Object) { c.t.Helper(); c.send(mustJSON(o)) }

// barrier proves that nothing was sent to the others before it: sender
// sends mark_read (never blocked), so every other participant's next frame
// must be its read_receipt.
func barrier(sender *client, others ...*client) {
	sender.t.Helper()
	sender.send(`{"type": "mark_read"}`)
	for _, o := range others {
		o.expectType("read_receipt")
	}
}

// closeCode reads until the connection ends and returns the close code.
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
		if ce, ok := err.(*websocket.CloseError); ok {
			return ce.Code
		}
		c.t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func mustJSON(v pyjson.Value) string {
	b, err := pyjson.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// count runs a counting query on the world's database.
func (w *world) count(query string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.DB.QueryRow(query, args...).Scan(&n); err != nil {
		w.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (w *world) messages() int {
	return w.count(`SELECT count(*) FROM chat_message WHERE conversation_id = $1`, w.conv)
}

// files lists the files under MEDIA_ROOT, relative, with forward slashes.
func (w *world) files() []string {
	w.t.Helper()
	var out []string
	root := w.media
	err := walk(root, func(rel string) { out = append(out, rel) })
	if err != nil {
		w.t.Fatal(err)
	}
	return out
}

func lastMessageAt(t *testing.T, db *sql.DB, conv int64) djangodb.Timestamp {
	t.Helper()
	var ts djangodb.Timestamp
	if err := db.QueryRow(`SELECT last_message_at FROM chat_conversation WHERE id = $1`, conv).Scan(&ts); err != nil {
		t.Fatal(err)
	}
	return ts
}

// testenvMint mints access tokens for users created during a test.
func testenvMint(t *testing.T, w *world, ids ...int64) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for id, tok := range testenv.Mint(secretKey, ids...) {
		out[id] = tok.Access
	}
	return out
}
