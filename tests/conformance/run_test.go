package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// frameWait bounds each wait for a frame or a close.
const frameWait = 5 * time.Second

// closeWait bounds expect_close; nudgeAfter is when expect_close on a
// list or notification socket nudges its group (see nextClose).
const (
	closeWait  = 15 * time.Second
	nudgeAfter = time.Second
)

// Entry is one observation of a run: a frame, a close, a handshake outcome,
// a REST answer or a row count.
type Entry struct {
	Step *Step
	Conn string
	Kind string // handshake, frame, close, none, rest, count, leftover, error
	Raw  string // raw frame text (frames) or the outcome text
	Norm string // filled by normalisation
	Want string // expectation (normalised), "" when none
}

func (e *Entry) show() string {
	if e.Conn != "" {
		return fmt.Sprintf("%s %s: %s", e.Conn, e.Kind, e.Norm)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Norm)
}

// side is one run of a scenario file: Python (Daphne serves WebSocket and
// REST) or Go (the sidecar serves WebSocket, Daphne the REST endpoints).
type side struct {
	name    string // "python" or "go"
	short   string // "py" or "go"
	backend string // testenv.Backend name: "postgres" or "sqlite"
	db      *testenv.Database
	wsAddr  string
	rest    string
	media   string
	logs    func() string
	fixture map[*Scenario]*fixture
	// layer sends events into the channel layer the side's servers share
	// (nil when the file runs on the in-memory layer).
	layer *injector
}

type fixture struct {
	users  map[string]int64
	emails map[string]string
	tokens map[string]testenv.Tokens
	// convs are the conversation ids by name: those of the scenario's
	// conversation lines, then those its create steps made.
	convs   map[string]int64
	primary string // name {conv} stands for
}

// conv is the id of the scenario's first conversation (0 when there is none).
func (fx *fixture) conv() int64 { return fx.convs[fx.primary] }

// convName is the name a conversation id was registered under.
func (fx *fixture) convName(id int64) (string, bool) {
	for name, cid := range fx.convs {
		if cid == id {
			return name, true
		}
	}
	return "", false
}

// setupFixtures creates the users and conversations of every scenario of f
// and mints their tokens with one manage.py run.
func setupFixtures(t *testing.T, db *testenv.Database, f *File) map[*Scenario]*fixture {
	t.Helper()
	out := map[*Scenario]*fixture{}
	var all []int64
	for i, sc := range f.Scenarios {
		fx := &fixture{users: map[string]int64{}, emails: map[string]string{}, convs: map[string]int64{},
			primary: defaultConvName}
		for email, name := range emailsOf(f, i, sc) {
			fx.emails[name] = email
		}
		for _, a := range sc.Actors {
			id := db.CreateUser(t, fx.emails[a.Name], a.FullName, a.Type)
			if a.Inactive {
				db.SetUserActive(t, id, false)
			}
			fx.users[a.Name] = id
			all = append(all, id)
		}
		if p := sc.primary(); p != nil {
			fx.primary = p.Name
		}
		for _, cv := range sc.Convs {
			fx.convs[cv.Name] = createConversation(t, db, fx, cv)
		}
		out[sc] = fx
	}
	toks := testenv.Mint(secretKey, all...)
	for _, sc := range f.Scenarios {
		fx := out[sc]
		fx.tokens = map[string]testenv.Tokens{}
		for name, id := range fx.users {
			fx.tokens[name] = toks[id]
		}
	}
	return out
}

// createConversation inserts a conversation line's row as testenv does,
// then sets what the line adds (initial message, times).
func createConversation(t *testing.T, db *testenv.Database, fx *fixture, cv *ConvSpec) int64 {
	t.Helper()
	if cv.ID > 0 {
		setNextConvID(t, db, cv.ID)
	}
	id := db.CreateConversation(t, fx.users[cv.Listener], fx.users[cv.Talker], cv.Status)
	if cv.ID > 0 && id != cv.ID {
		t.Fatalf("line %d: conversation got id %d, want %d", cv.Line, id, cv.ID)
	}
	set := func(col string, v any) {
		if _, err := db.DB.Exec(`UPDATE chat_conversation SET `+col+` = $2 WHERE id = $1`, id, v); err != nil {
			t.Fatalf("line %d: set conversation %s: %v", cv.Line, col, err)
		}
	}
	if cv.Initial != "" {
		set("initial_message", cv.Initial)
	}
	if !cv.CreatedAt.IsZero() {
		set("created_at", db.Time(cv.CreatedAt))
	}
	if !cv.LastMessageAt.IsZero() {
		set("last_message_at", db.Time(cv.LastMessageAt))
	}
	return id
}

