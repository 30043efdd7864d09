// Package mixed runs the sidecar beside the real Python stack on one
// channels_redis layer: REST uploads reaching sidecar clients, sidecar
// messages reaching Python consumers, conversations split across Daphne and
// several sidecars, and Redis restarting under traffic.
package mixed

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

const (
	secretKey = "mixed-secret-key-not-for-production"
	frameWait = 30 * time.Second // a deadlock guard, not a speed requirement
)

// redisURL is the shared Redis the tests use, each with its own prefix.
func redisURL(t *testing.T) string {
	t.Helper()
	return testenv.SharedRedis(t)
}

// stack is one database, one Redis prefix, and the processes on them.
type stack struct {
	t        *testing.T
	db       *testenv.Database
	env      []string
	listener int64
	talker   int64
	conv     int64
	tokens   map[int64]testenv.Tokens
}

func newStack(t *testing.T, redisURLs string) *stack {
	t.Helper()
	return newStackOn(t, testenv.Postgres(t), redisURLs)
}

// newStackOn is newStack on a given database.
func newStackOn(t *testing.T, db *testenv.Database, redisURLs string) *stack {
	t.Helper()
	s := &stack{t: t, db: db}
	s.listener = db.CreateUser(t, "listener@example.com", "Lena Listener", "listener")
	s.talker = db.CreateUser(t, "talker@example.com", "", "talker")
	s.conv = db.CreateConversation(t, s.listener, s.talker, "active")
	s.env = []string{
		"DATABASE_URL=" + db.DSN, "SECRET_KEY=" + secretKey, "CHANNEL_LAYER=redis", "REDIS_URL=" + redisURLs,
		"CHANNEL_LAYER_PREFIX=asgi" + randHex(6), "MEDIA_ROOT=" + t.TempDir(),
		"PUBLIC_BASE_URL=http://testserver", "ALLOWED_HOSTS=*",
	}
	s.tokens = testenv.Mint(secretKey, s.listener, s.talker)
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *stack) daphne() string  { return testenv.StartDaphne(s.t, s.env).Addr }
func (s *stack) sidecar() string { return testenv.StartSidecar(s.t, s.env).Addr }

// sidecarWith starts a sidecar with env added to the stack's.
func (s *stack) sidecarWith(env ...string) *testenv.Sidecar {
	return testenv.StartSidecar(s.t, append(append([]string{}, s.env...), env...))
}

// client is a WebSocket client of either server.
type client struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
}

func (s *stack) dial(addr, path string, user int64) (*client, *http.Response, error) {
	u := "ws://" + addr + path + "?token=" + s.tokens[user].Access
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		return nil, resp, err
	}
	s.t.Cleanup(func() { ws.Close() })
	return &client{t: s.t, name: addr + path, ws: ws}, resp, nil
}

// join connects user to the conversation on addr and reads the connect frames.
func (s *stack) join(addr string, user int64) *client {
	s.t.Helper()
	c, resp, err := s.dial(addr, "/ws/chat/"+itoa(s.conv)+"/", user)
	if err != nil {
		s.t.Fatalf("join %s as %d: %v (%v)", addr, user, err, resp)
	}
	c.expect("connection_established")
	c.expect("api_info")
	c.expect("conversation_history")
	return c
}

// inbox connects user to the conversation list on addr and reads its
// connect frames.
func (s *stack) inbox(addr string, user int64) *client {
	s.t.Helper()
	c, resp, err := s.dial(addr, "/ws/conversations/", user)
	if err != nil {
		s.t.Fatalf("ws/conversations/ on %s as %d: %v (%v)", addr, user, err, resp)
	}
	c.expect("connection_established")
	c.expect("conversation_list")
	return c
}

// notifications connects user to the notifications on addr and reads the
// first connect frame.
func (s *stack) notifications(addr string, user int64) *client {
	s.t.Helper()
	c, resp, err := s.dial(addr, "/ws/notifications/", user)
	if err != nil {
		s.t.Fatalf("ws/notifications/ on %s as %d: %v (%v)", addr, user, err, resp)
	}
	c.expect("connection_established")
	return c
}

