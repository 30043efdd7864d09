package hostile

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of README.md's configuration table that the attacks run into.
const (
	maxTextFrameBytes = 131072
	writeTimeout      = 10 * time.Second
	maxUserConns      = 32
	fileBytesPerSec   = 1 << 20
	fileBurstBytes    = 20 << 20
	minFileCost       = 64 << 10 // each file counts as at least this much
)

// rawJoin connects user to the attack conversation with the raw client and
// reads the connect frames.
func (a *arena) rawJoin(user int64) *rawConn {
	a.t.Helper()
	rc, resp, err := rawHandshake(a.sc.Addr, chatPath(a.conv)+"?token="+url.QueryEscape(a.tokens[user]), "")
	if err != nil {
		a.t.Fatalf("handshake: %v", err)
	}
	a.t.Cleanup(func() { rc.Close() })
	if resp.StatusCode != http.StatusSwitchingProtocols {
		a.t.Fatalf("handshake: %s, want 101", resp.Status)
	}
	if err := rc.readConnectFrames(); err != nil {
		a.t.Fatal(err)
	}
	return rc
}

// droppedForQueue checks how a client that fell behind ended: the sidecar
// logged "send queue full" for user, and the client got close 1008
// (closed1008), or, when it did not even read the frame in progress within
// WRITE_TIMEOUT (the close frame can only follow it), a stream cut short
// after the sidecar logged that write's timeout (cut). Anything else (still
// open, another code, a cut without a write timeout) fails.
func (a *arena) droppedForQueue(outcome string, closed1008, cut bool, user int64) {
	a.t.Helper()
	timedOut := slices.ContainsFunc(a.logLines("write failed"), func(l string) bool {
		return strings.Contains(l, fmt.Sprintf(" user=%d ", user)) && strings.Contains(l, "i/o timeout")
	})
	switch {
	case closed1008:
	case cut && timedOut:
		a.t.Logf("%s: it did not read the frame in progress within WRITE_TIMEOUT, so no close frame could follow it", outcome)
	default:
		a.t.Errorf("%s; want close 1008 (send queue full), or the socket closed after the frame in progress timed out; the sidecar logged for the user:\n%s",
			outcome, strings.Join(a.logLines(fmt.Sprintf(" user=%d ", user)), "\n"))
	}
	if !slices.ContainsFunc(a.logLines(`reason="send queue full"`), func(l string) bool {
		return strings.Contains(l, fmt.Sprintf(" user=%d ", user))
	}) {
		a.t.Errorf(`the sidecar logged no "send queue full" drop of user %d`, user)
	}
}

// endedWithoutClose reports whether err is the end of a stream that had
// no close frame: the server closed the socket.
func endedWithoutClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// readInto reads the next message into buf (grown as needed) and returns it.
func readInto(ws *websocket.Conn, buf []byte) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// a. Forty 1 MiB messages (far over MAX_MESSAGE_CHARS, written straight to
// the database) make a 40 MiB history; 30 clients connect to it and never
// read. The history is loaded and held once per load, not once per client;
// a client that does not read is cut when its write has taken
// WRITE_TIMEOUT; a connect that finds the memory budget spent waits
// MEMORY_WAIT, then is answered 503.
//
// At once, the 30 share two loads. One every 250 ms, each finds the budget
// held by the first two for WRITE_TIMEOUT and waits MEMORY_WAIT for it;
// the first piece of other work may dip into the budget's reserve, so the
// bystander is still served.
//
// With the change feed on, the history is too large for its cache (an
// eighth of HISTORY_CACHE_BYTES, however large) and is read the same way,
// within the budget.
//
// All three mostly wait for WRITE_TIMEOUT, so they run in parallel, after
// the other attacks.
func TestHistoryToNonReaders(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		spacing time.Duration
		feed    bool
	}{
		{"at once", 0, false},
		{"one every 250ms", 250 * time.Millisecond, false},
		{"at once, feed on", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			historyToNonReaders(t, c.spacing, c.feed)
		})
	}
}