// setNextConvID makes id the next id chat_conversation hands out: the
// sequence on PostgreSQL, sqlite_sequence on SQLite (Django's SQLite
// primary keys are AUTOINCREMENT).
func setNextConvID(t *testing.T, db *testenv.Database, id int64) {
	t.Helper()
	var err error
	if db.Dialect == djangodb.SQLite {
		if _, err = db.DB.Exec(`DELETE FROM sqlite_sequence WHERE name = 'chat_conversation'`); err == nil {
			_, err = db.DB.Exec(`INSERT INTO sqlite_sequence (name, seq) VALUES ('chat_conversation', $1)`, id-1)
		}
	} else {
		_, err = db.DB.Exec(`SELECT setval('chat_conversation_id_seq', $1, false)`, id)
	}
	if err != nil {
		t.Fatalf("set conversation id: %v", err)
	}
}

// emailOf is the address setupFixtures gave actor a of scenario i.
func emailsOf(f *File, idx int, sc *Scenario) map[string]string {
	m := map[string]string{}
	for _, a := range sc.Actors {
		e := strings.ReplaceAll(fmt.Sprintf("%s@s%d.%s.example.com", a.Name, idx+1, f.Name), "_", "-")
		m[e] = a.Name
	}
	return m
}

// runner plays one scenario on one side.
type runner struct {
	s      *side
	sc     *Scenario
	fx     *fixture
	conns  map[string]*conn
	out    []*Entry
	files0 int
}

type event struct {
	kind string // frame, binary, close, gone
	text string
	code int
}

type conn struct {
	name   string
	route  string // routeOf its path: chat, conversations, notifications or ""
	ws     *websocket.Conn
	events chan event
	ended  bool // a close or read error was observed
}

// connectFrames is how many frames each route sends on every accepted
// connection (recorded by connect without raw). The notification route's
// pending list depends on the data: a scenario expects it as a frame of its own.
var connectFrames = map[string]int{"chat": 3, "conversations": 2, "notifications": 1}

func (r *runner) add(st *Step, c, kind, raw, want string) *Entry {
	e := &Entry{Step: st, Conn: c, Kind: kind, Raw: raw, Want: want}
	r.out = append(r.out, e)
	return e
}

func (r *runner) play() []*Entry {
	r.conns = map[string]*conn{}
	r.files0 = countFiles(r.s.media)
	for _, st := range r.sc.Steps {
		if st.Side != "" && st.Side != r.s.short || !st.on(r.s.backend) {
			continue
		}
		r.step(st)
	}
	// Frames nobody expected: a final barrier on every open connection,
	// all before the first close (a socket closing on channels_redis can
	// lose a message in flight to another socket of the same process).
	end := &Step{Line: 0, Text: "(end of scenario)", Op: "end"}
	names := sortedKeys(r.conns)
	for _, name := range names {
		if c := r.conns[name]; !c.ended {
			r.barrier(end, c, "leftover")
		}
	}
	for _, name := range names {
		r.conns[name].ws.Close()
	}
	return r.out
}

