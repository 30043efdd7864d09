// Command chatload measures the chat WebSocket under load: it seeds users
// and conversations into a Django database, connects a talker and a
// listener to each conversation, and has every talker send messages in a
// closed loop (send, wait for its own new_message). It prints the rate of
// saved-and-delivered messages and the latency from send to the listener's
// new_message (p50/p99).
//
// It writes rows: point it only at a test database.
//
//	chatload -dsn postgres://postgres@127.0.0.1:5432/loadtest?sslmode=disable \
//	    -secret "$SECRET_KEY" -url ws://127.0.0.1:8001 -conversations 50 -duration 10s
//
// -rate paces each talker (messages per second) to measure latency below
// saturation; the talkers' sends are spread evenly over each interval.
//
// -messages N has each talker send exactly N messages (then -duration does
// not end the run), so a conversation's history grows by exactly N;
// -prefill H first gives every load conversation H older messages (one
// INSERT ... SELECT), so the history starts at H.
//
// -cpu NAME=PID and -cpu-tree NAME=PID read a process's CPU time (the
// tree: a server and every process it forked, e.g. a PostgreSQL
// postmaster) from /proc when the talkers start and when the last one
// stops, and print the milliseconds and the milliseconds per message,
// and the same for chatload itself.
//
// -listen-url sends the listeners to another server (a second sidecar, or
// Daphne), to measure delivery across processes through the channel layer.
//
// -inbox-url also connects every participant (talker and listener) to
// ws/conversations/ on that server (the sidecar, or Daphne serving the
// Python reference), and -inbox-size N gives each listener N more
// conversations with other talkers, a few messages each, so its list has
// N+1 items. Each inbox socket is read throughout; after the talkers stop
// the tool waits until no list frame has arrived for -inbox-quiet (at most
// -inbox-wait), then checks each socket's last list frame against the
// database: a list is stale when, for a load conversation of its user,
// total_messages or last_message_preview differs from the conversation's
// final count and latest message (every message's content is unique). It
// prints the list frames received, the stale lists (lost updates) and the
// lag from the final message's send to the last list frame.
//
// -metrics-url reads the sidecar's Prometheus metrics (ADMIN_ADDR/metrics)
// before the talkers start and after the inboxes are quiet, and prints the
// conversation lists it computed in between; -pgss reads
// pg_stat_statements the same way and prints the statements each database
// role ran in between.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lib/pq"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
)

// Timing of the run.
const (
	connectTimeout = 30 * time.Second // one WebSocket handshake and its connect frames
	listenTimeout  = 30 * time.Second // a listener's wait for a frame, past the duration
	closeAfter     = time.Second      // a talker's chat sockets stay open this long after its last message
)

// seedMessages is how many messages each extra inbox conversation gets.
const seedMessages = 3

type options struct {
	secret                    string
	talkURL, listenURL, inbox string
	duration                  time.Duration
	size                      int
	rate                      float64
	replyTimeout              time.Duration
	inboxQuiet, inboxWait     time.Duration
	metricsURL                string
	pgss                      bool
	messages                  int         // per talker; 0: send for duration
	cpu                       []cpuTarget // processes whose CPU time the run measures
	clkTck                    int         // clock ticks per second of /proc/PID/stat
}

