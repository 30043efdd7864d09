package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lib/pq"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

const secretKey = "faults-secret-key-not-for-production"

// The error texts of the contract the tests expect (docs/PROTOCOL.md).
const (
	errServer       = "Could not complete the request, please try again"
	errNotDelivered = "Message saved but could not be delivered to the conversation, please reconnect"
)

// Timing of the load. None of these is a speed requirement of the server
// but answerWait and the bounds each test states.
const (
	// pace is the pause between a talker's outcome and its next send: it
	// keeps the conversations' histories (which every new_message carries
	// whole) small enough for the race detector on two cores.
	pace = 25 * time.Millisecond
	// answerWait is how long a talker waits for the outcome of a send
	// before recording it unanswered, unless a test sets its own: far past
	// every bound of the server (DB_TIMEOUT, REDIS_TIMEOUT), so an
	// unanswered send is one the server will never answer.
	answerWait = 15 * time.Second
	// warmTimeout bounds the wait for every talker's first acknowledged
	// message, before any fault.
	warmTimeout = 30 * time.Second
	// connectFramesWait is a deadlock guard for the connect frames.
	connectFramesWait = 20 * time.Second
	// deliveryWait is how long the end of a test waits for the listeners
	// to have every acknowledged message.
	deliveryWait = 10 * time.Second
)

// pair is one conversation between a listener and a talker.
type pair struct {
	conv, listener, talker int64
}

// world is a Django database holding n active conversations, and the
// sidecar's environment for it.
type world struct {
	t      *testing.T
	db     *testenv.Database
	pairs  []pair
	tokens map[int64]testenv.Tokens
}

func newWorld(t *testing.T, db *testenv.Database, n int) *world {
	t.Helper()
	w := &world{t: t, db: db}
	var ids []int64
	for i := range n {
		l := db.CreateUser(t, fmt.Sprintf("listener%d@example.com", i), fmt.Sprintf("Listener %d", i), "listener")
		tk := db.CreateUser(t, fmt.Sprintf("talker%d@example.com", i), fmt.Sprintf("Talker %d", i), "talker")
		w.pairs = append(w.pairs, pair{conv: db.CreateConversation(t, l, tk, "active"), listener: l, talker: tk})
		ids = append(ids, l, tk)
	}
	w.tokens = testenv.Mint(secretKey, ids...)
	return w
}

// env is the sidecar's environment on the world's database, plus extra.
func (w *world) env(extra ...string) []string {
	return append([]string{
		"DATABASE_URL=" + w.db.DSN, "SECRET_KEY=" + secretKey, "MEDIA_ROOT=" + w.t.TempDir(),
		"PUBLIC_BASE_URL=http://testserver", "ALLOWED_HOSTS=*",
		// A closed-loop talker sends more than a person does.
		"RATE_LIMIT=0",
	}, extra...)
}

// outcome is how a send ended.
type outcome int

const (
	pending    outcome = iota
	acked              // the sender got its own new_message
	refused            // the sender got an error frame
	closed             // the connection closed first
	unanswered         // nothing within answerWait
)

func (o outcome) String() string {
	return [...]string{"pending", "acknowledged", "refused", "closed", "unanswered"}[o]
}

// send is one chat_message of a talker.
type send struct {
	content    string
	start, end time.Time
	outcome    outcome
	text       string // refused: the error frame's text
	code       int    // closed: the close code
}

func (s *send) latency() time.Duration { return s.end.Sub(s.start) }

// frame is what the tests need of a server frame, or of the connection.
type frame struct {
	typ     string // "new_message", "error", ..., "close" or "reconnected"
	text    string // error: its message
	content string // new_message: latest_message's content
	sender  int64  // new_message: latest_message's sender id
	code    int    // close: the close code (1006: none received)
}

