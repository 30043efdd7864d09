package consumer

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
)

// A text frame that is not UTF-8 fails the connection with 1007 before any
// JSON is read (RFC 6455 section 8.1).
func TestInvalidUTF8Closes1007(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc := r.connect(r.talker)
	if err := tc.ws.WriteMessage(websocket.TextMessage, []byte("{\"type\": \"chat_message\", \"message\": \"\xff\"}")); err != nil {
		t.Fatal(err)
	}
	if code := tc.closeCode(); code != websocket.CloseInvalidFramePayloadData {
		t.Errorf("close code %d, want 1007", code)
	}
	if n := len(r.store.messages()); n != 0 {
		t.Errorf("%d messages saved", n)
	}
}

// Only a file_message may be larger than MaxTextFrameBytes; anything else
// that large closes with 1009.
func TestTextFrameLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MaxTextFrameBytes, c.MaxFileBytes = 512, 4<<10 })
	tc := r.connect(r.talker)
	file := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("f", 3000)))
	tc.send(`{"type": "file_message", "file": "` + file + `", "filename": "big.txt"}`)
	tc.expectType("new_message")
	tc.send(`{"type": "typing", "is_typing": "` + strings.Repeat("t", 600) + `"}`)
	if code := tc.closeCode(); code != websocket.CloseMessageTooBig {
		t.Errorf("close code %d, want 1009", code)
	}
}

// Message text and captions longer than MaxMessageChars (code points) are
// refused; frames with more values than a client frame needs too.
func TestMessageTooLongOrComplex(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MaxMessageChars = 5 })
	tc := r.connect(r.talker)
	tc.send(`{"type": "chat_message", "message": "ééééé"}`) // 5 code points, 10 bytes
	tc.expectType("new_message")
	tc.send(`{"type": "chat_message", "message": "123456"}`)
	tc.expectError("Message is too long (max 5 characters)")
	tc.send(`{"type": "file_message", "file": "aGk=", "filename": "a.txt", "message": "caption"}`)
	tc.expectError("Message is too long (max 5 characters)")
	tc.send(`{"type": "typing", "is_typing": [` + strings.Repeat("0,", 5000) + `0]}`)
	tc.expectError(errTooComplex)
	tc.send(`{"type": "typing", "is_typing": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`)
	tc.expectError(errTooComplex)
}

// A message must arrive whole within MessageTimeout, however it is
// fragmented and however many pongs keep the connection alive meanwhile.
func TestTrickledMessageClosed(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MessageTimeout = 300 * time.Millisecond })
	tc := r.connect(r.talker)
	w, err := tc.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		t.Fatal(err)
	}
	// Fragments go out as the client's write buffer fills; a pong in
	// between each shows the client is alive.
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := w.Write([]byte(strings.Repeat(" ", 5000))); err != nil {
				return
			}
			if err := tc.ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	start := time.Now()
	if code := tc.closeCode(); code != websocket.ClosePolicyViolation {
		t.Errorf("close code %d, want 1008", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("connection lasted %v with a message trickling in", d)
	}
	waitFor(t, "the connection to leave", func() bool { return r.srv.Connections() == 0 })
}

// One user may hold MaxUserConnections connections; more are refused with
// 403, and a closed one frees its place.
func TestUserConnectionLimit(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MaxUserConnections = 2 })
	a := r.connect(r.talker)
	r.connect(r.talker)
	r.refused(r.chatPath(), token(r.talker), nil, http.StatusForbidden)
	r.connect(r.listener) // another user is not affected
	a.ws.Close()
	waitFor(t, "the closed connection to leave", func() bool { return r.srv.Connections() == 2 })
	r.connect(r.talker)
}

// Files count against their user's byte rate, each at least minFileCost.
func TestFileRate(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.FileBytesPerSecond, c.FileBurstBytes = 1, 2*minFileCost })
	tc := r.connect(r.talker)
	for _, name := range []string{"a.txt", "b.txt"} {
		tc.send(`{"type": "file_message", "file": "aGk=", "filename": "` + name + `"}`)
		tc.expectType("new_message")
	}
	tc.send(`{"type": "file_message", "file": "aGk=", "filename": "a.txt"}`)
	tc.expectError("Too many files: at most 1 bytes per second")
	if n := r.files.count(); n != 2 {
		t.Errorf("%d files stored, want 2", n)
	}
}