func historyToNonReaders(t *testing.T, spacing time.Duration, feed bool) {
	const cacheBytes = 256 << 20
	open, env := newArena, []string(nil)
	if feed {
		// A cache that could hold the history whole, were it not over the
		// bound on one history.
		open, env = newFeedArena, []string{fmt.Sprintf("HISTORY_CACHE_BYTES=%d", cacheBytes), "ADMIN_ADDR=127.0.0.1:0"}
	}
	const (
		messages = 40
		size     = 1 << 20
		clients  = 30
	)
	a := open(t, func(a *arena) {
		fx := a.db.Fixture()
		at := time.Now().Add(-time.Hour)
		for i := 0; i < messages; i++ {
			content := strings.Repeat(fmt.Sprintf("%02d-abcdefghijklmnopqrstuvwxyz-", i), size/30+1)[:size]
			if _, err := fx.Message(context.Background(), a.conv, a.talker, content, at.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}, env...)
	target := chatPath(a.conv) + "?token=" + url.QueryEscape(a.tokens[a.talker])
	type result struct {
		rc   *rawConn
		resp *http.Response
		err  error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * spacing)
			rc, resp, err := rawHandshake(a.sc.Addr, target, "")
			results[i] = result{rc, resp, err}
			if rc != nil {
				t.Cleanup(func() { rc.Close() })
			}
		}()
	}
	wg.Wait()
	handshaken := time.Now()
	var accepted, busy int
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("client %d: %v", i, r.err)
		case r.resp.StatusCode == http.StatusSwitchingProtocols:
			accepted++
		case r.resp.StatusCode == http.StatusServiceUnavailable && r.resp.Header.Get("Retry-After") == "1":
			busy++
		default:
			t.Errorf("client %d: %s, want 101 or 503 with Retry-After: 1", i, r.resp.Status)
		}
	}
	// Every accepted client was sent part of the history and then cut off,
	// within WRITE_TIMEOUT of its connect frames being written.
	time.Sleep(time.Until(handshaken.Add(writeTimeout + 2*time.Second)))
	history := int64(messages * size)
	var cut int
	var maxRead int64
	for i, r := range results {
		if r.err != nil || r.resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		_ = r.rc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, r.rc.br)
		maxRead = max(maxRead, n)
		switch {
		case err != nil && !errors.Is(err, syscall.ECONNRESET):
			t.Errorf("client %d: %v after %d bytes: still open %v after its connect", i, err, n, time.Since(handshaken))
		case n >= history:
			t.Errorf("client %d: read %d bytes, the whole history: not cut off", i, n)
		default:
			cut++
		}
	}
	a.finish(fmt.Sprintf("%d of %d handshakes accepted, %d of them cut off by WRITE_TIMEOUT without a close frame (at most %s of the %s history reached each); %d answered 503",
		accepted, clients, cut, mib(maxRead), mib(history), busy))
	if feed {
		// The cache refused the history, whose loads went to the database
		// within the budget: it holds no more than one history may.
		if n := a.sc.Metric(t, "sidecar_history_cache_bytes"); n > float64(cacheBytes/8) {
			t.Errorf("the feed's cache holds %s after the attack, want at most an eighth of %s", mib(int64(n)), mib(cacheBytes))
		}
	}
}