// peer is one participant's WebSocket client. Its reader goroutine records
// every new_message it receives and, for a talker, queues every frame and
// every end of a connection for the talker's loop. When the server closes
// the connection, a peer that reconnects dials again until it is let in
// (as the app does), and what the history it then gets holds counts as
// received.
type peer struct {
	name      string
	user      int64
	url       string
	reconnect bool
	queue     bool            // keep frames for a talker's loop
	stop      <-chan struct{} // ends reconnecting

	mu        sync.Mutex
	ws        *websocket.Conn
	inbox     []frame
	delivered map[string]time.Time // latest_message content → first received in a new_message
	history   map[string]bool      // contents of the histories of reconnections
	closes    []int                // the close code of each connection's end
	notify    chan struct{}        // cap 1: inbox or state changed
	gone      chan struct{}        // closed once the last connection has ended
}

// dial connects user to conversation conv as name; with reconnect, the peer
// reconnects whenever the server closes the connection, until stop.
func (w *world) dial(addr string, conv, user int64, name string, reconnect, queue bool, stop <-chan struct{}) *peer {
	w.t.Helper()
	p := &peer{
		name: name, user: user, reconnect: reconnect, queue: queue, stop: stop,
		url:       "ws://" + addr + "/ws/chat/" + strconv.FormatInt(conv, 10) + "/?token=" + w.tokens[user].Access,
		delivered: map[string]time.Time{}, history: map[string]bool{},
		notify: make(chan struct{}, 1), gone: make(chan struct{}),
	}
	ws, _, err := p.connect()
	if err != nil {
		w.t.Fatalf("%s: %v", name, err)
	}
	p.ws = ws
	w.t.Cleanup(p.closeConn)
	go p.read()
	return p
}