func sortedKeys(m map[string]*conn) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func (r *runner) step(st *Step) {
	switch st.Op {
	case "connect":
		r.connect(st)
	case "send", "send_binary":
		c := r.conns[st.Conn]
		if c == nil || c.ended {
			r.add(st, st.Conn, "error", "no open connection", "")
			return
		}
		var err error
		if st.Op == "send" {
			err = c.ws.WriteMessage(websocket.TextMessage, []byte(st.Rest))
		} else {
			payload := []byte{0x00, 0x01, 0xfe, 0xff}
			if len(st.Args) > 0 {
				payload = []byte(strings.Join(st.Args, " "))
			}
			err = c.ws.WriteMessage(websocket.BinaryMessage, payload)
		}
		if err != nil {
			r.add(st, st.Conn, "error", "write: "+err.Error(), "")
		}
	case "expect", "recv":
		want := ""
		if st.Op == "expect" {
			w, err := normExpected(st.Rest)
			if err != nil {
				r.add(st, st.Conn, "error", "scenario: expected frame is not JSON: "+err.Error(), "")
				return
			}
			want = w
		}
		r.next(st, st.Conn, want)
	case "expect_close":
		want := "close"
		if len(st.Args) > 0 {
			want = "close " + st.Args[0]
		}
		r.nextClose(st, want)
	case "expect_none":
		c := r.conns[st.Conn]
		if c == nil || c.ended {
			r.add(st, st.Conn, "error", "no open connection", "")
			return
		}
		if len(st.Args) >= 2 && st.Args[0] == "via" {
			r.barrierVia(st, c, r.conns[st.Args[1]])
		} else {
			r.barrier(st, c, "none")
		}
	case "close":
		c := r.conns[st.Conn]
		if c == nil || c.ended {
			r.add(st, st.Conn, "error", "no open connection", "")
			return
		}
		c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		for {
			ev, ok := c.wait()
			if !ok {
				r.add(st, st.Conn, "close", "no close answer within "+frameWait.String(), "")
				break
			}
			if ev.kind == "close" || ev.kind == "gone" {
				break // the echo of our own close: not part of the contract
			}
			r.add(st, st.Conn, "frame", ev.text, "")
		}
		c.ended = true
		c.ws.Close()
	case "block", "unblock":
		r.rest(st)
	case "set_status":
		if len(st.Args) != 1 {
			r.add(st, "", "error", "set_status needs a status", "")
			return
		}
		if conv, ok := r.primary(st); ok {
			r.exec(st, `UPDATE chat_conversation SET status = $2, updated_at = $3 WHERE id = $1`, conv, st.Args[0],
				r.s.db.Time(time.Now().UTC().Truncate(time.Microsecond)))
		}
	case "delete_conversation":
		if conv, ok := r.primary(st); ok {
			r.exec(st, `DELETE FROM chat_fileattachment WHERE message_id IN (SELECT id FROM chat_message WHERE conversation_id = $1)`, conv)
			r.exec(st, `DELETE FROM chat_message WHERE conversation_id = $1`, conv)
			r.exec(st, `DELETE FROM chat_conversation WHERE id = $1`, conv)
		}
	case "sql":
		q, err := r.subst(st.Rest)
		if err != nil {
			r.add(st, "", "error", "scenario: "+err.Error(), "")
			return
		}
		if _, err := r.s.db.DB.Exec(q); err != nil {
			r.add(st, "", "error", "sql: "+err.Error(), "")
		} else {
			r.add(st, "", "sql", "ok", "")
		}
	case "message":
		r.message(st)
	case "group_send":
		r.groupSend(st)
	case "create", "accept", "reject":
		r.conversationREST(st)
	case "db_count":
		r.count(st)
	default:
		r.add(st, "", "error", "unknown step "+st.Op, "")
	}
}

func (r *runner) exec(st *Step, q string, args ...any) {
	if _, err := r.s.db.DB.Exec(q, args...); err != nil {
		r.add(st, "", "error", st.Op+": "+err.Error(), "")
	}
}

// primary is the id of the scenario's first conversation; a step that
// needs it when there is none records an error.
func (r *runner) primary(st *Step) (int64, bool) {
	if id := r.fx.conv(); id != 0 {
		return id, true
	}
	r.add(st, "", "error", "scenario: "+st.Op+" needs a conversation, and there is none named "+r.fx.primary, "")
	return 0, false
}

var substRe = regexp.MustCompile(`\{(conv|user|email)(?::([\w-]+))?\}`)

// subst replaces {conv} (the first conversation's id), {conv:<name>},
// {user:<actor>} (a user id) and {email:<actor>} in s.
func (r *runner) subst(s string) (string, error) {
	var err error
	out := substRe.ReplaceAllStringFunc(s, func(m string) string {
		g := substRe.FindStringSubmatch(m)
		kind, name := g[1], g[2]
		switch {
		case kind == "conv":
			if name == "" {
				name = r.fx.primary
			}
			if id, ok := r.fx.convs[name]; ok {
				return strconv.FormatInt(id, 10)
			}
			err = fmt.Errorf("%s: no conversation named %q (yet)", m, name)
		case name == "":
			err = fmt.Errorf("%s: name an actor, {%s:<actor>}", m, kind)
		case kind == "user":
			if id, ok := r.fx.users[name]; ok {
				return strconv.FormatInt(id, 10)
			}
			err = fmt.Errorf("%s: no actor %q", m, name)
		default:
			if e, ok := r.fx.emails[name]; ok {
				return e
			}
			err = fmt.Errorf("%s: no actor %q", m, name)
		}
		return m
	})
	return out, err
}

