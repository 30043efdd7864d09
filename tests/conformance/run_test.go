package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// frameWait bounds each wait for a frame or a close.
const frameWait = 5 * time.Second

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
}

type fixture struct {
	users  map[string]int64
	tokens map[string]testenv.Tokens
	conv   int64
}

// setupFixtures creates the users and conversations of every scenario of f
// and mints their tokens with one manage.py run.
func setupFixtures(t *testing.T, db *testenv.Database, f *File) map[*Scenario]*fixture {
	t.Helper()
	out := map[*Scenario]*fixture{}
	var all []int64
	for i, sc := range f.Scenarios {
		fx := &fixture{users: map[string]int64{}}
		for _, a := range sc.Actors {
			email := fmt.Sprintf("%s@s%d.%s.example.com", a.Name, i+1, f.Name)
			email = strings.ReplaceAll(email, "_", "-")
			id := db.CreateUser(t, email, a.FullName, a.Type)
			if a.Inactive {
				db.SetUserActive(t, id, false)
			}
			fx.users[a.Name] = id
			all = append(all, id)
		}
		if sc.ConvID > 0 {
			setNextConvID(t, db, sc.ConvID)
		}
		fx.conv = db.CreateConversation(t, fx.users[sc.Listener], fx.users[sc.Talker], sc.Status)
		if sc.ConvID > 0 && fx.conv != sc.ConvID {
			t.Fatalf("scenario %s: conversation got id %d, want %d", sc.Name, fx.conv, sc.ConvID)
		}
		out[sc] = fx
	}
	toks := testenv.MintTokens(t, db.DSN, []string{"SECRET_KEY=" + secretKey}, all...)
	for _, sc := range f.Scenarios {
		fx := out[sc]
		fx.tokens = map[string]testenv.Tokens{}
		for name, id := range fx.users {
			fx.tokens[name] = toks[id]
		}
	}
	return out
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
	ws     *websocket.Conn
	events chan event
	ended  bool // a close or read error was observed
}

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
	// Frames nobody expected: a final barrier on every open connection.
	end := &Step{Line: 0, Text: "(end of scenario)", Op: "end"}
	for _, name := range sortedKeys(r.conns) {
		c := r.conns[name]
		if c.ended {
			continue
		}
		r.barrier(end, c, "leftover")
		c.ws.Close()
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
		r.exec(st, `UPDATE chat_conversation SET status = $2, updated_at = $3 WHERE id = $1`, r.fx.conv, st.Args[0],
			r.s.db.Time(time.Now().UTC().Truncate(time.Microsecond)))
	case "delete_conversation":
		r.exec(st, `DELETE FROM chat_fileattachment WHERE message_id IN (SELECT id FROM chat_message WHERE conversation_id = $1)`, r.fx.conv)
		r.exec(st, `DELETE FROM chat_message WHERE conversation_id = $1`, r.fx.conv)
		r.exec(st, `DELETE FROM chat_conversation WHERE id = $1`, r.fx.conv)
	case "sql":
		q := strings.ReplaceAll(st.Rest, "{conv}", strconv.FormatInt(r.fx.conv, 10))
		if _, err := r.s.db.DB.Exec(q); err != nil {
			r.add(st, "", "error", "sql: "+err.Error(), "")
		} else {
			r.add(st, "", "sql", "ok", "")
		}
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
		return signToken(map[string]any{"user_id": nil}, secretKey), true
	case "nouser":
		return signToken(map[string]any{"user_id": 987654321}, secretKey), true
	case "expired":
		return signToken(map[string]any{"user_id": uid, "exp": time.Now().Add(-time.Hour).Unix()}, secretKey), true
	case "badsig":
		return signToken(map[string]any{"user_id": uid}, "some-other-key"), true
	case "notype":
		return signToken(map[string]any{"user_id": uid, "token_type": nil}, secretKey), true
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
	path = strings.ReplaceAll(path, "{conv}", strconv.FormatInt(r.fx.conv, 10))
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
	c := &conn{name: st.Conn, ws: ws, events: make(chan event, 1024)}
	r.conns[st.Conn] = c
	go c.read()
	if !raw {
		for i := 0; i < 3; i++ {
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

func (c *conn) wait() (event, bool) {
	select {
	case ev, ok := <-c.events:
		if !ok {
			return event{kind: "gone", text: "connection already ended"}, true
		}
		return ev, true
	case <-time.After(frameWait):
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
	ev, ok := c.wait()
	r.record(st, c, ev, ok, "frame", want)
}

const barrierFrame = `{"type": "__barrier__"}`
const barrierReply = `{"type": "error", "message": "Unknown message type: __barrier__"}`

// barrier makes c send a frame whose only answer is an error to c itself;
// every frame before that answer is recorded as kind (none: the step
// expected nothing).
func (r *runner) barrier(st *Step, c *conn, kind string) {
	if err := c.ws.WriteMessage(websocket.TextMessage, []byte(barrierFrame)); err != nil {
		r.add(st, c.name, "error", "barrier write: "+err.Error(), "")
		return
	}
	r.drainUntil(st, c, kind, barrierReply)
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
	r.drainUntil(st, c, "none", fmt.Sprintf(`{"type": "read_receipt", "user_id": %d}`, uid))
}

func (r *runner) drainUntil(st *Step, c *conn, kind, stop string) {
	for {
		ev, ok := c.wait()
		if ok && ev.kind == "frame" && ev.text == stop {
			if kind == "none" {
				r.add(st, c.name, "none", "(nothing)", "(nothing)")
			}
			return
		}
		want := ""
		if kind == "none" {
			want = "(nothing)"
		}
		r.record(st, c, ev, ok, kind, want)
		if !ok || ev.kind != "frame" {
			return
		}
	}
}

func (r *runner) rest(st *Step) {
	endpoint := "/api/listener/profiles/block_talker/"
	if st.Op == "unblock" {
		endpoint = "/api/listener/profiles/unblock_talker/"
	}
	body := fmt.Sprintf(`{"talker_id": %d}`, r.fx.users[r.sc.Talker])
	req, _ := http.NewRequest("POST", "http://"+r.s.rest+endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.fx.tokens[r.sc.Listener].Access)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		r.add(st, "", "rest", "error: "+err.Error(), "")
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		r.add(st, "", "rest", fmt.Sprintf("HTTP %d %s", resp.StatusCode, bytes.TrimSpace(b)), "HTTP 200")
		return
	}
	r.add(st, "", "rest", "HTTP 200", "HTTP 200")
}

func (r *runner) count(st *Step) {
	if len(st.Args) != 2 {
		r.add(st, "", "error", "scenario: want db_count <what> <n>", "")
		return
	}
	what := st.Args[0]
	var q string
	var args []any
	switch what {
	case "chat_message", "messages":
		q, args = `SELECT count(*) FROM chat_message WHERE conversation_id = $1`, []any{r.fx.conv}
	case "unread":
		q, args = `SELECT count(*) FROM chat_message WHERE conversation_id = $1 AND NOT is_read`, []any{r.fx.conv}
	case "chat_fileattachment", "attachments":
		q, args = `SELECT count(*) FROM chat_fileattachment a JOIN chat_message m ON m.id = a.message_id WHERE m.conversation_id = $1`, []any{r.fx.conv}
	case "listener_listenerblockedtalker", "blocks":
		q, args = `SELECT count(*) FROM listener_listenerblockedtalker WHERE listener_id = $1 AND talker_id = $2`,
			[]any{r.fx.users[r.sc.Listener], r.fx.users[r.sc.Talker]}
	case "last_message_at":
		q, args = `SELECT count(*) FROM chat_conversation WHERE id = $1 AND last_message_at IS NOT NULL`, []any{r.fx.conv}
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
		default:
			e.Norm = e.Raw
		}
	}
}