// b. A talker sends 100 typing frames just under MAX_TEXT_FRAME_BYTES to a
// listener that never reads: the listener's queue passes SEND_QUEUE_BYTES
// and it is dropped with 1008, the talker goes on being served. Typing
// frames of 15 MiB close with 1009.
func TestTypingFlood(t *testing.T) {
	a := newArena(t, nil)
	listener := a.rawJoin(a.listener) // never reads again
	talker := a.join(a.talker, a.conv)
	const head, tail = `{"type": "typing", "is_typing": "`, `"}`
	frame := []byte(head + strings.Repeat("t", maxTextFrameBytes-1-len(head)-len(tail)) + tail)
	for i := 0; i < 100; i++ {
		if err := talker.WriteMessage(websocket.TextMessage, frame); err != nil {
			t.Fatalf("typing frame %d: %v", i, err)
		}
	}
	// The talker is served: its message comes back (typing is relayed to
	// the others only).
	if err := talker.WriteMessage(websocket.TextMessage, []byte(`{"type": "chat_message", "message": "still here"}`)); err != nil {
		t.Fatal(err)
	}
	_ = talker.SetReadDeadline(time.Now().Add(frameWait))
	for {
		_, data, err := talker.ReadMessage()
		if err != nil {
			t.Fatalf("talker: %v", err)
		}
		if frameType(data) == "new_message" && latestContains(data, `"content": "still here"`) {
			break
		}
		t.Fatalf("talker: unexpected frame %.200s", data)
	}
	// The listener reads at last: what was written before it was dropped,
	// then how it ended.
	_ = listener.SetReadDeadline(time.Now().Add(frameWait))
	typing := 0
	var end error
	for {
		msg, err := listener.readMessage(nil)
		if err != nil {
			end = err
			break
		}
		if frameType(msg) == "typing" {
			typing++
		}
	}
	listenerOutcome := fmt.Sprintf("listener read %d of 100 typing frames, then %v", typing, end)
	a.droppedForQueue(listenerOutcome, errors.Is(end, errClosed{1008}), endedWithoutClose(end), a.listener)

	// 15 MiB typing frames: 1009, one connection after the other.
	huge := []byte(head + strings.Repeat("t", 15<<20) + tail)
	for i := 0; i < 3; i++ {
		rc := a.rawJoin(a.talker)
		if err := rc.writeFrame(true, opText, huge); err != nil {
			t.Fatalf("15 MiB frame %d: %v", i, err)
		}
		_ = rc.SetReadDeadline(time.Now().Add(frameWait))
		msg, err := rc.readMessage(nil)
		if !errors.Is(err, errClosed{websocket.CloseMessageTooBig}) {
			t.Errorf("15 MiB typing frame %d: %.100q, %v; want close 1009", i, msg, err)
		}
	}
	a.finish(listenerOutcome + "; three 15 MiB typing frames closed with 1009")
}

