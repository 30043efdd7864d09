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

// conn is one accepted WebSocket: one goroutine reads (readLoop), one
// writes (writeLoop); nothing else touches the socket but the
// concurrency-safe close calls.
type conn struct {
	srv     *Server
	wsMu    sync.Mutex
	ws      *websocket.Conn // set once, after the upgrade
	log     *slog.Logger
	user    chat.User
	conv    chat.Conversation // as loaded at connect: the pair never changes
	segment string            // the conversation id as written in the URL
	group   string
	channel string

	send chan []byte   // frames for the writer; never closed
	done chan struct{} // closed once, when the connection ends

	mu      sync.Mutex
	ready   bool     // the connect frames are queued
	pending [][]byte // group frames that arrived before that
	closing bool     // shutting down: the writer sends 1001 when drained

	endOnce sync.Once

	limiter *rate.Limiter // nil: no rate limit
	refused int           // frames refused in a row by the limiter
}

// start queues the connect frames, then what arrived meanwhile.
func (c *conn) start(frames ...[]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range append(frames, c.pending...) {
		if !c.push(f) {
			return
		}
	}
	c.pending = nil
	c.ready = true
}

// enqueue queues a frame for the writer without ever waiting: a connection
// whose queue is full is closed (PROTOCOL.md section 8).
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		if len(c.pending) >= cap(c.send) {
			c.drop("send queue full")
			return
		}
		c.pending = append(c.pending, frame)
		return
	}
	c.push(frame)
}

func (c *conn) push(frame []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- frame:
		return true
	default:
		c.drop("send queue full")
		return false
	}
}

// drop closes a connection that cannot keep up, with 1008.
func (c *conn) drop(reason string) {
	c.log.Warn("dropping connection", "reason", reason)
	c.closeNow(websocket.ClosePolicyViolation, reason)
}

// closeNow ends the connection with a close frame. The frame is written by
// another goroutine: a full socket would block it, and the caller may be
// delivering a group event to other connections.
func (c *conn) closeNow(code int, reason string) {
	c.end()
	if ws := c.socket(); ws != nil {
		go func() {
			msg := websocket.FormatCloseMessage(code, reason)
			_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.srv.cfg.WriteTimeout))
			_ = ws.Close()
		}()
	}
}

// socket is nil until the upgrade is done; events may arrive before.
func (c *conn) socket() *websocket.Conn {
	c.wsMu.Lock()
	defer c.wsMu.Unlock()
	return c.ws
}

func (c *conn) setSocket(ws *websocket.Conn) {
	c.wsMu.Lock()
	c.ws = ws
	c.wsMu.Unlock()
}

// end marks the connection finished; the loops stop on it.
func (c *conn) end() {
	c.endOnce.Do(func() { close(c.done) })
}

// goingAway asks the connection to finish the frame it is handling and
// close with 1001: the read loop stops at its next read.
func (c *conn) goingAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if ws := c.socket(); ws != nil {
		_ = ws.SetReadDeadline(time.Now())
	}
}

// alive extends the read deadline: the peer has shown it is there. Under
// c.mu, so it never undoes goingAway.
func (c *conn) alive() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closing {
		cfg := c.srv.cfg
		_ = c.ws.SetReadDeadline(time.Now().Add(cfg.PingInterval + cfg.PingTimeout))
	}
}

// kill cuts the connection at once.
func (c *conn) kill() {
	c.end()
	if ws := c.socket(); ws != nil {
		_ = ws.Close()
	}
}

func (c *conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// readLoop reads and handles client frames one at a time, in order, as a
// Channels consumer does; it owns the connection's teardown.
func (c *conn) readLoop() {
	defer c.srv.leave(c)
	c.ws.SetReadLimit(c.srv.cfg.MaxFrameBytes)
	c.alive()
	c.ws.SetPongHandler(func(string) error { c.alive(); return nil })
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.readFailed(err)
			return
		}
		if c.isClosing() {
			break
		}
		c.alive()
		if !c.allow() {
			continue
		}
		if typ == websocket.BinaryMessage {
			c.enqueue(errorFrame(errBinary))
			continue
		}
		c.handle(data)
	}
	c.readFailed(nil)
}

// allow applies the rate limit to one frame: it reports whether to handle
// it, and closes a connection that keeps sending past the limit.
func (c *conn) allow() bool {
	select {
	case <-c.done:
		return false
	default:
	}
	if c.limiter == nil || c.limiter.Allow() {
		c.refused = 0
		return true
	}
	c.refused++
	if c.refused > c.srv.cfg.RateBurst {
		c.log.Warn("closing: rate limit exceeded")
		c.closeNow(websocket.ClosePolicyViolation, "rate limit exceeded")
		return false
	}
	c.enqueue(c.srv.rateLimited)
	return false
}

// readFailed ends the connection after the read loop stops.
func (c *conn) readFailed(err error) {
	switch {
	case c.isClosing():
		// Shutdown: the writer flushes the queue, then closes with 1001.
		c.mu.Lock()
		c.pending = nil
		c.mu.Unlock()
		select {
		case c.send <- nil: // nil asks the writer to say goodbye
		case <-c.done:
		}
		<-c.done
	case errors.Is(err, websocket.ErrReadLimit):
		// gorilla has sent the 1009 close frame.
		c.log.Info("closed: frame too big")
		c.kill()
	default:
		if err != nil && !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
			c.log.Debug("read ended", "err", err)
		}
		c.kill()
	}
}

// writeLoop writes queued frames and pings; it is the only writer of data.
// It closes the socket when a write fails; when the connection ends another
// way, whoever ended it closes the socket (after its close frame).
func (c *conn) writeLoop() {
	cfg := c.srv.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case frame := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if frame == nil {
				msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
				_ = c.ws.WriteMessage(websocket.CloseMessage, msg)
				c.kill()
				return
			}
			if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
				c.log.Debug("write failed", "err", err)
				c.kill()
				return
			}
		case <-ping.C:
			_ = c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.kill()
				return
			}
		case <-c.done:
			return
		}
	}
}