// A connect waits for memory when the budget is spent, then is told to try
// again (503); a frame that cannot be read within the budget closes 1013.
func TestMemoryBudgetSpent(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.MemoryBudget, c.BudgetWait = 256<<10, 100*time.Millisecond })
	tc := r.connect(r.talker)
	r.srv.mem.charge(r.srv.mem.limit) // everything taken
	r.refused(r.chatPath(), token(r.listener), nil, http.StatusServiceUnavailable)
	tc.send(`{"type": "chat_message", "message": "x"}`)
	if code := tc.closeCode(); code != closeTryAgainLater {
		t.Errorf("close code %d, want 1013", code)
	}
	r.srv.mem.release(r.srv.mem.limit)
	r.connect(r.listener)
}

// A history load waits for memory MEMORY_WAIT in all, however many of its
// chunks wait: one that gets a chunk each time some memory is freed, a
// little before MEMORY_WAIT each time, is still told to try again (503)
// once it has waited that long, not failed as a database error (500) by
// the load's deadline (DB_TIMEOUT + MEMORY_WAIT).
func TestHistoryMemoryWaitInAll(t *testing.T) {
	t.Parallel()
	const wait = 300 * time.Millisecond
	r := newRig(t, func(c *Config) { c.MemoryBudget, c.BudgetWait, c.DBTimeout = 1<<20, wait, wait })
	for i := 0; i < 8; i++ { // 8 chunks of history
		r.store.SaveText(context.Background(), chat.Draft{ConversationID: r.conv.ID, Sender: r.talker,
			Content: strings.Repeat("m", historyChunk), CreatedAt: time.Now()})
	}
	r.srv.mem.charge(r.srv.mem.limit - historyChunk) // all but the first chunk taken
	stop := make(chan struct{})
	freed := make(chan struct{})
	go func() { // a chunk's worth freed a little before each wait would end
		defer close(freed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(wait * 4 / 5):
				r.srv.mem.release(historyChunk + 8<<10) // and the connect's small frames
			}
		}
	}()
	r.refused(r.chatPath(), token(r.listener), nil, http.StatusServiceUnavailable)
	close(stop)
	<-freed
}

// Concurrent connects to one conversation share one history load, and a
// load whose callers have all gone is cancelled.
func TestHistoryShared(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	for i := 0; i < 30; i++ {
		r.store.SaveText(context.Background(), chat.Draft{ConversationID: r.conv.ID, Sender: r.talker, Content: "m", CreatedAt: time.Now()})
	}
	gate := &gateStore{memStore: r.store, release: make(chan struct{})}
	r.swap.set(gate)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.connect(r.listener)
		}()
	}
	// The first connect's load runs (and waits at the gate); the other
	// nine arrived after it started, so they share the one after it.
	waitFor(t, "nine connects waiting", func() bool {
		return testutilCount(r.srv.metrics.historyLoads.WithLabelValues("shared")) == 8
	})
	close(gate.release)
	wg.Wait()
	if n := gate.loads(); n != 2 {
		t.Errorf("%d history loads for 10 connects, want 2", n)
	}

	// Every caller leaves: the load is cancelled.
	gate2 := &gateStore{memStore: r.store, release: make(chan struct{})}
	r.swap.set(gate2)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := r.srv.histories.get(ctx, r.conv.ID, nil); errc <- err }()
	waitFor(t, "the load to start", func() bool { return gate2.loads() == 1 })
	cancel()
	if err := <-errc; err == nil {
		t.Error("get returned no error after its caller left")
	}
	select {
	case <-gate2.cancelled:
	case <-time.After(frameWait):
		t.Error("the load was not cancelled when its only caller left")
	}
}

