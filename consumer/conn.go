package consumer

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/chatsidecar/sidecar/chat"
)

// Close codes of the connection's own limits (RFC 6455 section 7.4.1).
const (
	closeTryAgainLater = 1013 // the process is out of memory budget: reconnect later
)

// queuedFrameCost is what one queued frame costs besides its bytes (the
// queue entry, the frame's header), so a queue of many tiny frames is
// bounded too.
const queuedFrameCost = 64

// conn is one WebSocket. Its reader is the goroutine running readLoop, which
// handles client frames one at a time, in order, as a Channels consumer does.
// Its writer is a goroutine that enqueue starts when frames wait and none
// runs, and that ends when the queue is empty: an idle connection has no
// writer. Nothing else writes to the socket.
//
// A connection ends exactly once, through end. Its states:
//
//	open      frames are read, handled and queued.
//	draining  (shutdown) nothing more is read or queued; the writer writes
//	          what is queued, then the close frame, then closes the socket.
//	closing   nothing more is handled or queued; what was queued is
//	          dropped; the writer finishes the frame it is writing (within
//	          WRITE_TIMEOUT), writes the close frame, then lingers: it
//	          half-closes the socket and waits, within WRITE_TIMEOUT, for the
//	          peer to close its side, the reader reading and discarding
//	          what still arrives (see linger).
//	          Without a code (the peer is gone, or a shutdown gave up
//	          waiting) the write in progress is cut off at once instead,
//	          from open, draining or closing alike.
//	closed    the socket is closed; gone is closed.
//
// Before the upgrade (ws is nil) a connection can be ended too (a group
// event may overflow its queue); the handler then answers over HTTP.
type conn struct {
	srv     *Server
	route   *route
	user    chat.User
	conv    chat.Conversation // chat: as loaded at connect; the pair never changes
	segment string            // chat: the conversation id as written in the URL
	group   string
	channel string

	limiter *rate.Limiter // nil: no rate limit
	refused int           // frames refused in a row by the limiter; reader only

	done     chan struct{} // closed by end: stop producing for this connection
	doneOnce sync.Once     // the reader's end and the writer's close may race to close done
	readDone chan struct{} // closed when the reader has stopped reading
	gone     chan struct{} // closed when the socket is closed

	mu       sync.Mutex
	ws       *websocket.Conn // set once, after the upgrade
	state    connState
	code     int // close frame of closing and draining; 0: none
	reason   string
	sent     bool           // the close frame has been written already (gorilla's 1009)
	answered bool           // the reader has read the peer's close frame
	stopping bool           // shutdown asked the reader to stop
	msgEnd   time.Time      // while a client message is being read: when it must be whole
	ready    bool           // the connect frames are queued; group frames follow them
	pending  []*frame       // group frames that arrived before the connect frames
	queue    []*frame       // frames for the writer; nil entries are pings
	queued   int64          // bytes held for the writer: see hold
	inners   map[*frame]int // shared bodies (histories) held: each counts once
	current  *frame         // the frame being written
	writing  bool           // a writer goroutine runs
}

type connState int

const (
	stateOpen connState = iota
	stateDraining
	stateClosing
	stateClosed
)

func newConn(s *Server, r *route) *conn {
	return &conn{srv: s, route: r, done: make(chan struct{}), readDone: make(chan struct{}), gone: make(chan struct{})}
}

// logger returns the server's logger with what identifies the connection;
// built when something is logged, so idle connections hold none.
func (c *conn) logger() *slog.Logger {
	return c.srv.log.With("user", c.user.ID, "group", c.group, "channel", c.channel)
}

// start queues the connect frames (held by the caller, handed over here),
// then the group frames that arrived meanwhile, and lets group frames
// through from now on.
func (c *conn) start(ws *websocket.Conn, frames ...*frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws = ws
	if c.state != stateOpen {
		for _, f := range frames {
			f.release()
		}
		c.startWriter() // ended before the upgrade: say goodbye now
		return
	}
	for _, f := range frames {
		c.queue = append(c.queue, f)
		c.queued += c.account(f, +1)
	}
	c.queue = append(c.queue, c.pending...)
	c.pending = nil
	c.ready = true
	c.startWriter()
}