// token picks the token of a connect step.
func (r *runner) token(st *Step, actor string, kind string) (string, bool) {
	uid := r.fx.users[actor]
	switch kind {
	case "", "access":
		return r.fx.tokens[actor].Access, true
	case "refresh":
		return r.fx.tokens[actor].Refresh, true
	case "none":
		return "", false
	case "empty":
		return "", true
	case "garbage":
		return "not-a-jwt", true
	case "noclaim":
		return auth.Mint(secretKey, odd(nil, "access", time.Hour)), true
	case "nouser":
		return auth.Mint(secretKey, odd(int64(987654321), "access", time.Hour)), true
	case "expired":
		return auth.Mint(secretKey, odd(uid, "access", -time.Hour)), true
	case "badsig":
		return auth.Mint("some-other-key", odd(uid, "access", time.Hour)), true
	case "notype":
		return auth.Mint(secretKey, odd(uid, "", time.Hour)), true
	}
	if other, ok := strings.CutPrefix(kind, "of:"); ok {
		return r.fx.tokens[other].Access, true
	}
	r.add(st, st.Conn, "error", "scenario: unknown token kind "+kind, "")
	return "", false
}

func (r *runner) connect(st *Step) {
	actor := actorOf(st.Conn)
	path := "/ws/chat/{conv}/"
	origin, tokKind, raw := "", "", false
	want := "accepted"
	for i := 0; i < len(st.Args); i++ {
		a := st.Args[i]
		switch {
		case strings.HasPrefix(a, "path="):
			path = strings.TrimPrefix(a, "path=")
		case strings.HasPrefix(a, "origin="):
			origin = strings.TrimPrefix(a, "origin=")
		case strings.HasPrefix(a, "token="):
			tokKind = strings.TrimPrefix(a, "token=")
		case a == "raw":
			raw = true
		case a == "=>":
			want = strings.Join(st.Args[i+1:], " ")
			i = len(st.Args)
		default:
			r.add(st, st.Conn, "error", "scenario: unknown connect option "+a, "")
			return
		}
	}
	path, err := r.subst(path)
	if err != nil {
		r.add(st, st.Conn, "error", "scenario: "+err.Error(), "")
		return
	}
	u := "ws://" + r.s.wsAddr + path
	if tok, ok := r.token(st, actor, tokKind); ok {
		u += "?token=" + url.QueryEscape(tok)
	}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(u, h)
	if err != nil {
		outcome := "failed: " + err.Error()
		if resp != nil {
			outcome = fmt.Sprintf("refused %d", resp.StatusCode)
		}
		r.add(st, st.Conn, "handshake", outcome, want)
		return
	}
	r.add(st, st.Conn, "handshake", "accepted", want)
	if old := r.conns[st.Conn]; old != nil && !old.ended {
		old.ws.Close()
	}
	c := &conn{name: st.Conn, route: routeOf(path), ws: ws, events: make(chan event, 1024)}
	r.conns[st.Conn] = c
	go c.read()
	if !raw {
		for i := 0; i < connectFrames[c.route]; i++ {
			r.next(st, st.Conn, "")
		}
	}
}

func (c *conn) read() {
	defer close(c.events)
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.events <- event{kind: "close", code: ce.Code}
			} else {
				c.events <- event{kind: "gone", text: err.Error()}
			}
			return
		}
		if mt == websocket.BinaryMessage {
			c.events <- event{kind: "binary", text: fmt.Sprintf("%x", data)}
		} else {
			c.events <- event{kind: "frame", text: string(data)}
		}
	}
}

// wait returns c's next event, passing over the answers to barriers sent
// through the layer (they reach every connection of the user's group, and
// belong to the barrier that waits for them).
func (c *conn) wait() (event, bool) { return c.waitFor(frameWait) }