// connect dials and reads the connect frames; it returns the contents of
// the conversation_history frame.
func (p *peer) connect() (*websocket.Conn, []string, error) {
	ws, resp, err := websocket.DefaultDialer.Dial(p.url, nil)
	if err != nil {
		if resp != nil {
			return nil, nil, fmt.Errorf("connect: %v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(connectFramesWait))
	var contents []string
	for _, want := range []string{"connection_established", "api_info", "conversation_history"} {
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, nil, fmt.Errorf("connect frames: %w", err)
		}
		if f := parseFrame(data); f.typ != want {
			ws.Close()
			return nil, nil, fmt.Errorf("got %s frame, want %s", f.typ, want)
		}
		if want == "conversation_history" {
			var h struct {
				Messages []struct {
					Content string `json:"content"`
				} `json:"messages"`
			}
			if err := json.Unmarshal(data, &h); err != nil {
				ws.Close()
				return nil, nil, fmt.Errorf("conversation_history: %w", err)
			}
			for _, m := range h.Messages {
				contents = append(contents, m.Content)
			}
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, contents, nil
}

func (p *peer) conn() *websocket.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ws
}

func (p *peer) closeConn() { p.conn().Close() }

// write sends a text frame; a failed write means the connection is going,
// and its end is what the caller will read.
func (p *peer) write(b []byte) { _ = p.conn().WriteMessage(websocket.TextMessage, b) }

var (
	newMessageHead = []byte(`{"type": "new_message", `)
	latestKey      = []byte(`, "latest_message": `)
)

// parseFrame reads a server frame. A new_message carries the whole history,
// so only its latest_message (at its end, as json.dumps writes it) is decoded.
func parseFrame(data []byte) frame {
	if bytes.HasPrefix(data, newMessageHead) {
		var latest struct {
			Content string `json:"content"`
			Sender  struct {
				ID int64 `json:"id"`
			} `json:"sender"`
		}
		if i := bytes.LastIndex(data, latestKey); i >= 0 && data[len(data)-1] == '}' {
			if err := json.Unmarshal(data[i+len(latestKey):len(data)-1], &latest); err == nil {
				return frame{typ: "new_message", content: latest.Content, sender: latest.Sender.ID}
			}
		}
		return frame{typ: "malformed new_message"}
	}
	var f struct {
		Type    string          `json:"type"`
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{typ: "malformed"}
	}
	out := frame{typ: f.Type}
	if f.Type == "error" {
		_ = json.Unmarshal(f.Message, &out.text)
	}
	return out
}

func (p *peer) read() {
	defer close(p.gone)
	for {
		ws := p.conn()
		_, data, err := ws.ReadMessage()
		if err == nil {
			p.received(parseFrame(data))
			continue
		}
		code := websocket.CloseAbnormalClosure
		if ce, ok := err.(*websocket.CloseError); ok {
			code = ce.Code
		}
		ws.Close()
		p.mu.Lock()
		p.closes = append(p.closes, code)
		p.mu.Unlock()
		p.received(frame{typ: "close", code: code})
		if !p.reconnect || !p.redial() {
			return
		}
	}
}

// redial connects again until it is let in or the load stops.
func (p *peer) redial() bool {
	for {
		select {
		case <-p.stop:
			return false
		default:
		}
		ws, contents, err := p.connect()
		if err == nil {
			p.mu.Lock()
			p.ws = ws
			for _, c := range contents {
				p.history[c] = true
			}
			p.mu.Unlock()
			p.received(frame{typ: "reconnected"})
			return true
		}
		select {
		case <-p.stop:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *peer) received(f frame) {
	p.mu.Lock()
	if f.typ == "new_message" {
		if _, ok := p.delivered[f.content]; !ok {
			p.delivered[f.content] = time.Now()
		}
	}
	if p.queue {
		p.inbox = append(p.inbox, f)
	}
	p.mu.Unlock()
	p.wake()
}

func (p *peer) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// next takes the oldest frame not yet taken, waiting until deadline.
func (p *peer) next(deadline time.Time) (frame, bool) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for {
		p.mu.Lock()
		if len(p.inbox) > 0 {
			f := p.inbox[0]
			p.inbox = p.inbox[1:]
			p.mu.Unlock()
			return f, true
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-t.C:
			return frame{}, false
		}
	}
}

// deliveredAt reports when a new_message with content as its latest
// message arrived.
func (p *peer) deliveredAt(content string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.delivered[content]
	return at, ok
}

// has reports whether content reached the peer: in a new_message, or in
// the history of a reconnection.
func (p *peer) has(content string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.delivered[content]
	return ok || p.history[content]
}

// closeCode returns the close code of the last connection once the peer is
// gone (its connection ended and it does not reconnect).
func (p *peer) closeCode() (int, bool) {
	select {
	case <-p.gone:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.closes[len(p.closes)-1], true
	default:
		return 0, false
	}
}

// closeCodes returns the close code of every connection that has ended.
func (p *peer) closeCodes() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.closes...)
}

// talker is a peer that sends chat messages in a closed loop.
type talker struct {
	*peer
	pair       pair
	listener   *peer
	answerWait time.Duration

	mu    sync.Mutex // guards sends and the fields of each send
	sends []*send
}

// run sends until stop is closed, or the connection closes and the talker
// does not reconnect: one message at a time, the next once the previous
// has its outcome.
func (tk *talker) run(stop <-chan struct{}) {
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		s := &send{content: fmt.Sprintf("%s #%d", tk.name, seq), start: time.Now()}
		tk.mu.Lock()
		tk.sends = append(tk.sends, s)
		tk.mu.Unlock()
		msg, _ := json.Marshal(map[string]string{"type": "chat_message", "message": s.content})
		tk.write(msg)
		if tk.await(s) == closed && !tk.reconnected(stop) {
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(pace):
		}
	}
}

// await reads frames until s has its outcome.
func (tk *talker) await(s *send) outcome {
	deadline := s.start.Add(tk.answerWait)
	for {
		f, ok := tk.next(deadline)
		now := time.Now()
		var o outcome
		switch {
		case !ok:
			o = unanswered
		case f.typ == "new_message" && f.content == s.content && f.sender == tk.user:
			o = acked
		case f.typ == "error":
			o = refused
		case f.typ == "close":
			o = closed
		default:
			continue // someone else's message, or a late one of ours
		}
		tk.mu.Lock()
		s.outcome, s.end, s.text, s.code = o, now, f.text, f.code
		tk.mu.Unlock()
		return o
	}
}

// reconnected waits until the peer has reconnected after a close; it
// reports false when it will not.
func (tk *talker) reconnected(stop <-chan struct{}) bool {
	for {
		f, ok := tk.next(time.Now().Add(50 * time.Millisecond))
		switch {
		case ok && f.typ == "reconnected":
			return true
		case ok:
			continue
		}
		select {
		case <-stop:
			return false
		case <-tk.gone:
			return false
		default:
		}
	}
}

// snapshot copies the talker's sends.
func (tk *talker) snapshot() []send {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	out := make([]send, len(tk.sends))
	for i, s := range tk.sends {
		out[i] = *s
	}
	return out
}

// load is a talker and a listener on each conversation of a world,
// connected to one sidecar.
type load struct {
	w          *world
	answerWait time.Duration
	talkers    []*talker
	stopc      chan struct{}
	stopped    sync.Once
	wg         sync.WaitGroup
}

// startLoad connects everyone and starts the talkers; wait is how long a
// talker waits for an answer (0: answerWait); with reconnect, everyone
// reconnects when the server closes a connection.
func (w *world) startLoad(addr string, wait time.Duration, reconnect bool) *load {
	w.t.Helper()
	if wait == 0 {
		wait = answerWait
	}
	l := &load{w: w, answerWait: wait, stopc: make(chan struct{})}
	for i, p := range w.pairs {
		lp := w.dial(addr, p.conv, p.listener, fmt.Sprintf("listener%d", i), reconnect, false, l.stopc)
		tp := w.dial(addr, p.conv, p.talker, fmt.Sprintf("talker%d", i), reconnect, true, l.stopc)
		l.talkers = append(l.talkers, &talker{peer: tp, pair: p, listener: lp, answerWait: wait})
	}
	for _, tk := range l.talkers {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); tk.run(l.stopc) }()
	}
	w.t.Cleanup(l.stop)
	return l
}