// enqueue queues f (the caller keeps its own hold) without ever waiting.
// A connection that falls behind is closed, never waited for
// (docs/PROTOCOL.md section 8): with 1008 when its queue would pass
// SendQueueBytes, with 1013 when the process's memory budget is spent and
// it still has frames waiting. A connection whose queue is empty always
// takes the frame, however large: it is keeping up.
func (c *conn) enqueue(f *frame) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	behind := len(c.queue)+len(c.pending) > 0
	switch {
	case behind && c.queued-c.front()+c.cost(f) > c.srv.cfg.SendQueueBytes:
		queued := c.queued
		c.mu.Unlock()
		c.srv.metrics.drop("send_queue")
		c.logger().Warn("dropping connection", "reason", "send queue full", "queued_bytes", queued)
		c.end(websocket.ClosePolicyViolation, "send queue full")
		return
	case behind && c.srv.mem.spent():
		queued := c.queued
		c.mu.Unlock()
		c.srv.metrics.drop("memory_budget")
		c.logger().Warn("dropping connection", "reason", "memory budget spent", "queued_bytes", queued)
		c.end(closeTryAgainLater, "server busy")
		return
	}
	f.hold()
	c.queued += c.account(f, +1)
	if !c.ready {
		c.pending = append(c.pending, f)
	} else {
		c.queue = append(c.queue, f)
		c.startWriter()
	}
	c.mu.Unlock()
}

// send queues a small frame made for this connection alone.
func (c *conn) send(kind string, b []byte) {
	f := newFrame(c.srv.mem, kind, b)
	c.enqueue(f)
	f.release()
}

// ping queues a ping unless frames are already waiting (the writer is busy,
// and a peer that stops reading is caught by the write timeout).
func (c *conn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateOpen && c.ready && len(c.queue) == 0 {
		c.queue = append(c.queue, nil)
		c.startWriter()
	}
}

// startWriter starts the writer if frames wait and none runs; c.mu is held.
func (c *conn) startWriter() {
	if !c.writing && c.ws != nil && c.state != stateClosed {
		c.writing = true
		go c.write()
	}
}

// dropQueue releases every queued frame; c.mu is held.
func (c *conn) dropQueue() {
	for _, f := range c.queue {
		if f != nil {
			f.release()
		}
	}
	for _, f := range c.pending {
		f.release()
	}
	c.queue, c.pending, c.queued, c.inners = nil, nil, 0, nil
	if c.current != nil {
		// The frame being written stays held until its write ends.
		c.queued = c.account(c.current, +1)
	}
}

// cost is what holding f adds: its own bytes, and its shared body's unless
// a frame held already holds that body (the new_messages of one batch
// share one history: a connection that keeps up with them holds it once).
// c.mu is held.
func (c *conn) cost(f *frame) int64 {
	n := f.size + queuedFrameCost
	if f.inner != nil && c.inners[f.inner] > 0 {
		n -= f.inner.size
	}
	return n
}

// account records f held (+1) or let go (-1) and returns the bytes that
// adds or removes: a shared body counts from its first holder until its
// last lets go. c.mu is held.
func (c *conn) account(f *frame, d int) int64 {
	if d > 0 {
		n := c.cost(f)
		if f.inner != nil {
			if c.inners == nil {
				c.inners = map[*frame]int{}
			}
			c.inners[f.inner]++
		}
		return n
	}
	n := f.size + queuedFrameCost
	if f.inner != nil {
		if c.inners[f.inner]--; c.inners[f.inner] > 0 {
			n -= f.inner.size // others still hold it
		} else {
			delete(c.inners, f.inner)
		}
	}
	return n
}

// front is the size of the frame a queue may hold whatever its size: the
// one being written, or else the oldest waiting (an empty queue takes any
// frame). A connection falls behind when more than SendQueueBytes wait
// besides it. c.mu is held.
func (c *conn) front() int64 {
	switch {
	case c.current != nil:
		return c.current.size + queuedFrameCost
	case len(c.pending) > 0:
		return c.pending[0].size + queuedFrameCost
	case len(c.queue) > 0 && c.queue[0] != nil:
		return c.queue[0].size + queuedFrameCost
	}
	return 0
}

// end ends the connection with a close frame of code (0: none, and a write
// in progress is cut off). The first call decides, except that an end
// overrides a drain still in progress, as when a shutdown stops waiting.
func (c *conn) end(code int, reason string) { c.finish(code, reason, false) }

// drain ends the connection after the writer has written what is queued.
func (c *conn) drain(code int, reason string) { c.finish(code, reason, true) }

func (c *conn) finish(code int, reason string, drain bool) {
	c.mu.Lock()
	if c.state != stateOpen {
		// Ending already: only a cut (no code) changes anything now.
		if c.state != stateClosed && !drain && code == 0 {
			c.code, c.reason = 0, ""
			c.state = stateClosing
			c.dropQueue()
			c.cut()
		}
		c.mu.Unlock()
		return
	}
	c.code, c.reason = code, reason
	for _, f := range c.pending {
		f.release()
		c.queued -= c.account(f, -1)
	}
	c.pending = nil
	if drain {
		c.state = stateDraining
	} else {
		c.state = stateClosing
		c.dropQueue()
	}
	if !drain && code == 0 {
		// No close frame to send: cut off a write the peer is not
		// reading. With a close frame, the frame in progress must end
		// first, or the close frame could not follow it.
		c.cut()
	}
	c.startWriter()
	c.mu.Unlock()
	c.doneOnce.Do(func() { close(c.done) })
}