func (s *stack) refused(addr string, user int64) {
	s.t.Helper()
	_, resp, err := s.dial(addr, "/ws/chat/"+itoa(s.conv)+"/", user)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		s.t.Errorf("connect to %s as %d: %v %v, want 403", addr, user, err, resp)
	}
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatalf("%s: send: %v", c.name, err)
	}
}

func (c *client) next() pyjson.Object {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(frameWait))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("%s: read: %v", c.name, err)
	}
	v, err := pyjson.Decode(data)
	if err != nil {
		c.t.Fatalf("%s: frame %q: %v", c.name, data, err)
	}
	return v.(pyjson.Object)
}

// frames hands the client's frames to a channel, read by a goroutine of
// its own (a read deadline would break the connection); from then on, read
// only from the channel.
func (c *client) frames() <-chan pyjson.Object {
	out := make(chan pyjson.Object, 64)
	go func() {
		defer close(out)
		for {
			_ = c.ws.SetReadDeadline(time.Time{})
			_, data, err := c.ws.ReadMessage()
			if err != nil {
				return
			}
			if v, err := pyjson.Decode(data); err == nil {
				if o, ok := v.(pyjson.Object); ok {
					out <- o
				}
			}
		}
	}()
	return out
}

func (c *client) expect(typ string) pyjson.Object {
	c.t.Helper()
	f := c.next()
	if get(f, "type") != typ {
		c.t.Fatalf("%s: frame %s, want type %s", c.name, dump(f), typ)
	}
	return f
}

func (c *client) expectError(text string) {
	c.t.Helper()
	f := c.expect("error")
	if get(f, "message") != text {
		c.t.Fatalf("%s: error %q, want %q", c.name, get(f, "message"), text)
	}
}

func get(o pyjson.Object, key string) pyjson.Value {
	v, _ := o.Get(key)
	return v
}

func dump(v pyjson.Value) string {
	b, err := pyjson.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// rest calls the Python REST API as user.
func (s *stack) rest(addr, path string, user int64, contentType string, body io.Reader) (int, []byte) {
	s.t.Helper()
	code, b, err := s.post(addr, path, user, contentType, body)
	if err != nil {
		s.t.Fatal(err)
	}
	return code, b
}

// restNoFail is rest for another goroutine than the test's: a transport
// failure is status 0.
func (s *stack) restNoFail(addr, path string, user int64, contentType, body string) (int, string) {
	code, b, err := s.post(addr, path, user, contentType, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	return code, string(b)
}

func (s *stack) post(addr, path string, user int64, contentType string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.tokens[user].Access)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (s *stack) block(addr string, on bool) {
	s.t.Helper()
	path := "/api/listener/profiles/unblock_talker/"
	if on {
		path = "/api/listener/profiles/block_talker/"
	}
	code, body := s.rest(addr, path, s.listener, "application/json", strings.NewReader(`{"talker_id": `+itoa(s.talker)+`}`))
	if code/100 != 2 {
		s.t.Fatalf("%s: %d %s", path, code, body)
	}
}

func (s *stack) upload(addr string, user int64, name string, data []byte, caption string) []byte {
	s.t.Helper()
	ct, form := multipartFile(name, data, caption)
	code, body := s.rest(addr, "/api/chat/conversations/"+itoa(s.conv)+"/upload_file/", user, ct, form)
	if code != http.StatusCreated {
		s.t.Fatalf("upload: %d %s", code, body)
	}
	return body
}

// uploadNoFail is upload for another goroutine than the test's.
func (s *stack) uploadNoFail(addr string, user int64, name string, data []byte) (int, string) {
	ct, form := multipartFile(name, data, "")
	return s.restNoFail(addr, "/api/chat/conversations/"+itoa(s.conv)+"/upload_file/", user, ct, form.String())
}

// multipartFile is the upload endpoint's form: file and content.
func multipartFile(name string, data []byte, caption string) (string, *bytes.Buffer) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.WriteField("content", caption)
	mw.Close()
	return mw.FormDataContentType(), &buf
}

func (s *stack) messages() int {
	var n int
	if err := s.db.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1`, s.conv).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}