// stop stops the talkers and waits for the outcome of their last sends.
func (l *load) stop() {
	l.stopped.Do(func() { close(l.stopc) })
	l.wg.Wait()
}

// waitAcked waits until every talker has had a message acknowledged that
// it sent at or after since; it returns how long after since the first
// and the last of them were acknowledged.
func (l *load) waitAcked(since time.Time, timeout time.Duration) (first, all time.Duration) {
	l.w.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var firstAt, lastAt time.Time
		done := true
		for _, tk := range l.talkers {
			var at time.Time
			for _, s := range tk.snapshot() {
				if s.outcome == unanswered {
					l.w.t.Fatalf("%s: %q got no new_message, no error frame and no close within %v (in the database: %v)",
						tk.name, s.content, l.answerWait, l.savedMessages()[s.content] > 0)
				}
				if at.IsZero() && s.outcome == acked && !s.start.Before(since) {
					at = s.end
				}
			}
			if at.IsZero() {
				done = false
				continue
			}
			if firstAt.IsZero() || at.Before(firstAt) {
				firstAt = at
			}
			if at.After(lastAt) {
				lastAt = at
			}
		}
		if done {
			return firstAt.Sub(since), lastAt.Sub(since)
		}
		if time.Now().After(deadline) {
			l.w.t.Fatalf("not every talker had a message acknowledged within %v:\n%s", timeout, l.describe(since))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// describe lists each talker's sends since a moment, for failure messages.
func (l *load) describe(since time.Time) string {
	var b strings.Builder
	for _, tk := range l.talkers {
		fmt.Fprintf(&b, "  %s:", tk.name)
		n := 0
		for _, s := range tk.snapshot() {
			if s.start.Before(since) && s.outcome != pending {
				continue
			}
			if n++; n > 12 {
				b.WriteString(" …")
				break
			}
			if s.outcome == pending {
				fmt.Fprintf(&b, " [%q pending for %s]", s.content, time.Since(s.start).Round(time.Millisecond))
				continue
			}
			fmt.Fprintf(&b, " [%s %s%s]", s.outcome, s.latency().Round(time.Millisecond), detail(s))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func detail(s send) string {
	switch s.outcome {
	case refused:
		return " " + strconv.Quote(s.text)
	case closed:
		return " " + strconv.Itoa(s.code)
	}
	return ""
}

// report is the counts of a run.
type report struct {
	sent, acked, refused, closed, unanswered int
	inDB                                     int            // sends whose message is in the database
	refusedSaved, closedSaved                int            // refused or closed, yet in the database
	lateDelivered                            int            // refused, yet their new_message came later
	listenerMissed                           int            // acknowledged, not received by a listener closed first
	connectionEnds                           map[int]int    // close code → connections of talkers and listeners ended so
	refusedBy                                map[string]int // error text → count
	closedBy                                 map[int]int    // close code → count
}

func (r report) String() string {
	var texts []string
	for text, n := range r.refusedBy {
		texts = append(texts, fmt.Sprintf("%d %q", n, text))
	}
	sort.Strings(texts)
	var codes []string
	for code, n := range r.closedBy {
		codes = append(codes, fmt.Sprintf("%d by %d", n, code))
	}
	sort.Strings(codes)
	var ends []string
	for code, n := range r.connectionEnds {
		ends = append(ends, fmt.Sprintf("%d by %d", n, code))
	}
	sort.Strings(ends)
	return fmt.Sprintf("sent %d, acknowledged %d, refused %d (%s), closed %d (%s), unanswered %d; "+
		"in the database %d (of them refused %d, closed %d); refused but delivered later %d; "+
		"acknowledged but missed by a listener closed first %d; connections ended by the server: %d (%s)",
		r.sent, r.acked, r.refused, strings.Join(texts, ", "), r.closed, strings.Join(codes, ", "), r.unanswered,
		r.inDB, r.refusedSaved, r.closedSaved, r.lateDelivered, r.listenerMissed, sum(r.connectionEnds), strings.Join(ends, ", "))
}

// check stops the load and checks what must hold whatever the timing:
// every send has an outcome, every acknowledged message is in the database
// and reached the listener, no message is saved twice or without a send,
// and a message refused with errNotDelivered is saved. It logs the counts.
func (l *load) check() report {
	t := l.w.t
	t.Helper()
	l.stop()
	saved := l.savedMessages()
	r := report{refusedBy: map[string]int{}, closedBy: map[int]int{}}
	sentContents := map[string]bool{}
	for _, tk := range l.talkers {
		for _, s := range tk.snapshot() {
			sentContents[s.content] = true
			r.sent++
			n := saved[s.content]
			if n > 0 {
				r.inDB++
			}
			if n > 1 {
				t.Errorf("%s: %q saved %d times", tk.name, s.content, n)
			}
			switch s.outcome {
			case acked:
				r.acked++
				if n == 0 {
					t.Errorf("%s: %q was acknowledged (new_message after %v) but is not in the database",
						tk.name, s.content, s.latency())
				}
			case refused:
				r.refused++
				r.refusedBy[s.text]++
				if n > 0 {
					r.refusedSaved++
				}
				if _, ok := tk.deliveredAt(s.content); ok {
					r.lateDelivered++
				}
				if s.text == errNotDelivered && n == 0 {
					t.Errorf("%s: %q refused with %q but is not in the database", tk.name, s.content, s.text)
				}
			case closed:
				r.closed++
				r.closedBy[s.code]++
				if n > 0 {
					r.closedSaved++
				}
			default:
				r.unanswered++
				t.Errorf("%s: %q got no new_message, no error frame and no close within %v (in the database: %v)",
					tk.name, s.content, l.answerWait, n > 0)
			}
		}
	}
	for content := range saved {
		if !sentContents[content] {
			t.Errorf("message %q in the database was never sent", content)
		}
	}
	r.listenerMissed = l.checkDelivered()
	r.connectionEnds = map[int]int{}
	for _, tk := range l.talkers {
		for _, p := range []*peer{tk.peer, tk.listener} {
			for _, code := range p.closeCodes() {
				r.connectionEnds[code]++
			}
		}
	}
	t.Logf("counts: %s", r)
	return r
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// savedMessages counts the messages of the world's conversations by text.
func (l *load) savedMessages() map[string]int {
	t := l.w.t
	t.Helper()
	convs := make([]int64, len(l.w.pairs))
	for i, p := range l.w.pairs {
		convs[i] = p.conv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := l.w.db.DB.QueryContext(ctx, `SELECT content FROM chat_message WHERE conversation_id = ANY($1)`, pq.Array(convs))
	if err != nil {
		t.Fatalf("read messages: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out[c]++
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read messages: %v", err)
	}
	return out
}

// checkDelivered waits until each listener has every message its talker
// saw acknowledged (the same group event made both frames, or the listener
// reconnected and had it in its history) and returns how many it missed
// because its connection closed for good first: a connection being closed
// takes no more frames, and its client reloads the history when it
// reconnects.
func (l *load) checkDelivered() (missedClosed int) {
	t := l.w.t
	t.Helper()
	deadline := time.Now().Add(deliveryWait)
	for _, tk := range l.talkers {
		for _, s := range tk.snapshot() {
			if s.outcome != acked {
				continue
			}
			for {
				if tk.listener.has(s.content) {
					break
				}
				if _, gone := tk.listener.closeCode(); gone {
					missedClosed++
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s: %q was acknowledged to its talker but never reached the listener", tk.listener.name, s.content)
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	return missedClosed
}

// sendsBetween returns every talker's sends that started in [from, to).
func (l *load) sendsBetween(from, to time.Time) map[*talker][]send {
	out := map[*talker][]send{}
	for _, tk := range l.talkers {
		for _, s := range tk.snapshot() {
			if !s.start.Before(from) && s.start.Before(to) {
				out[tk] = append(out[tk], s)
			}
		}
	}
	return out
}

// readyz returns /readyz's status code (0: no answer).
func readyz(addr string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyz polls /readyz until it answers want and returns how long that took.
func waitReadyz(t *testing.T, addr string, want int, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := readyz(addr)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("/readyz answered %d for %v, want %d", got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopSidecar sends SIGTERM and checks that the sidecar exits 0 within
// timeout and that the race detector found nothing in it.
func stopSidecar(t *testing.T, sc *testenv.Sidecar, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	if err := sc.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	code, ok := sc.Wait(timeout)
	took := time.Since(start)
	if !ok {
		t.Fatalf("the sidecar still runs %v after SIGTERM", timeout)
	}
	if code != 0 {
		t.Errorf("the sidecar exited %d after SIGTERM, want 0", code)
	}
	checkLog(t, sc)
	return took
}

// startSidecar starts the sidecar binary; when the test fails, its log is
// written to a file named in the test's output.
func startSidecar(t *testing.T, env []string) *testenv.Sidecar {
	t.Helper()
	sc := testenv.StartSidecar(t, env)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		f, err := os.CreateTemp("", "faults-sidecar-*.log")
		if err != nil {
			t.Logf("sidecar log: %v", err)
			return
		}
		defer f.Close()
		_, _ = f.WriteString(sc.Log())
		t.Logf("sidecar log: %s", f.Name())
	})
	return sc
}

// checkLog fails the test on what must never be in the sidecar's log.
func checkLog(t *testing.T, sc *testenv.Sidecar) {
	t.Helper()
	log := sc.Log()
	for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
		if strings.Contains(log, bad) {
			t.Errorf("the sidecar's log has %q", bad)
		}
	}
}