// cut makes every read and write of the socket in progress or to come fail
// at once; c.mu is held.
func (c *conn) cut() {
	if c.ws != nil {
		_ = c.ws.UnderlyingConn().SetDeadline(time.Now())
	}
}

// write is the writer: it writes queued frames until the queue is empty,
// and after end it writes the close frame and closes the socket.
func (c *conn) write() {
	cfg := c.srv.cfg
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			if c.state == stateOpen {
				c.writing = false
				c.mu.Unlock()
				return
			}
			code, reason, sent := c.code, c.reason, c.sent
			c.mu.Unlock()
			if code != 0 {
				var err error
				if !sent {
					msg := websocket.FormatCloseMessage(code, reason)
					err = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(cfg.WriteTimeout))
				}
				if err == nil {
					c.linger()
				}
			}
			c.closeSocket()
			return
		}
		f := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.current = f
		c.mu.Unlock()

		_ = c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		var err error
		if f == nil {
			err = c.ws.WriteMessage(websocket.PingMessage, nil)
		} else {
			err = c.writeFrame(f)
			c.mu.Lock()
			if c.current == f {
				c.queued -= c.account(f, -1)
				c.current = nil
			}
			c.mu.Unlock()
			f.release()
		}
		if err != nil {
			c.logger().Debug("write failed", "err", err)
			c.closeSocket()
			return
		}
	}
}

// linger runs after the close frame: it half-closes the socket and waits,
// within WRITE_TIMEOUT, for the peer to close its side (RFC 6455 section
// 7.1.1), reading and discarding what the peer still sends. Closing a
// socket with bytes unread makes the kernel answer with a reset, and a
// reset makes the peer's kernel discard what the peer has not read yet:
// the end of the last frame, and the close frame itself.
func (c *conn) linger() {
	nc := c.ws.UnderlyingConn()
	if hc, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	deadline := time.Now().Add(c.srv.cfg.WriteTimeout)
	if !c.readUntil(deadline) {
		return
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-c.readDone: // the peer's close frame, its end, or a shutdown
	case <-timer.C:
		return
	}
	c.mu.Lock()
	answered := c.answered
	c.mu.Unlock()
	if answered {
		return // the closing handshake is complete: nothing more may come
	}
	// The reader has stopped on its own (a shutdown, a frame too big or
	// too slow) and cannot read on: the rest is discarded here, until the
	// peer's end or the deadline.
	if c.readUntil(deadline) {
		_, _ = io.Copy(io.Discard, nc)
	}
}

// readUntil sets the socket's read deadline unless the connection has
// been cut meanwhile, and reports whether it did.
func (c *conn) readUntil(deadline time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code == 0 {
		return false
	}
	_ = c.ws.UnderlyingConn().SetReadDeadline(deadline)
	return true
}

func (c *conn) writeFrame(f *frame) error {
	w, err := c.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for _, p := range f.parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	c.srv.metrics.frameOut(c.route.name, f.kind, f.size)
	return w.Close()
}

// closeSocket closes the socket once and marks the connection closed; the
// reader's next read fails and the reader leaves.
func (c *conn) closeSocket() {
	c.mu.Lock()
	c.state = stateClosed
	c.dropQueue()
	c.writing = false
	c.mu.Unlock()
	_ = c.ws.Close()
	c.doneOnce.Do(func() { close(c.done) })
	close(c.gone)
}

// stopReading asks the reader to stop before its next frame (shutdown):
// the frame being handled is finished, the connection then drains.
func (c *conn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopping = true
	if c.ws != nil {
		_ = c.ws.UnderlyingConn().SetReadDeadline(time.Now())
	}
}

// extendRead moves the read deadline: the peer has shown it is there. A
// message being read must still be whole by its own deadline, however many
// pongs arrive meanwhile. Under c.mu, so it never undoes stopReading.
func (c *conn) extendRead() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping || c.state != stateOpen {
		return // the deadline is shutdown's or linger's now
	}
	cfg := c.srv.cfg
	d := time.Now().Add(cfg.PingInterval + cfg.PingTimeout)
	if !c.msgEnd.IsZero() && c.msgEnd.Before(d) {
		d = c.msgEnd
	}
	_ = c.ws.SetReadDeadline(d)
}

// messageBegins sets the deadline of the message whose first frame has
// arrived; messageEnds clears it.
func (c *conn) messageBegins() {
	c.mu.Lock()
	c.msgEnd = time.Now().Add(c.srv.cfg.MessageTimeout)
	c.mu.Unlock()
	c.extendRead()
}

func (c *conn) messageEnds() {
	c.mu.Lock()
	c.msgEnd = time.Time{}
	c.mu.Unlock()
	c.extendRead()
}