// gateStore holds each history load until release and counts them.
type gateStore struct {
	*memStore
	release   chan struct{}
	cancelled chan struct{}
	mu        sync.Mutex
	n         int
}

func (g *gateStore) loads() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}

func (g *gateStore) History(ctx context.Context, conv int64, each func(chat.Message) error) error {
	g.mu.Lock()
	g.n++
	if g.cancelled == nil {
		g.cancelled = make(chan struct{})
	}
	cancelled := g.cancelled
	g.mu.Unlock()
	select {
	case <-g.release:
	case <-ctx.Done():
		close(cancelled)
		return ctx.Err()
	}
	return g.memStore.History(ctx, conv, each)
}

// A database call that hangs turns into an error frame within DBTimeout,
// and the connection goes on.
func TestDatabaseDeadline(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *Config) { c.DBTimeout = 100 * time.Millisecond })
	tc := r.connect(r.talker)
	r.swap.set(hangStore{r.store})
	start := time.Now()
	tc.send(`{"type": "chat_message", "message": "x"}`)
	tc.expectError(errServer)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("error after %v", d)
	}
	r.swap.set(r.store)
	tc.send(`{"type": "chat_message", "message": "x"}`)
	tc.expectType("new_message")
}

// hangStore's block check waits until its context ends.
type hangStore struct{ *memStore }

func (h hangStore) IsBlocked(ctx context.Context, _, _ int64) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// When the history of a new message cannot be loaded, the members are
// closed with 1011 (as Python's consumer crashed) so they reconnect for a
// fresh history, instead of silently missing the message.
func TestHistoryFailureClosesMembers(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	r.swap.set(historyFails{r.store})
	tc.send(`{"type": "chat_message", "message": "x"}`)
	for _, c := range []*client{tc, lc} {
		if code := c.closeCode(); code != websocket.CloseInternalServerErr {
			t.Errorf("close code %d, want 1011", code)
		}
	}
	if n := len(r.store.messages()); n != 1 {
		t.Errorf("%d messages saved, want 1", n)
	}
}

type historyFails struct{ *memStore }

func (historyFails) History(context.Context, int64, func(chat.Message) error) error {
	return errors.New("connection reset by peer")
}

// The new_messages of one batch share one history: a connection that
// keeps up holds it once in its queue, however long the conversation, and
// is not dropped for the frames of one burst.
func TestBurstSharesHistoryInQueue(t *testing.T) {
	t.Parallel()
	// A history of about 140 KB; the queue may hold the frame at its head
	// plus 200 KB: two histories, not the four the burst's frames would
	// be if each counted its own.
	r := newRig(t, func(c *Config) { c.SendQueueBytes = 200 << 10 })
	for i := 0; i < 400; i++ {
		r.store.SaveText(context.Background(), chat.Draft{ConversationID: r.conv.ID, Sender: r.talker,
			Content: strings.Repeat("h", 90), CreatedAt: time.Now()})
	}
	tc, lc := r.connect(r.talker), r.connect(r.listener)
	gate := &gateStore{memStore: r.store, release: make(chan struct{})}
	r.swap.set(gate)
	for i := 0; i < 4; i++ {
		tc.send(`{"type": "chat_message", "message": "burst"}`)
	}
	// The first event's history load waits at the gate; the three others
	// queue behind it and will share the next load. Frames are handled in
	// order: the answer to one more frame means the burst's four were
	// saved and sent to the group before the gate opens.
	tc.send(`{"type": "after_the_burst"}`)
	tc.expectError("Unknown message type: after_the_burst")
	if n := len(r.store.messages()); n != 404 {
		t.Fatalf("%d messages saved, want 404", n)
	}
	close(gate.release)
	for i := 0; i < 4; i++ {
		tc.expectType("new_message")
		lc.expectType("new_message")
	}
	if got := testutilCount(r.srv.metrics.drops.WithLabelValues("send_queue")); got != 0 {
		t.Errorf("%v connections dropped for a burst they kept up with", got)
	}
	if n := gate.loads(); n > 3 {
		t.Errorf("%d history loads for a burst of 4", n)
	}
}