// c. A talker sends 1,500 messages of 2 KB at 80 a second (under
// RATE_LIMIT) to a listener that reads one frame a second. Every
// new_message carries the whole history, so the listener's queue passes
// SEND_QUEUE_BYTES within a second or two and it is dropped with 1008.
//
// The talker reads everything as fast as it can. Its own new_message
// frames grow by 2.3 KB a message (3.3 MB by the last: at 80 a second,
// up to 260 MB/s for one client). The history such frames share is
// counted once, so it is usually served to the end; when the test's
// reader (under -race, on two cores shared with the sidecar and
// PostgreSQL) really falls behind, it is dropped with 1008. The test
// asserts that it is served in order and, if dropped, dropped as a slow
// reader is, and logs how far it got.
func TestSlowReader(t *testing.T) {
	const (
		count = 1500
		size  = 2048
		rate  = 80
	)
	a := newArena(t, nil)
	// Raw clients: the test's own reading (gigabytes, under -race) costs
	// the least CPU that way, and the CPU is shared with the sidecar.
	listener := a.rawJoin(a.listener)
	talker := a.rawJoin(a.talker)

	talkDone := make(chan struct{}) // the talker's reader has finished
	type end struct {
		read int
		err  error
	}
	listenerEnd := make(chan end, 1)
	go func() {
		var buf []byte
		n := 0
		for {
			_ = listener.SetReadDeadline(time.Now().Add(frameWait + 30*time.Second))
			var err error
			if buf, err = listener.readMessageInto(buf, nil); err != nil {
				listenerEnd <- end{n, err}
				return
			}
			n++
			select {
			case <-talkDone: // the attack is over: read the rest at once
			case <-time.After(time.Second):
			}
		}
	}()

	var (
		got      atomic.Int64 // own new_message frames, in order
		largest  int          // bytes of the largest
		talkEnd  error        // how the talker's stream ended, if it did
		badFrame error
	)
	go func() {
		defer close(talkDone)
		var buf []byte
		for got.Load() < count {
			_ = talker.SetReadDeadline(time.Now().Add(frameWait))
			var err error
			if buf, err = talker.readMessageInto(buf, nil); err != nil {
				talkEnd = err
				return
			}
			if frameType(buf) != "new_message" || !latestContains(buf, fmt.Sprintf(`"content": "c-%04d `, got.Load())) {
				badFrame = fmt.Errorf("after %d of its messages: %.200s", got.Load(), buf)
				return
			}
			largest = max(largest, len(buf))
			got.Add(1)
		}
	}()

	filler := strings.Repeat("x", size)
	start := time.Now()
	sent := 0
	for sent < count && !closed(talkDone) { // once dropped, stop: its reader says how
		time.Sleep(time.Until(start.Add(time.Duration(sent) * time.Second / rate)))
		text := fmt.Sprintf("c-%04d %s", sent, filler)[:size]
		if err := talker.writeFrame(true, opText, []byte(`{"type": "chat_message", "message": "`+text+`"}`)); err != nil {
			break
		}
		sent++
	}
	sending := time.Since(start)
	select {
	case <-talkDone:
	case <-time.After(time.Minute):
		t.Fatalf("talker got %d of %d messages back", got.Load(), count)
	}
	if badFrame != nil {
		t.Errorf("talker: %v", badFrame)
	}
	talkerOutcome := fmt.Sprintf("talker sent %d in %v and got %d back (the largest %s)",
		sent, sending.Round(time.Millisecond), got.Load(), mib(int64(largest)))
	if got.Load() < count {
		talkerOutcome += fmt.Sprintf(", then %v", talkEnd)
		a.droppedForQueue(talkerOutcome, errors.Is(talkEnd, errClosed{websocket.ClosePolicyViolation}), endedWithoutClose(talkEnd), a.talker)
	}

	le := <-listenerEnd
	listenerOutcome := fmt.Sprintf("listener read %d frames, then %v", le.read, le.err)
	a.droppedForQueue(listenerOutcome, errors.Is(le.err, errClosed{websocket.ClosePolicyViolation}), endedWithoutClose(le.err), a.listener)

	var saved int
	if err := a.db.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1`, a.conv).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved < int(got.Load()) || saved > sent {
		t.Errorf("%d messages saved; %d sent, %d came back", saved, sent, got.Load())
	}
	a.finish(talkerOutcome + "; " + listenerOutcome)
}

// d. Frames as large as a file_message may be that are not one, built to
// cost the decoder: 8 objects of ~15.8 MiB with 1.26 million keys and 4
// lists of 8.3 million zeros, all at once. Each is read within the memory
// budget and, larger than anything but a file_message may be and not one,
// closed with 1009; or, when the budget is spent while it waits, with 1013.
func TestComplexFrames(t *testing.T) {
	a := newArena(t, nil)
	const objectSize = 16_567_500 // 15.8 MiB
	objectFrame := make([]byte, 0, objectSize)
	objectFrame = append(objectFrame, '{')
	for i := 0; i < 1_260_000; i++ { // "k0000000":0, to "k1259999":0,
		objectFrame = append(objectFrame, '"')
		k := len(objectFrame)
		objectFrame = strconv.AppendInt(objectFrame, int64(10_000_000+i), 10)
		objectFrame[k] = 'k'
		objectFrame = append(objectFrame, `":0,`...)
	}
	objectFrame = append(objectFrame, `"pad": "`...)
	objectFrame = append(objectFrame, strings.Repeat("p", objectSize-len(objectFrame)-2)...)
	objectFrame = append(objectFrame, `"}`...)
	listFrame := []byte("[" + strings.Repeat("0,", 8_300_000-1) + "0]")
	t.Logf("frames: %d objects of %s, %d lists of %s", 8, mib(int64(len(objectFrame))), 4, mib(int64(len(listFrame))))

	type outcome struct {
		text string // the error frame, when one came
		code int    // the close code, when closed
		err  error
	}
	frames := make([][]byte, 0, 12)
	for i := 0; i < 8; i++ {
		frames = append(frames, objectFrame)
	}
	for i := 0; i < 4; i++ {
		frames = append(frames, listFrame)
	}
	conns := make([]*rawConn, len(frames))
	for i := range conns {
		conns[i] = a.rawJoin(a.talker)
	}
	outcomes := make([]outcome, len(frames))
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outcomes[i]
			go func() { _ = rc.writeFrame(true, opText, frames[i]) }()
			_ = rc.SetReadDeadline(time.Now().Add(frameWait + 10*time.Second))
			msg, err := rc.readMessage(nil)
			var ce errClosed
			switch {
			case errors.As(err, &ce):
				o.code = ce.code
				return
			case err != nil:
				o.err = err
				return
			}
			o.text = string(msg)
			// The connection is still served.
			if err := rc.writeFrame(true, opText, []byte(`{"type": "hostile_probe"}`)); err != nil {
				o.err = err
				return
			}
			msg, err = rc.readMessage(nil)
			if want := errorFrame("Unknown message type: hostile_probe"); err != nil || string(msg) != want {
				o.err = fmt.Errorf("after the error frame: %q, %v; want %s", msg, err, want)
			}
		}()
	}
	wg.Wait()
	var tooBig, busy int
	for i, o := range outcomes {
		switch {
		case o.err != nil:
			t.Errorf("frame %d: %v", i, o.err)
		case o.code == websocket.CloseMessageTooBig:
			tooBig++
		case o.code == 1013:
			busy++
		default:
			t.Errorf("frame %d: %q, close %d; want close 1009 or 1013", i, o.text, o.code)
		}
	}
	a.finish(fmt.Sprintf("%d frames closed with 1009, %d with 1013 (memory)", tooBig, busy))
}