func (c *conn) waitFor(d time.Duration) (event, bool) {
	for {
		ev, ok := c.waitAnyFor(d)
		if ok && ev.kind == "frame" {
			if _, isBarrier := layerBarrier(ev.text); isBarrier {
				continue
			}
		}
		return ev, ok
	}
}

func (c *conn) waitAny() (event, bool) { return c.waitAnyFor(frameWait) }

func (c *conn) waitAnyFor(d time.Duration) (event, bool) {
	select {
	case ev, ok := <-c.events:
		if !ok {
			return event{kind: "gone", text: "connection already ended"}, true
		}
		return ev, true
	case <-time.After(d):
		return event{}, false
	}
}

// record turns an event into an entry.
func (r *runner) record(st *Step, c *conn, ev event, ok bool, kind, want string) {
	switch {
	case !ok:
		r.add(st, c.name, kind, "<nothing within "+frameWait.String()+">", want)
	case ev.kind == "frame":
		r.add(st, c.name, kind, ev.text, want)
	case ev.kind == "close":
		c.ended = true
		r.add(st, c.name, "close", fmt.Sprintf("close %d", ev.code), want)
	default:
		c.ended = true
		r.add(st, c.name, ev.kind, ev.text, want)
	}
}

func (r *runner) next(st *Step, name, want string) {
	c := r.conns[name]
	if c == nil || c.ended {
		r.add(st, name, "error", "no open connection", want)
		return
	}
	ev, ok := c.wait()
	r.record(st, c, ev, ok, "frame", want)
}

func (r *runner) nextClose(st *Step, want string) {
	c := r.conns[st.Conn]
	if c == nil || c.ended {
		r.add(st, st.Conn, "error", "no open connection", want)
		return
	}
	ev, ok := c.waitFor(nudgeAfter)
	if !ok && r.s.layer != nil && (c.route == "conversations" || c.route == "notifications") {
		// A Python consumer that crashed on channels_redis may not end (and
		// Daphne not send 1011) until a message reaches its process: redis-py
		// 4.3 can swallow the cancellation of the BZPOPMIN it was waiting in
		// (redis/redis-py#2028) and channels_redis's receive loop goes on.
		// An event to the socket's group is such a message; live sockets
		// pass over it as over a barrier.
		n := r.s.layer.marker()
		group, event := layerBarrierEvent(c.route, r.fx.users[actorOf(c.name)], n)
		if err := r.s.layer.send(group, event); err != nil {
			r.add(st, c.name, "error", "nudge: "+err.Error(), "")
			return
		}
		ev, ok = c.waitFor(closeWait)
	} else if !ok {
		ev, ok = c.waitFor(closeWait - nudgeAfter)
	}
	if !ok {
		r.add(st, c.name, "frame", "<nothing within "+closeWait.String()+">", want)
		return
	}
	r.record(st, c, ev, ok, "frame", want)
}

const barrierFrame = `{"type": "__barrier__"}`
const barrierReply = `{"type": "error", "message": "Unknown message type: __barrier__"}`

// barrier makes sure every frame sent to c before now has arrived; each
// one is recorded as kind (none: the step expected nothing). On a chat
// socket c sends a frame whose only answer is an error to c itself. The
// conversation-list and notification sockets answer no client frame: the
// barrier is an event sent through the shared layer to the user's group,
// which the group delivers after everything sent to it before.
func (r *runner) barrier(st *Step, c *conn, kind string) {
	switch c.route {
	case "chat":
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(barrierFrame)); err != nil {
			r.add(st, c.name, "error", "barrier write: "+err.Error(), "")
			return
		}
		r.drainUntil(st, c, kind, func(text string) bool { return text == barrierReply }, nil)
	case "conversations", "notifications":
		if r.s.layer == nil {
			r.add(st, c.name, "error", "barrier: no shared channel layer on this run", "")
			return
		}
		// Any of the markers sent proves every earlier frame has arrived.
		// Another is sent when none answers for barrierRetry: the Python
		// reference can lose an event when a consumer of its process is
		// cancelled at that moment (channels_redis 4.0 on redis-py 4.3).
		mine := map[int64]bool{}
		send := func() error {
			n := r.s.layer.marker()
			mine[n] = true
			group, event := layerBarrierEvent(c.route, r.fx.users[actorOf(c.name)], n)
			return r.s.layer.send(group, event)
		}
		if err := send(); err != nil {
			r.add(st, c.name, "error", "barrier: "+err.Error(), "")
			return
		}
		r.drainUntil(st, c, kind, func(text string) bool {
			m, ok := layerBarrier(text)
			return ok && mine[m]
		}, send)
	default:
		r.add(st, c.name, "error", "barrier: no barrier for the route of this connection", "")
	}
}

