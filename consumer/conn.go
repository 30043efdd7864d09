package consumer

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/chatsidecar/sidecar/chat"
)

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
//	closing   nothing more is read or queued; what was queued is dropped and
//	          a write in progress is cut off; the writer writes the close
//	          frame (when there is a code) and closes the socket.
//	closed    the socket is closed; gone is closed.
//
// Before the upgrade (ws is nil) a connection can be ended too (a group
// event may overflow its queue); the handler then answers over HTTP.
type conn struct {
	srv     *Server
	user    chat.User
	conv    chat.Conversation // as loaded at connect: the pair never changes
	segment string            // the conversation id as written in the URL
	group   string
	channel string

	limiter *rate.Limiter // nil: no rate limit
	refused int           // frames refused in a row by the limiter; reader only

	done chan struct{} // closed by end: stop producing for this connection
	gone chan struct{} // closed when the socket is closed

	mu       sync.Mutex
	ws       *websocket.Conn // set once, after the upgrade
	state    connState
	code     int // close frame of closing and draining; 0: none
	reason   string
	stopping bool       // shutdown asked the reader to stop
	ready    bool       // the connect frames are queued; group frames follow them
	pending  [][]byte   // group frames that arrived before the connect frames
	queue    []outFrame // frames for the writer
	writing  bool       // a writer goroutine runs
}

type connState int

const (
	stateOpen connState = iota
	stateDraining
	stateClosing
	stateClosed
)

// outFrame is one frame for the writer: text, or a ping when ping is set.
type outFrame struct {
	data []byte
	ping bool
}

func newConn(s *Server) *conn {
	return &conn{srv: s, done: make(chan struct{}), gone: make(chan struct{})}
}

// logger returns the server's logger with what identifies the connection;
// built when something is logged, so idle connections hold none.
func (c *conn) logger() *slog.Logger {
	return c.srv.log.With("user", c.user.ID, "group", c.group, "channel", c.channel)
}

// start queues the connect frames, then the group frames that arrived
// meanwhile, and lets group frames through from now on.
func (c *conn) start(ws *websocket.Conn, frames ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ws = ws
	if c.state != stateOpen {
		// Ended before the upgrade: the writer says goodbye now.
		c.startWriter()
		return
	}
	for _, f := range append(frames, c.pending...) {
		c.queue = append(c.queue, outFrame{data: f})
	}
	c.pending = nil
	c.ready = true
	c.startWriter()
}

// enqueue queues a frame without ever waiting: a connection whose queue is
// full is closed (docs/PROTOCOL.md section 8), never waited for.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	n := len(c.queue)
	if !c.ready {
		n = len(c.pending)
	}
	if n >= c.srv.cfg.SendQueue {
		c.mu.Unlock()
		c.logger().Warn("dropping connection", "reason", "send queue full")
		c.end(websocket.ClosePolicyViolation, "send queue full")
		return
	}
	if !c.ready {
		c.pending = append(c.pending, frame)
	} else {
		c.queue = append(c.queue, outFrame{data: frame})
		c.startWriter()
	}
	c.mu.Unlock()
}

// ping queues a ping unless frames are already waiting (the writer is busy,
// and a peer that stops reading is caught by the write timeout).
func (c *conn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateOpen && c.ready && len(c.queue) == 0 {
		c.queue = append(c.queue, outFrame{ping: true})
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

// end ends the connection with a close frame of code (0: none). The first
// call decides, except that a cut (any call but a drain) overrides a drain
// still in progress, as when a shutdown stops waiting.
func (c *conn) end(code int, reason string) { c.finish(code, reason, false) }

// drain ends the connection after the writer has written what is queued.
func (c *conn) drain(code int, reason string) { c.finish(code, reason, true) }

func (c *conn) finish(code int, reason string, drain bool) {
	c.mu.Lock()
	switch {
	case c.state == stateClosing || c.state == stateClosed:
		c.mu.Unlock()
		return
	case c.state == stateDraining && drain:
		c.mu.Unlock()
		return
	case c.state == stateDraining:
		code, reason = c.code, c.reason // keep the drain's close frame
	}
	c.code, c.reason = code, reason
	c.pending = nil
	if drain {
		c.state = stateDraining
	} else {
		c.state = stateClosing
		c.queue = nil
	}
	ws := c.ws
	if ws != nil && !drain {
		// Cut off a write the peer is not reading; the writer's next
		// write sets its own deadline again.
		_ = ws.UnderlyingConn().SetWriteDeadline(time.Now())
	}
	c.startWriter()
	c.mu.Unlock()
	select {
	case <-c.done:
	default:
		close(c.done)
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
			code, reason := c.code, c.reason
			c.mu.Unlock()
			if code != 0 {
				msg := websocket.FormatCloseMessage(code, reason)
				_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(cfg.WriteTimeout))
			}
			c.closeSocket()
			return
		}
		f := c.queue[0]
		c.queue[0] = outFrame{}
		c.queue = c.queue[1:]
		c.mu.Unlock()

		_ = c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
		var err error
		if f.ping {
			err = c.ws.WriteMessage(websocket.PingMessage, nil)
		} else {
			err = c.ws.WriteMessage(websocket.TextMessage, f.data)
		}
		if err != nil {
			c.logger().Debug("write failed", "err", err)
			c.closeSocket()
			return
		}
	}
}

// closeSocket closes the socket once and marks the connection closed; the
// reader's next read fails and the reader leaves.
func (c *conn) closeSocket() {
	c.mu.Lock()
	c.state = stateClosed
	c.queue = nil
	c.writing = false
	c.mu.Unlock()
	_ = c.ws.Close()
	select {
	case <-c.done:
	default:
		close(c.done)
	}
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

// extendRead moves the read deadline: the peer has shown it is there. Under
// c.mu, so it never undoes stopReading.
func (c *conn) extendRead() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopping {
		cfg := c.srv.cfg
		_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PingInterval + cfg.PingTimeout))
	}
}

func (c *conn) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// readLoop reads and handles client frames; when it stops, the connection
// ends, and once its socket is closed it leaves its group and the server.
func (c *conn) readLoop() {
	defer c.srv.leave(c)
	ws := c.ws
	ws.SetReadLimit(c.srv.cfg.MaxFrameBytes)
	c.extendRead()
	ws.SetPongHandler(func(string) error { c.extendRead(); return nil })
	for {
		typ, data, err := ws.ReadMessage()
		if err != nil || c.isStopping() {
			c.readEnded(err)
			<-c.gone
			return
		}
		c.extendRead()
		if !c.allow() {
			continue
		}
		if typ == websocket.BinaryMessage {
			c.enqueue(errorFrame(errBinary))
			continue
		}
		c.handle(data)
	}
}

// readEnded ends the connection once the reader has stopped.
func (c *conn) readEnded(err error) {
	switch {
	case c.isStopping():
		c.drain(websocket.CloseGoingAway, "server shutting down")
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent the 1009 close frame.
		c.logger().Info("closed: frame too big")
		c.end(0, "")
	default:
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
	if c.refused > c.srv.cfg.RateBurst {
		c.logger().Warn("closing: rate limit exceeded")
		c.end(websocket.ClosePolicyViolation, "rate limit exceeded")
		return false
	}
	c.enqueue(c.srv.rateLimited)
	return false
}