// e. A fragmented message trickled in forever, the client answering every
// ping meanwhile: the connection is closed with 1008 once the
// message has taken MESSAGE_TIMEOUT.
func TestTrickledMessage(t *testing.T) {
	const timeout = 2 * time.Second
	a := newArena(t, nil, "MESSAGE_TIMEOUT=2s", "PING_INTERVAL=250ms")
	const tricklers = 5
	type result struct {
		lasted time.Duration
		pings  int
		err    error
	}
	results := make([]result, tricklers)
	conns := make([]*rawConn, tricklers)
	for i := range conns {
		conns[i] = a.rawJoin(a.talker)
	}
	var wg sync.WaitGroup
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				_ = rc.SetReadDeadline(time.Now().Add(frameWait))
				for {
					if _, err := rc.readMessage(&r.pings); err != nil {
						r.err = err
						return
					}
				}
			}()
			start := time.Now()
			if err := rc.writeFrame(false, opText, []byte(`{"type": "chat_message", "message": "`)); err != nil {
				r.err = err
				return
			}
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ended:
					r.lasted = time.Since(start)
					return
				case <-tick.C:
					_ = rc.writeFrame(false, opContinuation, []byte("trickle..."))
				}
			}
		}()
	}
	wg.Wait()
	var lasted time.Duration
	for i, r := range results {
		lasted = max(lasted, r.lasted)
		switch {
		case !errors.Is(r.err, errClosed{websocket.ClosePolicyViolation}):
			t.Errorf("trickler %d: ended with %v after %v; want close 1008", i, r.err, r.lasted)
		case r.lasted < timeout-100*time.Millisecond || r.lasted > timeout+time.Second:
			t.Errorf("trickler %d: closed after %v; want MESSAGE_TIMEOUT (%v)", i, r.lasted, timeout)
		case r.pings < 4:
			t.Errorf("trickler %d: %d pings answered; want the connection kept alive by pongs meanwhile", i, r.pings)
		}
	}
	a.finish(fmt.Sprintf("%d tricklers answering pings closed with 1008 within %v (MESSAGE_TIMEOUT %v)", tricklers, lasted.Round(time.Millisecond), timeout))
}

// f. One user opening more than MAX_USER_CONNECTIONS: 403 past the limit.
// A flood of unauthenticated handshakes: 403 each. Requests of 900 KB
// (request line or header): 431. The sidecar's log stays small.
func TestHandshakeFlood(t *testing.T) {
	a := newArena(t, nil)
	logBefore := len(a.sc.Log())

	const tries = maxUserConns + 8
	var accepted, forbidden atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, resp, err := a.dial(a.talker, a.conv)
			switch {
			case err == nil:
				accepted.Add(1)
			case resp != nil && resp.StatusCode == http.StatusForbidden:
				forbidden.Add(1)
			default:
				t.Errorf("handshake: %v (%s)", err, statusOf(resp))
			}
		}()
	}
	wg.Wait()
	if accepted.Load() != maxUserConns || forbidden.Load() != tries-maxUserConns {
		t.Errorf("%d handshakes of one user: %d accepted, %d refused with 403; want %d and %d",
			tries, accepted.Load(), forbidden.Load(), maxUserConns, tries-maxUserConns)
	}

	const unauthenticated = 400
	var refused atomic.Int32
	jobs := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				token := "not-a-token-" + strconv.Itoa(i)
				if i%2 == 1 {
					token = "" // no token at all
				}
				_, resp, err := dialer.Dial(a.wsURL(a.conv, token), nil)
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Errorf("unauthenticated handshake %d: %v (%s), want 403", i, err, statusOf(resp))
					continue
				}
				refused.Add(1)
			}
		}()
	}
	for i := 0; i < unauthenticated; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	big := strings.Repeat("a", 900<<10)
	for _, c := range []struct{ name, target, extra string }{
		{"900 KB token in the request line", chatPath(a.conv) + "?token=" + big, ""},
		{"900 KB header", chatPath(a.conv), "Cookie: session=" + big + "\r\n"},
	} {
		rc, resp, err := rawHandshake(a.sc.Addr, c.target, c.extra)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		rc.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%s: %s, want 431", c.name, resp.Status)
		}
	}
	time.Sleep(100 * time.Millisecond)
	grew := len(a.sc.Log()) - logBefore
	if grew >= 64<<10 {
		t.Errorf("the log grew by %d bytes during the flood, want under 64 KiB", grew)
	}
	a.finish(fmt.Sprintf("%d handshakes of one user: %d accepted, %d got 403; %d unauthenticated: 403; two 900 KB requests: 431; log grew %d bytes",
		tries, accepted.Load(), forbidden.Load(), refused.Load(), grew))
}