func main() {
	var o options
	dsn := flag.String("dsn", "", "Django's PostgreSQL database (rows are added to it)")
	flag.StringVar(&o.secret, "secret", os.Getenv("SECRET_KEY"), "SECRET_KEY, to sign HS256 access tokens as SimpleJWT does")
	flag.StringVar(&o.talkURL, "url", "ws://127.0.0.1:8001", "server the talkers connect to")
	flag.StringVar(&o.listenURL, "listen-url", "", "server the listeners connect to (default: -url)")
	flag.StringVar(&o.inbox, "inbox-url", "", "server every participant's ws/conversations/ socket connects to (empty: no inboxes)")
	inboxSize := flag.Int("inbox-size", 0, "extra conversations (with other talkers, a few messages each) in each listener's list")
	flag.DurationVar(&o.inboxQuiet, "inbox-quiet", 3*time.Second, "after the talkers stop, the inboxes are done when no list frame has come for this long")
	flag.DurationVar(&o.inboxWait, "inbox-wait", 30*time.Second, "after the talkers stop, wait at most this long for the inboxes to go quiet")
	flag.StringVar(&o.metricsURL, "metrics-url", "", "the sidecar's Prometheus metrics (http://ADMIN_ADDR/metrics), read before and after the run")
	flag.BoolVar(&o.pgss, "pgss", false, "read pg_stat_statements (-dsn's database) before and after the run: statements per role")
	convs := flag.Int("conversations", 20, "conversations, each with a talker and a listener connected")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long the talkers send")
	flag.IntVar(&o.size, "size", 32, "bytes of content per message")
	flag.Float64Var(&o.rate, "rate", 0, "messages per second per talker (0: as fast as replies come back)")
	flag.IntVar(&o.messages, "messages", 0, "messages each talker sends, then stops (0: send for -duration)")
	prefillN := flag.Int("prefill", 0, "older messages inserted into each load conversation before the run")
	flag.Var(cpuFlag{&o.cpu, false}, "cpu", "NAME=PID: a process whose CPU time (utime+stime) over the run is printed; repeatable")
	flag.Var(cpuFlag{&o.cpu, true}, "cpu-tree", "NAME=PID: like -cpu, for a process and every child it forked (e.g. a postmaster); repeatable")
	flag.IntVar(&o.clkTck, "clk-tck", 100, "clock ticks per second in /proc/PID/stat (getconf CLK_TCK)")
	flag.DurationVar(&o.replyTimeout, "reply-timeout", 5*time.Second, "a talker whose own new_message has not come this long after a send counts the message lost and sends the next")
	flag.Parse()
	if len(o.cpu) > 0 {
		// The load tool shares the cores: its own CPU is printed too.
		o.cpu = append(o.cpu, cpuTarget{name: "chatload", pid: os.Getpid()})
	}
	if *dsn == "" || o.secret == "" {
		log.Fatal("chatload: -dsn and -secret (or SECRET_KEY) are required")
	}
	if o.listenURL == "" {
		o.listenURL = o.talkURL
	}
	db, err := sql.Open("postgres", *dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	pairs, err := seed(db, *convs, *inboxSize)
	if err != nil {
		log.Fatalf("chatload: seed: %v", err)
	}
	if *prefillN > 0 {
		if err := prefill(db, pairs, *prefillN, o.size); err != nil {
			log.Fatalf("chatload: prefill: %v", err)
		}
	}
	if err := run(db, pairs, o); err != nil {
		log.Fatalf("chatload: %v", err)
	}
}

// pair is one load conversation and its two participants.
type pair struct {
	conv, listener, talker int64
	lastSent               time.Time // the talker's last send; read once it has stopped
}

// seed adds one listener, one talker and an active conversation per pair,
// as Django writes them, and inboxSize more conversations per listener,
// each with another talker and seedMessages messages.
func seed(db *sql.DB, n, inboxSize int) ([]*pair, error) {
	ctx := context.Background()
	fx := fixture.New(db, djangodb.Postgres)
	run := randHex(4)
	out := make([]*pair, n)
	for i := range out {
		l, t, c, err := fx.Pair(ctx, fmt.Sprintf("load-%s-%d", run, i))
		if err != nil {
			return nil, err
		}
		out[i] = &pair{conv: c, listener: l, talker: t}
	}
	if inboxSize == 0 {
		return out, nil
	}
	// The extra conversations, a listener per goroutine (a few at a time).
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 8)
		base = time.Now().Add(-time.Hour)
	)
	for i, p := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := seedInbox(ctx, fx, run, i, p.listener, inboxSize, base); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// seedInbox gives listener size conversations with other talkers, older
// than the load's, each with seedMessages messages and last_message_at set
// as the chat leaves it.
func seedInbox(ctx context.Context, fx *fixture.Writer, run string, i int, listener int64, size int, base time.Time) error {
	for j := 0; j < size; j++ {
		t, err := fx.User(ctx, fixture.User{Email: fmt.Sprintf("load-%s-other-%d-%d@example.com", run, i, j), Type: "talker"})
		if err != nil {
			return err
		}
		created := base.Add(time.Duration(j) * time.Minute)
		last := created.Add(seedMessages * time.Second)
		c, err := fx.Conversation(ctx, fixture.Conversation{ListenerID: listener, TalkerID: t, Status: "active",
			CreatedAt: created, LastMessageAt: last})
		if err != nil {
			return err
		}
		for k := 1; k <= seedMessages; k++ {
			sender := t
			if k%2 == 0 {
				sender = listener
			}
			if _, err := fx.Message(ctx, c, sender, fmt.Sprintf("seed c%d m%d", c, k), created.Add(time.Duration(k)*time.Second)); err != nil {
				return err
			}
		}
	}
	return nil
}