// layerBarrierEvent is the event that makes a socket of route answer with
// a frame carrying marker n: a conversation_update whose conversation_id
// is -n (no conversation has a negative id), or a call_ending_notification
// whose data is {"type": "__barrier__", "n": n}.
func layerBarrierEvent(route string, user, n int64) (group, event string) {
	if route == "conversations" {
		return fmt.Sprintf("user_%d_conversations", user),
			fmt.Sprintf(`{"type": "conversation_update", "conversation_id": %d}`, -n)
	}
	return fmt.Sprintf("user_%d_notifications", user),
		fmt.Sprintf(`{"type": "call_ending_notification", "data": {"type": "__barrier__", "n": %d}}`, n)
}

// layerBarrier reports whether a frame answers a layerBarrierEvent, and its marker.
func layerBarrier(text string) (int64, bool) {
	if !strings.Contains(text, "conversation_list_updated") && !strings.Contains(text, "__barrier__") {
		return 0, false
	}
	v, err := parseOrdered(text)
	o, ok := v.(*object)
	if err != nil || !ok {
		return 0, false
	}
	switch o.vals["type"] {
	case "conversation_list_updated":
		if id, ok := num(o.vals["latest_conversation_id"]); ok && id < 0 {
			return -id, true
		}
	case "__barrier__":
		if n, ok := num(o.vals["n"]); ok && len(o.keys) == 2 {
			return n, true
		}
	}
	return 0, false
}

