package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// chatPath is Channels' route ws/chat/(?P<conversation_id>\w+)/ with the
// trailing slash optional; \w is Unicode, as in Python's re.
var chatPath = regexp.MustCompile(`^/ws/chat/([\p{L}\p{N}\p{Mn}\p{Pc}]+)/?$`)

// Server serves ws/chat/<conversation_id>/ and handles the group events of
// its connections.
type Server struct {
	cfg      Config
	store    Store
	verifier Verifier
	media    Media
	layer    Layer
	log      *slog.Logger
	upgrader websocket.Upgrader

	// ctx is the context of every database call and group send; it is
	// cancelled only when a shutdown gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex
	conns    map[string]*conn // by channel name
	draining bool
	wg       sync.WaitGroup // one per connection

	events serial // group events, in order per group

	rateLimited []byte // the error frame of a frame over the rate limit
}

// New returns a server; call Run to receive group events and ping
// connections.
func New(cfg Config, store Store, verifier Verifier, media Media, layer Layer, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, store: store, verifier: verifier, media: media, layer: layer, log: log,
		ctx: ctx, cancel: cancel,
		conns: map[string]*conn{},
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		// The Origin check runs before the upgrade, with Django's rules.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	s.events.max = 4 * cfg.SendQueue
	s.rateLimited = errorFrame(fmt.Sprintf("Too many messages: at most %g per second", cfg.RateLimit))
	return s
}

// ServeHTTP upgrades ws/chat/<conversation_id>/ after the checks of
// PROTOCOL.md section 4. Every refusal is HTTP 403, as Daphne answers a
// consumer that closes before accepting.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := chatPath.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "WebSocket upgrade required", http.StatusBadRequest)
		return
	}
	segment := m[1]
	log := s.log.With("segment", segment, "remote", r.RemoteAddr)

	if !originWellFormed(r.Header.Values("Origin")) {
		log.Info("refused: malformed origin", "origin", r.Header.Get("Origin"))
		http.Error(w, "HTTP Origin header invalid", http.StatusBadRequest)
		return
	}
	if !originAllowed(r.Header.Values("Origin"), s.cfg.AllowedHosts) {
		log.Info("refused: origin not allowed", "origin", r.Header.Get("Origin"))
		deny(w)
		return
	}
	c, status, err := s.admit(r.Context(), segment, r.URL.Query().Get("token"))
	if err != nil {
		if status == http.StatusForbidden {
			log.Info("refused", "reason", err)
			deny(w)
		} else {
			log.Error("connect failed", "err", err)
			http.Error(w, "Internal server error", status)
		}
		return
	}

	// Join the group before the history query, as Channels does, so no
	// message sent in between is missed; events are held until the three
	// connect frames are queued.
	if !s.register(c) {
		http.Error(w, "Server is shutting down", http.StatusServiceUnavailable)
		return
	}
	if err := s.layer.GroupAdd(s.ctx, c.group, c.channel); err != nil {
		s.unregister(c)
		log.Error("connect failed: join group", "user", c.user.ID, "err", err)
		http.Error(w, "Internal server error", http.StatusInternalServerError)
		return
	}
	history, count, err := s.historyJSON(s.ctx, c.conv.ID)
	if err != nil {
		s.leave(c)
		log.Error("connect failed", "user", c.user.ID, "err", err)
		http.Error(w, "Internal server error", http.StatusInternalServerError)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.leave(c) // the upgrader has answered the client
		log.Info("upgrade failed", "user", c.user.ID, "err", err)
		return
	}
	c.start(ws, connectedFrame(), apiInfoFrame(s.cfg.PublicBaseURL, segment), historyFrame(history, count))
	log.Debug("connected", "user", c.user.ID, "channel", c.channel)
	go c.readLoop()
}

// admit checks the token, the user and the conversation, in the order of
// PROTOCOL.md section 4, and returns the connection to accept.
func (s *Server) admit(ctx context.Context, segment, token string) (*conn, int, error) {
	if token == "" {
		return nil, http.StatusForbidden, errors.New("no token")
	}
	userID, err := s.verifier.Verify(token)
	if err != nil {
		return nil, http.StatusForbidden, err
	}
	user, err := s.store.User(ctx, userID)
	switch {
	case errors.Is(err, chat.ErrUserNotFound):
		return nil, http.StatusForbidden, err
	case err != nil:
		return nil, http.StatusInternalServerError, err
	case !user.IsActive:
		// Divergence: SimpleJWT's REST authentication refuses inactive users.
		return nil, http.StatusForbidden, errors.New("user is inactive")
	}
	// The segment is used as written everywhere but this lookup.
	convID, err := strconv.ParseInt(segment, 10, 64)
	if err != nil || convID < 1 || !isASCIIDigits(segment) {
		return nil, http.StatusForbidden, errors.New("conversation id is not a number in range")
	}
	conv, blocked, err := s.store.Conversation(ctx, convID)
	switch {
	case errors.Is(err, chat.ErrConversationGone):
		return nil, http.StatusForbidden, err
	case err != nil:
		return nil, http.StatusInternalServerError, err
	case blocked:
		return nil, http.StatusForbidden, errors.New("conversation is blocked")
	case !conv.HasParticipant(user.ID):
		return nil, http.StatusForbidden, errors.New("user is not a participant")
	}
	c := newConn(s)
	c.user, c.conv, c.segment = user, conv, segment
	c.group, c.channel = "chat_"+segment, s.layer.NewChannel()
	c.limiter = s.newLimiter()
	return c, 0, nil
}

func (s *Server) newLimiter() *rate.Limiter {
	if s.cfg.RateLimit <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(s.cfg.RateLimit), s.cfg.RateBurst)
}

func isASCIIDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// deny answers as Daphne does when a consumer closes before accepting.
func deny(w http.ResponseWriter) {
	w.WriteHeader(http.StatusForbidden)
}

func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.conns[c.channel] = c
	s.wg.Add(1)
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	if _, ok := s.conns[c.channel]; ok {
		delete(s.conns, c.channel)
		s.wg.Done()
	}
	s.mu.Unlock()
}

// leave takes a connection out of its group and of the server.
func (s *Server) leave(c *conn) {
	if err := s.layer.GroupDiscard(s.ctx, c.group, c.channel); err != nil {
		s.log.Warn("leave group", "group", c.group, "err", err)
	}
	s.unregister(c)
}

func (s *Server) historyJSON(ctx context.Context, conversationID int64) (pyjson.Raw, int, error) {
	messages, err := s.store.History(ctx, conversationID)
	if err != nil {
		return nil, 0, err
	}
	raw, err := historyJSON(messages, s.media)
	if err != nil {
		return nil, 0, err
	}
	return raw, len(messages), nil
}

// Connections returns how many connections are open.
func (s *Server) Connections() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

// Shutdown stops accepting connections, lets each finish the frame it is
// handling, closes it with 1001 and waits for all of them, or until ctx is
// done, when remaining work is cancelled and connections are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		for _, c := range conns {
			c.end(0, "")
		}
		return ctx.Err()
	}
}

// Run receives group events and pings connections until ctx is done or
// the layer fails.
func (s *Server) Run(ctx context.Context) error {
	go s.pingLoop(ctx)
	for {
		channels, event, err := s.layer.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		s.deliver(channels, event)
	}
}

// pingLoop pings every connection each PingInterval from one ticker, so a
// connection holds no timer of its own.
func (s *Server) pingLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.RLock()
		conns := make([]*conn, 0, len(s.conns))
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.RUnlock()
		for _, c := range conns {
			c.ping()
		}
	}
}