// prefill gives every load conversation n messages, alternately from its
// talker and its listener, an hour old and a second apart, each unique
// and o.size bytes long as the run's are, and sets last_message_at to
// the last of them, as the chat leaves it.
func prefill(db *sql.DB, pairs []*pair, n, size int) error {
	ids := make([]int64, len(pairs))
	for i, p := range pairs {
		ids[i] = p.conv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := db.ExecContext(ctx, `INSERT INTO chat_message
		(conversation_id, sender_id, content, message_type, is_read, created_at)
		SELECT c.id, CASE WHEN g % 2 = 1 THEN c.talker_id ELSE c.listener_id END,
			rpad('prefill c' || c.id || '-' || g || ' ', $3, 'x'), 'text', false, $4::timestamptz + g * interval '1 second'
		FROM chat_conversation c CROSS JOIN generate_series(1, $2) g
		WHERE c.id = ANY($1)
		ORDER BY c.id, g`, pq.Array(ids), n, size, base); err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE chat_conversation SET last_message_at = $2::timestamptz + $3::int * interval '1 second'
		WHERE id = ANY($1)`, pq.Array(ids), base, n); err != nil {
		return fmt.Errorf("set last_message_at: %w", err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE chat_message`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// token mints an access token as SimpleJWT does.
func token(secret string, user int64) string {
	return auth.MintAccess(secret, user, time.Now(), time.Hour)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type result struct {
	elapsed   time.Duration // the first send → the last talker stopped
	mu        sync.Mutex
	sent      int
	latencies []time.Duration // send → the listener's new_message
	errors    int
	lost      int // sent, but no reply within the reply timeout
	late      int // replies that came after their message was counted lost
	ended     int // talkers that stopped early: their socket failed
	firstEnd  string
}

var dialer = &websocket.Dialer{HandshakeTimeout: connectTimeout}

// dialFrames connects to base+path and reads the n frames the server
// sends on connect, returning the last.
func dialFrames(base, path string, n int) (*websocket.Conn, []byte, error) {
	ws, _, err := dialer.Dial(strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return nil, nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(connectTimeout))
	var data []byte
	for i := 0; i < n; i++ {
		if _, data, err = ws.ReadMessage(); err != nil {
			ws.Close()
			return nil, nil, err
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return ws, data, nil
}

func dial(base string, conv int64, tok string) (*websocket.Conn, error) {
	// connection_established, api_info, conversation_history
	ws, _, err := dialFrames(base, "/ws/chat/"+strconv.FormatInt(conv, 10)+"/?token="+tok, 3)
	if err != nil {
		return nil, fmt.Errorf("connect to conversation %d: %w", conv, err)
	}
	return ws, nil
}

type frame struct {
	Type          string `json:"type"`
	Message       string `json:"message"`
	LatestMessage struct {
		Content string `json:"content"`
	} `json:"latest_message"`
}

// latestKey introduces a new_message frame's last member. Inside a JSON
// string its quotes would be escaped, so it only ever appears as the key.
var latestKey = []byte(`"latest_message": `)

// parseFrame reads a chat frame's type, and for a new_message its
// latest_message, without decoding the history before it (both servers
// write {"type": "new_message", "messages": [...], "count": N,
// "latest_message": {...}}, as Python's json.dumps lays it out): a
// history of hundreds of messages would otherwise make the load tool,
// on the servers' cores, decode each one twice per message sent.
func parseFrame(data []byte) (frame, bool) {
	var f frame
	if t := frameType(data); t != "new_message" && t != "error" {
		f.Type = t
		return f, t != ""
	}
	if i := bytes.LastIndex(data, latestKey); i >= 0 && frameType(data) == "new_message" {
		tail := bytes.TrimSpace(data[i+len(latestKey):])
		if n := len(tail); n > 0 && tail[n-1] == '}' {
			if json.Unmarshal(tail[:n-1], &f.LatestMessage) == nil {
				f.Type = "new_message"
				return f, true
			}
		}
	}
	return f, json.Unmarshal(data, &f) == nil
}

// chatConns are a pair's two chat sockets.
type chatConns struct {
	p        *pair
	lws, tws *websocket.Conn
}

// run connects every socket, then has the talkers send for o.duration,
// waits for the inboxes, checks them and prints the results.
func run(db *sql.DB, pairs []*pair, o options) error {
	conns := make([]chatConns, 0, len(pairs))
	defer func() {
		for _, c := range conns {
			c.lws.Close()
			c.tws.Close()
		}
	}()
	for _, p := range pairs {
		lws, err := dial(o.listenURL, p.conv, token(o.secret, p.listener))
		if err != nil {
			return err
		}
		tws, err := dial(o.talkURL, p.conv, token(o.secret, p.talker))
		if err != nil {
			lws.Close()
			return err
		}
		conns = append(conns, chatConns{p, lws, tws})
	}
	var ib *inboxes
	if o.inbox != "" {
		var err error
		if ib, err = connectInboxes(o.inbox, o.secret, pairs); err != nil {
			return err
		}
		defer ib.close()
	}
	before, err := snapshot(db, o)
	if err != nil {
		return err
	}
	cpuBefore, err := sampleCPU(o.cpu)
	if err != nil {
		return err
	}
	var cpuAfter cpuSample
	var cpuErr error
	res, stopped, err := talk(conns, o, func() { cpuAfter, cpuErr = sampleCPU(o.cpu) })
	if err != nil {
		return err
	}
	if cpuErr != nil {
		return cpuErr
	}
	var rep *inboxReport
	if ib != nil {
		waited, timedOut := ib.waitQuiet(stopped, o.inboxQuiet, o.inboxWait)
		ib.close()
		final, err := finalStates(db, pairs)
		if err != nil {
			return err
		}
		lastSent := make(map[int64]time.Time, len(pairs))
		for _, p := range pairs {
			lastSent[p.conv] = p.lastSent
		}
		rep = check(ib.all, final, lastSent)
		rep.waited, rep.timedOut = waited, timedOut
	}
	after, err := snapshot(db, o)
	if err != nil {
		return err
	}
	res.print(len(pairs))
	if rep != nil {
		rep.print(res.sends())
	}
	printDeltas(before, after, res.sends())
	printCPU(o.cpu, cpuBefore, cpuAfter, o.clkTck, res.sends())
	return nil
}

// talk runs a listener and a talker per pair: the talkers send for
// o.duration, or o.messages each. It calls stop as soon as the last talker
// has stopped, and returns when every socket is done, with that time.
func talk(conns []chatConns, o options, stop func()) (*result, time.Time, error) {
	res := &result{}
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	if o.messages > 0 {
		ctx, cancel = context.WithCancel(context.Background())
	}
	defer cancel()
	start := time.Now()
	var all, talking sync.WaitGroup
	errc := make(chan error, 2*len(conns))
	for i, c := range conns {
		p, lws, tws := c.p, c.lws, c.tws
		all.Add(2)
		talking.Add(1)
		// The listener records when each message arrives.
		go func() {
			defer all.Done()
			defer lws.Close()
			var buf bytes.Buffer
			for {
				_ = lws.SetReadDeadline(time.Now().Add(o.duration + listenTimeout))
				data, err := readInto(lws, &buf)
				if err != nil {
					return
				}
				f, ok := parseFrame(data)
				if !ok || f.Type != "new_message" {
					continue
				}
				sentAt, err := strconv.ParseInt(strings.SplitN(f.LatestMessage.Content, " ", 2)[0], 10, 64)
				if err != nil {
					continue
				}
				res.mu.Lock()
				res.latencies = append(res.latencies, time.Since(time.Unix(0, sentAt)))
				res.mu.Unlock()
			}
		}()
		// The talker's frames, read by a goroutine of their own so that a
		// reply that never comes costs o.replyTimeout, not the socket.
		replies := make(chan frame, 16)
		done := make(chan struct{})
		var readErr error // why the socket ended; read once replies is closed
		go func() {
			defer close(replies)
			var buf bytes.Buffer
			for {
				data, err := readInto(tws, &buf)
				if err != nil {
					readErr = err
					return
				}
				f, ok := parseFrame(data)
				if !ok || (f.Type != "error" && f.Type != "new_message") {
					continue
				}
				select {
				case replies <- f:
				case <-done:
					return
				}
			}
		}()
		// The talker sends, then waits for its own copy.
		go func() {
			defer all.Done()
			defer func() { time.Sleep(closeAfter); close(done); lws.Close(); tws.Close() }()
			defer talking.Done()
			var tick <-chan time.Time
			if o.rate > 0 {
				// The talkers' ticks are spread over one interval, not
				// all at once: an even offered load, not bursts of every
				// talker together.
				interval := time.Duration(float64(time.Second) / o.rate)
				select {
				case <-time.After(interval * time.Duration(i) / time.Duration(len(conns))):
				case <-ctx.Done():
					return
				}
				ticker := time.NewTicker(interval)
				defer ticker.Stop()
				tick = ticker.C
			}
			timer := time.NewTimer(0)
			<-timer.C
			for seq := 1; ctx.Err() == nil && (o.messages == 0 || seq <= o.messages); seq++ {
				if tick != nil {
					select {
					case <-tick:
					case <-ctx.Done():
						return
					}
				}
				now := time.Now()
				text := content(now, p.conv, seq, o.size)
				msg := fmt.Sprintf(`{"type": "chat_message", "message": "%s"}`, text)
				if err := tws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					errc <- fmt.Errorf("talker of conversation %d: send message %d: %w", p.conv, seq, err)
					return
				}
				p.lastSent = now
				timer.Reset(o.replyTimeout)
				if err := res.await(replies, timer.C, text); err != nil {
					errc <- fmt.Errorf("talker of conversation %d, after message %d: %w: %v", p.conv, seq, err, readErr)
					return
				}
				timer.Stop()
			}
		}()
	}
	talking.Wait()
	stopped := time.Now()
	stop()
	res.elapsed = stopped.Sub(start)
	all.Wait()
	// A talker whose socket failed stopped early; the others' results
	// stand, and the failures are printed with them.
	close(errc)
	for err := range errc {
		if res.ended == 0 {
			res.firstEnd = err.Error()
		}
		res.ended++
	}
	return res, stopped, nil
}

// await waits for the reply to the message with content text: its
// new_message, an error frame, or none before timeout (the message is
// counted lost and the talker goes on).
func (r *result) await(replies <-chan frame, timeout <-chan time.Time, text string) error {
	for {
		select {
		case f, ok := <-replies:
			if !ok {
				return errors.New("connection closed")
			}
			r.mu.Lock()
			switch {
			case f.Type == "error":
				r.errors++
			case f.LatestMessage.Content == text:
				r.sent++
			default:
				r.late++ // the reply to a message already counted lost
				r.mu.Unlock()
				continue
			}
			r.mu.Unlock()
			return nil
		case <-timeout:
			r.mu.Lock()
			r.lost++
			r.mu.Unlock()
			return nil
		}
	}
}

// content is a message's text: its send time (the listener's latency
// clock), then conversation and sequence number, so every message of a run
// is unique within the conversation list's preview, then padding to size
// bytes.
func content(sent time.Time, conv int64, seq, size int) string {
	s := fmt.Sprintf("%d c%d-%d", sent.UnixNano(), conv, seq)
	if pad := size - len(s) - 1; pad > 0 {
		s += " " + strings.Repeat("x", pad)
	}
	return s
}

// sends is how many messages the talkers sent and had an answer to or
// gave up on: the work the servers did, which the per-message figures
// divide (a message counted lost was usually saved and delivered late).
func (r *result) sends() int { return r.sent + r.lost + r.errors }

// print prints the run's results; rate is the messages saved and delivered
// over the time from the first send to the last talker's stop.
func (r *result) print(convs int) {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	rate := 0.0
	if r.elapsed > 0 {
		rate = float64(r.sent) / r.elapsed.Seconds()
	}
	fmt.Printf("conversations=%d duration=%s messages=%d rate=%.1f/s errors=%d lost=%d late=%d delivered=%d p50=%s p99=%s ended=%d\n",
		convs, r.elapsed.Round(time.Millisecond), r.sent, rate, r.errors, r.lost, r.late, len(r.latencies),
		quantile(r.latencies, 0.50).Round(10*time.Microsecond), quantile(r.latencies, 0.99).Round(10*time.Microsecond), r.ended)
	if r.ended > 0 {
		fmt.Printf("  ended early: %s\n", r.firstEnd)
	}
}

// quantile is the p-quantile of sorted ds (0 when empty).
func quantile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[int(p*float64(len(ds)-1))]
}

// readInto reads the next message into buf, reused from frame to frame:
// the load tool shares the machine with the servers it measures, so it
// does not allocate a history's bytes for every frame. The bytes are
// valid until the next read.
func readInto(ws *websocket.Conn, buf *bytes.Buffer) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