// barrierVia makes other send mark_read: c's next frame must be the
// read_receipt of other's user.
func (r *runner) barrierVia(st *Step, c, other *conn) {
	if other == nil || other.ended {
		r.add(st, st.Conn, "error", "barrier connection is not open", "")
		return
	}
	if err := other.ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "mark_read"}`)); err != nil {
		r.add(st, c.name, "error", "barrier write: "+err.Error(), "")
		return
	}
	uid := r.fx.users[actorOf(other.name)]
	receipt := fmt.Sprintf(`{"type": "read_receipt", "user_id": %d}`, uid)
	r.drainUntil(st, c, "none", func(text string) bool { return text == receipt }, nil)
}

// barrierRetry is how long a layer barrier waits before it sends another.
const barrierRetry = time.Second

// drainUntil records c's frames up to the one stop accepts, waiting
// frameWait at most for each; when again is not nil it is called after
// each barrierRetry without a frame.
func (r *runner) drainUntil(st *Step, c *conn, kind string, stop func(string) bool, again func() error) {
	deadline := time.Now().Add(frameWait)
	for {
		wait := time.Until(deadline)
		if again != nil && wait > barrierRetry {
			wait = barrierRetry
		}
		ev, ok := c.waitAnyFor(wait)
		if !ok && again != nil && time.Now().Before(deadline) {
			if err := again(); err != nil {
				r.add(st, c.name, "error", "barrier: "+err.Error(), "")
				return
			}
			continue
		}
		if ok && ev.kind == "frame" && stop(ev.text) {
			if kind == "none" {
				r.add(st, c.name, "none", "(nothing)", "(nothing)")
			}
			return
		}
		if _, isBarrier := layerBarrier(ev.text); ok && ev.kind == "frame" && isBarrier {
			continue // another connection's barrier, or an earlier one of ours
		}
		want := ""
		if kind == "none" {
			want = "(nothing)"
		}
		r.record(st, c, ev, ok, kind, want)
		if !ok || ev.kind != "frame" {
			return
		}
		deadline = time.Now().Add(frameWait)
	}
}

// rest blocks or unblocks the first conversation's talker as its listener.
func (r *runner) rest(st *Step) {
	cv := r.sc.primary()
	if cv == nil {
		r.add(st, "", "error", "scenario: "+st.Op+" needs a conversation line", "")
		return
	}
	endpoint := "/api/listener/profiles/block_talker/"
	if st.Op == "unblock" {
		endpoint = "/api/listener/profiles/unblock_talker/"
	}
	body := fmt.Sprintf(`{"talker_id": %d}`, r.fx.users[cv.Talker])
	code, b, err := r.post(endpoint, cv.Listener, body)
	if err != nil {
		r.add(st, "", "rest", "error: "+err.Error(), "")
		return
	}
	if code != 200 {
		r.add(st, "", "rest", fmt.Sprintf("HTTP %d %s", code, bytes.TrimSpace(b)), "HTTP 200")
		return
	}
	r.add(st, "", "rest", "HTTP 200", "HTTP 200")
}

// post sends a JSON body to the side's REST server as actor (its SimpleJWT
// access token).
func (r *runner) post(endpoint, actor, body string) (int, []byte, error) {
	req, _ := http.NewRequest("POST", "http://"+r.s.rest+endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.fx.tokens[actor].Access)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// conversationREST plays create, accept and reject: the answer's status
// (asserted after =>) and its body (asserted when the step gives one) are
// recorded; a conversation a create answers with is registered by name.
func (r *runner) conversationREST(st *Step) {
	rs, err := parseRESTStep(st.Op, st.Rest)
	if err != nil {
		r.add(st, "", "error", "scenario: "+err.Error(), "")
		return
	}
	var endpoint, body string
	if st.Op == "create" {
		endpoint = "/api/chat/conversations/"
		fields := []string{fmt.Sprintf(`"listener_id": %d`, r.fx.users[rs.Listener])}
		if rs.Initial != nil {
			b, _ := json.Marshal(*rs.Initial)
			fields = append(fields, `"initial_message": `+string(b))
		}
		body = "{" + strings.Join(fields, ", ") + "}"
	} else {
		name := rs.Conv
		if name == "" {
			name = r.fx.primary
		}
		id, ok := r.fx.convs[name]
		if !ok {
			r.add(st, "", "error", "scenario: no conversation named "+name+" (yet)", "")
			return
		}
		endpoint = fmt.Sprintf("/api/chat/conversations/%d/%s/", id, st.Op)
		body = "{}"
	}
	code, b, err := r.post(endpoint, rs.As, body)
	if err != nil {
		r.add(st, "", "rest", "error: "+err.Error(), "")
		return
	}
	want := ""
	if rs.Code != 0 {
		want = fmt.Sprintf("HTTP %d", rs.Code)
	}
	r.add(st, "", "rest", fmt.Sprintf("HTTP %d", code), want)
	r.add(st, "", "body", string(b), rs.Body)
	if st.Op == "create" && (code == 200 || code == 201) {
		r.register(st, rs.Conv, b)
	}
}

// register names the conversation a create step answered with: a known
// id keeps its name, a new one takes name= or "conv".
func (r *runner) register(st *Step, name string, body []byte) {
	var c struct{ ID int64 }
	if err := json.Unmarshal(body, &c); err != nil || c.ID == 0 {
		r.add(st, "", "error", "create: no conversation id in the answer", "")
		return
	}
	if known, ok := r.fx.convName(c.ID); ok {
		if name != "" && name != known {
			r.add(st, "", "error", fmt.Sprintf("create: the answer is conversation %s, not a new %s", known, name), "")
		}
		return
	}
	if name == "" {
		name = defaultConvName
	}
	if _, taken := r.fx.convs[name]; taken {
		r.add(st, "", "error", "create: the name "+name+" is another conversation's; use name=", "")
		return
	}
	r.fx.convs[name] = c.ID
}

// message inserts a text message as the ORM would, and sets the
// conversation's last_message_at to its time, as the chat consumer does.
func (r *runner) message(st *Step) {
	m, err := parseMessageStep(st.Rest)
	if err != nil {
		r.add(st, "", "error", "scenario: "+err.Error(), "")
		return
	}
	name := m.Conv
	if name == "" {
		name = r.fx.primary
	}
	conv, ok := r.fx.convs[name]
	if !ok {
		r.add(st, "", "error", "scenario: no conversation named "+name, "")
		return
	}
	at := m.At
	if at.IsZero() {
		at = time.Now().UTC().Truncate(time.Microsecond)
	}
	ts := r.s.db.Time(at)
	if _, err := r.s.db.DB.Exec(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
		VALUES ($1, $2, $3, 'text', $4, $5)`, conv, r.fx.users[m.Sender], m.Content, false, ts); err != nil {
		r.add(st, "", "error", "message: "+err.Error(), "")
		return
	}
	r.exec(st, `UPDATE chat_conversation SET last_message_at = $2, updated_at = $2 WHERE id = $1`, conv, ts)
	r.add(st, "", "sql", "ok", "")
}