// g. One user stores small files as fast as its connections may send
// (two connections, 90 frames a second each, under RATE_LIMIT): after
// FILE_BURST_BYTES (each file counted as 64 KiB) it gets "Too many files:
// at most 1 MB per second" for all but FILE_BYTES_PER_SECOND.
func TestFileFlood(t *testing.T) {
	const (
		conns    = 2
		perConn  = 90 // frames a second
		duration = 4 * time.Second
	)
	a := newArena(t, nil)
	tooMany := errorFrame("Too many files: at most 1 MB per second")
	type tally struct {
		sent, stored, refused int
		err                   error
	}
	tallies := make([]tally, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conns; i++ {
		ws := a.join(a.talker, a.conv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			tl := &tallies[i]
			done := make(chan struct{})
			sentAll := make(chan int, 1) // tl.sent, before the probe is written
			go func() {
				defer close(done)
				var buf []byte
				want := -1 // new_message frames to wait for, once probed
				for want < 0 || tl.stored < want {
					_ = ws.SetReadDeadline(time.Now().Add(frameWait))
					var err error
					if buf, err = readInto(ws, buf); err != nil {
						tl.err = err
						return
					}
					switch {
					case frameType(buf) == "new_message" && latestContains(buf, fmt.Sprintf(`"filename": "c%d-`, i)):
						tl.stored++
					case frameType(buf) == "new_message":
					case string(buf) == tooMany:
						tl.refused++
					case string(buf) == errorFrame("Unknown message type: hostile_probe"):
						// Every frame before it has been answered; the
						// new_message frames come through the group, and may
						// come after it (as in Python): read them all.
						want = <-sentAll - tl.refused
					default:
						tl.err = fmt.Errorf("unexpected frame %.200s", buf)
						return
					}
				}
			}()
			for k := 0; time.Since(start) < duration; k++ {
				time.Sleep(time.Until(start.Add(time.Duration(k) * time.Second / perConn)))
				frame := fmt.Sprintf(`{"type": "file_message", "file": "aGk=", "filename": "c%d-%d.txt"}`, i, k)
				if err := ws.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
					tl.err = err
					break
				}
				tl.sent++
			}
			sentAll <- tl.sent
			_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "hostile_probe"}`))
			<-done
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var sent, stored, refused int
	for i, tl := range tallies {
		if tl.err != nil {
			t.Errorf("connection %d: %v", i, tl.err)
		}
		sent += tl.sent
		stored += tl.stored
		refused += tl.refused
	}
	var rows int
	if err := a.db.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1 AND message_type = 'file'`, a.conv).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	burst := fileBurstBytes / minFileCost
	most := burst + int(elapsed.Seconds()*fileBytesPerSec/minFileCost) + 1
	switch {
	case rows != stored:
		t.Errorf("%d files in the database, %d new_message frames", rows, stored)
	case stored+refused != sent:
		t.Errorf("%d sent, %d stored + %d refused", sent, stored, refused)
	case stored < burst || stored > most:
		t.Errorf("%d files stored in %v, want between the burst (%d) and %d", stored, elapsed.Round(time.Millisecond), burst, most)
	}
	a.finish(fmt.Sprintf("%d files sent in %v: %d stored (burst %d, at most %d), %d refused with %s",
		sent, elapsed.Round(time.Millisecond), stored, burst, most, refused, tooMany))
}