func (c *conn) isOpen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateOpen
}

func (c *conn) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// errInvalidUTF8 ends a connection whose text frame is not UTF-8;
// errMessageTimeout one whose message did not arrive whole in time.
var (
	errInvalidUTF8    = errors.New("text frame is not valid UTF-8")
	errMessageTimeout = errors.New("message did not arrive whole within MESSAGE_TIMEOUT")
)

// readLoop reads and handles client frames; when it stops, the connection
// ends, and once its socket is closed it leaves its group and the server.
func (c *conn) readLoop() {
	defer c.srv.leave(c)
	ws := c.ws
	ws.SetReadLimit(c.srv.cfg.MaxFrameBytes)
	c.extendRead()
	ws.SetPongHandler(func(string) error { c.extendRead(); return nil })
	for {
		typ, data, charged, err := c.readMessage()
		if err != nil || c.isStopping() {
			c.srv.mem.release(charged)
			c.readEnded(err)
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.mu.Lock()
				c.answered = true
				c.mu.Unlock()
			}
			close(c.readDone)
			<-c.gone
			return
		}
		// A connection that is ending reads on (see linger) but handles
		// nothing more.
		if c.isOpen() && c.allow() {
			c.route.handle(c, typ, data)
		}
		c.srv.mem.release(charged)
	}
}

// readMessage reads the next client message, acquiring its bytes from the
// process budget as they arrive (charged is what the caller releases once
// the message is handled). The message must be whole within MessageTimeout
// of its first frame, however it is fragmented, and a text message must be
// UTF-8 (RFC 6455 section 8.1).
func (c *conn) readMessage() (typ int, data []byte, charged int64, err error) {
	typ, r, err := c.ws.NextReader()
	if err != nil {
		return 0, nil, 0, err
	}
	c.messageBegins()
	defer c.messageEnds()
	const first = 4 << 10
	if err := c.srv.mem.acquire(c.srv.ctx, first, c.srv.cfg.BudgetWait, true); err != nil {
		return 0, nil, 0, err
	}
	charged = first
	buf := make([]byte, 0, first)
	for {
		if len(buf) == cap(buf) {
			grow := int64(cap(buf))
			if err := c.srv.mem.acquire(c.srv.ctx, grow, c.srv.cfg.BudgetWait, false); err != nil {
				return 0, nil, charged, err
			}
			charged += grow
			nb := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() && !c.isStopping() {
			return 0, nil, charged, errMessageTimeout
		}
		if err != nil {
			return 0, nil, charged, err
		}
	}
	c.extendRead()
	if typ == websocket.TextMessage && !utf8.Valid(buf) {
		return typ, nil, charged, errInvalidUTF8
	}
	return typ, buf, charged, nil
}

// readEnded ends the connection once the reader has stopped.
func (c *conn) readEnded(err error) {
	if !c.isOpen() {
		return // ending already; this is the peer's answer or linger's deadline
	}
	switch {
	case c.isStopping():
		c.drain(websocket.CloseGoingAway, "server shutting down")
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent the 1009 close frame.
		c.srv.metrics.closed("frame_too_big")
		c.logger().Info("closed: frame too big")
		c.mu.Lock()
		c.sent = true
		c.mu.Unlock()
		c.end(websocket.CloseMessageTooBig, "")
	case errors.Is(err, errInvalidUTF8):
		c.srv.metrics.closed("invalid_utf8")
		c.logger().Info("closed: invalid UTF-8")
		c.end(websocket.CloseInvalidFramePayloadData, "invalid UTF-8")
	case errors.Is(err, errMessageTimeout):
		c.srv.metrics.closed("message_timeout")
		c.logger().Info("closed: message too slow")
		c.end(websocket.ClosePolicyViolation, "message took too long")
	case errors.Is(err, errBusy):
		c.srv.metrics.drop("memory_budget")
		c.logger().Warn("closed: memory budget spent while reading a frame")
		c.end(closeTryAgainLater, "server busy")
	default:
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.srv.metrics.closed("timeout")
		}
		if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
			c.logger().Debug("read ended", "err", err)
		}
		c.end(0, "")
	}
}

// allow applies the rate limit to one frame: it reports whether to handle
// it, and closes a connection that keeps sending past the limit.
func (c *conn) allow() bool {
	if c.limiter == nil || c.limiter.Allow() {
		c.refused = 0
		return true
	}
	c.refused++
	c.srv.metrics.rateLimit()
	if c.refused > c.srv.cfg.RateBurst {
		c.srv.metrics.closed("rate_limit")
		c.logger().Warn("closing: rate limit exceeded")
		c.end(websocket.ClosePolicyViolation, "rate limit exceeded")
		return false
	}
	if !c.route.quiet {
		c.enqueue(c.srv.rateLimited)
	}
	return false
}