// groupSend sends one event through manage.py group_send on the side's
// shared layer.
func (r *runner) groupSend(st *Step) {
	if r.s.layer == nil {
		r.add(st, "", "error", "group_send: no shared channel layer on this run", "")
		return
	}
	text, err := r.subst(st.Rest)
	if err != nil {
		r.add(st, "", "error", "scenario: "+err.Error(), "")
		return
	}
	group, event := cut(text)
	if err := r.s.layer.send(group, event); err != nil {
		r.add(st, "", "group_send", err.Error(), "ok")
		return
	}
	r.add(st, "", "group_send", "ok", "ok")
}

func (r *runner) count(st *Step) {
	if len(st.Args) != 2 {
		r.add(st, "", "error", "scenario: want db_count <what> <n>", "")
		return
	}
	what := st.Args[0]
	conv, ok := r.primary(st)
	if !ok {
		return
	}
	var q string
	var args []any
	switch what {
	case "chat_message", "messages":
		q, args = `SELECT count(*) FROM chat_message WHERE conversation_id = $1`, []any{conv}
	case "unread":
		q, args = `SELECT count(*) FROM chat_message WHERE conversation_id = $1 AND NOT is_read`, []any{conv}
	case "chat_fileattachment", "attachments":
		q, args = `SELECT count(*) FROM chat_fileattachment a JOIN chat_message m ON m.id = a.message_id WHERE m.conversation_id = $1`, []any{conv}
	case "listener_listenerblockedtalker", "blocks":
		q, args = `SELECT count(*) FROM listener_listenerblockedtalker WHERE listener_id = $1 AND talker_id = $2`,
			[]any{r.fx.users[r.sc.primary().Listener], r.fx.users[r.sc.primary().Talker]}
	case "last_message_at":
		q, args = `SELECT count(*) FROM chat_conversation WHERE id = $1 AND last_message_at IS NOT NULL`, []any{conv}
	case "files":
	default:
		r.add(st, "", "error", "scenario: unknown db_count "+what, "")
		return
	}
	var n int
	if what == "files" {
		n = countFiles(r.s.media) - r.files0
	} else if err := r.s.db.DB.QueryRow(q, args...).Scan(&n); err != nil {
		r.add(st, "", "error", "db_count: "+err.Error(), "")
		return
	}
	r.add(st, "", "count", fmt.Sprintf("%s = %d", what, n), fmt.Sprintf("%s = %s", what, st.Args[1]))
}

func countFiles(root string) int {
	n := 0
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// normalizeRun fills Norm of every entry.
func normalizeRun(entries []*Entry, ids *idents) {
	var frames []any
	for _, e := range entries {
		if e.Kind == "frame" || e.Kind == "leftover" || e.Kind == "none" {
			if v, err := parseOrdered(e.Raw); err == nil {
				frames = append(frames, v)
			}
		}
	}
	ids.msgs, ids.files = rankIDs(frames)
	epoch := 0
	for _, e := range entries {
		if e.Step != nil && e.Step.Op == "sql" {
			epoch++
		}
		ids.tsEpoc = epoch
		switch {
		case strings.HasPrefix(e.Raw, "<nothing") || e.Raw == "(nothing)":
			e.Norm = e.Raw
		case e.Kind == "frame" || e.Kind == "leftover" || e.Kind == "none":
			e.Norm = ids.normFrame(e.Raw)
		case e.Kind == "body":
			e.Norm = ids.normBody(e.Raw)
		default:
			e.Norm = e.Raw
		}
	}
}

// odd is a token SimpleJWT would not mint (no user id claim, a user that
// does not exist, expired, no token type), in SimpleJWT's shape otherwise.
func odd(userID any, typ string, lifetime time.Duration) auth.Token {
	now := time.Now()
	return auth.Token{Type: typ, UserID: userID, IssuedAt: now, ExpiresAt: now.Add(lifetime)}
}