// h. A text frame that is not UTF-8 closes with 1007, however it comes:
// whole, split across fragments, or in a 10 MB file_message. A character
// split across fragments is fine.
func TestInvalidUTF8(t *testing.T) {
	a := newArena(t, nil)
	file := base64.StdEncoding.EncodeToString(make([]byte, 7<<20))
	for _, c := range []struct {
		name   string
		frames []string
	}{
		{"whole", []string{"{\"type\": \"chat_message\", \"message\": \"\xff\"}"}},
		{"split", []string{"{\"type\": \"chat_message\", \"message\": \"\xe2\x82", "x\"}"}},
		{"10 MB file_message", []string{"{\"type\": \"file_message\", \"filename\": \"\xc0\xaf.txt\", \"file\": \"" + file + "\"}"}},
	} {
		rc := a.rawJoin(a.talker)
		for i, f := range c.frames {
			op := byte(opText)
			if i > 0 {
				op = opContinuation
			}
			if err := rc.writeFrame(i == len(c.frames)-1, op, []byte(f)); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		_ = rc.SetReadDeadline(time.Now().Add(frameWait))
		msg, err := rc.readMessage(nil)
		if !errors.Is(err, errClosed{1007}) {
			t.Errorf("%s: %q, %v; want close 1007", c.name, msg, err)
		}
	}
	rc := a.rawJoin(a.talker)
	_ = rc.writeFrame(false, opText, []byte("{\"type\": \"chat_message\", \"message\": \"\xe2\x82"))
	_ = rc.writeFrame(true, opContinuation, []byte("\xac\"}"))
	_ = rc.SetReadDeadline(time.Now().Add(frameWait))
	msg, err := rc.readMessage(nil)
	if err != nil || frameType(msg) != "new_message" || !latestContains(msg, `"content": "\u20ac"`) {
		t.Errorf("a euro sign split across fragments: %.200q, %v; want its new_message", msg, err)
	}
	var saved int
	if err := a.db.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1`, a.conv).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved != 1 {
		t.Errorf("%d messages saved, want 1", saved)
	}
	a.finish("three frames that are not UTF-8 (whole, split, 10 MB) closed with 1007; a character split across fragments saved")
}

// Two clients that never read hold a 40 MiB history each (80 of the 96 MiB
// budget) for WRITE_TIMEOUT. Work that then waits for memory must end as
// MEMORY_WAIT says once it has waited that long: a connect with 503 and
// Retry-After, a new message whose history does not fit with close 1013
// to the conversation's members (chat.go: "have them reconnect for a
// fresh history"). The memory wait is not part of the load's DB_TIMEOUT,
// so it is the wait, not a database deadline, that ends it.
//
// Not in parallel with TestHistoryToNonReaders, though it mostly waits
// too: its clients allocate and read tens of MiB, which under -race costs
// the test process seconds of CPU, and TestHistoryToNonReaders's
// bystander, whose latency is judged, lives in the same process.
func TestMemoryWaitOutlastsDBTimeout(t *testing.T) {
	const size = 1 << 20
	var victimConv, victim int64
	fill := func(a *arena, conv int64, n int) {
		fx := a.db.Fixture()
		at := time.Now().Add(-time.Hour)
		for i := 0; i < n; i++ {
			content := strings.Repeat(fmt.Sprintf("%02d-abcdefghijklmnopqrstuvwxyz-", i), size/30+1)[:size]
			if _, err := fx.Message(context.Background(), conv, a.talker, content, at.Add(time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	a := newQuietArena(t, func(a *arena) {
		fill(a, a.conv, 40)
		victim = a.db.CreateUser(t, "victim@example.com", "Vic Victim", "listener")
		victimConv = a.db.CreateConversation(t, victim, a.talker, "active")
		fill(a, victimConv, 30)
		a.tokens[victim] = mintAccess(victim)
	})
	vc := a.join(victim, victimConv) // reads its 30 MiB history
	target := chatPath(a.conv) + "?token=" + url.QueryEscape(a.tokens[a.talker])
	for i := 0; i < 2; i++ {
		rc, resp, err := rawHandshake(a.sc.Addr, target, "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rc.Close() })
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("non-reader %d: %s", i, resp.Status)
		}
	}
	held := time.Now() // until about held + WRITE_TIMEOUT

	connected := make(chan string, 1)
	go func() {
		start := time.Now()
		rc, resp, err := rawHandshake(a.sc.Addr, target, "")
		switch {
		case err != nil:
			connected <- err.Error()
		default:
			rc.Close()
			connected <- fmt.Sprintf("%s (Retry-After %q) after %v", resp.Status, resp.Header.Get("Retry-After"), time.Since(start).Round(time.Millisecond))
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "1" {
				return
			}
			t.Errorf("a connect that waited for memory: %s; want 503 with Retry-After: 1", resp.Status)
		}
	}()

	if err := vc.WriteMessage(websocket.TextMessage, []byte(`{"type": "chat_message", "message": "victim"}`)); err != nil {
		t.Fatal(err)
	}
	_ = vc.SetReadDeadline(held.Add(writeTimeout - 1500*time.Millisecond))
	_, data, err := vc.ReadMessage()
	var victimOutcome string
	switch {
	case err == nil && frameType(data) == "new_message":
		victimOutcome = "its new_message"
	case closeCode(err) == closeTryAgainLater:
		victimOutcome = "close 1013"
	default:
		victimOutcome = fmt.Sprintf("%.100s, %v", data, err)
		t.Errorf("the member whose message's history did not fit got %s; want close 1013; the sidecar logged:\n%s",
			victimOutcome, strings.Join(a.logLines("load history"), "\n"))
	}
	var saved int
	if err := a.db.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1 AND content = 'victim'`, victimConv).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	if saved != 1 {
		t.Errorf("the victim's message saved %d times, want once", saved)
	}
	a.finish(fmt.Sprintf("with 80 MiB held by two non-readers, a connect got %s; a member whose new history did not fit got %s",
		<-connected, victimOutcome))
}

// A long conversation (13,000 short messages: a 4.8 MB history, so every
// new_message is 4.8 MB) and a talker who sends three messages at once.
// Both members read as fast as they can, so neither is behind and both
// must get all three: the history the frames share is counted once
// against SEND_QUEUE_BYTES, and the frame at the front of a queue counts
// whatever its size.
func TestBurstInLongConversation(t *testing.T) {
	const messages = 13000
	a := newArena(t, func(a *arena) {
		_, err := a.db.DB.Exec(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
			SELECT $1, $2, repeat('x', 100) || g, 'text', false, now() - interval '1 day' + g * interval '1 second'
			FROM generate_series(1, $3) g`, a.conv, a.talker, messages)
		if err != nil {
			t.Fatal(err)
		}
	})
	members := map[string]*rawConn{"talker": a.rawJoin(a.talker), "listener": a.rawJoin(a.listener)}
	type got struct {
		name    string
		n       int
		largest int
		err     error
	}
	results := make(chan got, len(members))
	for name, rc := range members {
		go func() {
			g := got{name: name}
			var buf []byte
			for g.n < 3 {
				_ = rc.SetReadDeadline(time.Now().Add(frameWait))
				var err error
				if buf, err = rc.readMessageInto(buf, nil); err != nil {
					g.err = err
					break
				}
				if frameType(buf) != "new_message" || !latestContains(buf, fmt.Sprintf(`"content": "burst %d"`, g.n)) {
					g.err = fmt.Errorf("frame %.100s", buf)
					break
				}
				g.largest = max(g.largest, len(buf))
				g.n++
			}
			results <- g
		}()
	}
	talker := members["talker"]
	for i := 0; i < 3; i++ {
		if err := talker.writeFrame(true, opText, []byte(fmt.Sprintf(`{"type": "chat_message", "message": "burst %d"}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	var outcome []string
	for range members {
		g := <-results
		o := fmt.Sprintf("%s got %d of 3 new_message frames of %s", g.name, g.n, mib(int64(g.largest)))
		switch {
		case g.n == 3:
		default:
			o += fmt.Sprintf(", then %v", g.err)
			t.Errorf("%s; want all three: a member that reads as fast as it can is not behind", o)
		}
		outcome = append(outcome, o)
	}
	a.finish(strings.Join(outcome, "; "))
}
