package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// Server serves the WebSocket routes and handles the group events of their
// connections.
type Server struct {
	cfg       Config
	store     Store
	verifier  Verifier
	media     Media
	layer     Layer
	log       *slog.Logger
	upgrader  websocket.Upgrader
	mem       *budget
	metrics   *metrics
	histories *histories
	cache     HistoryCache // nil: every history is queried
	saves     recentSaves  // messages this process saved lately
	routes    []*route

	// ctx is the context of work done for connections (saves, history
	// loads, group sends); it is cancelled only when a shutdown gives up
	// waiting. Each outside call adds its own deadline.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex
	conns    map[string]*conn // by channel name
	users    map[int64]*userLimits
	draining bool
	wg       sync.WaitGroup // one per registered connection

	events     eventQueues // group events, in order per group
	updates    chan groupSend
	waiting    map[groupSend]bool // the updates in updates; under waitingMu
	waitingMu  sync.Mutex
	sendDrops  atomic.Int64  // updates dropped since the last report
	inboxSlots chan struct{} // one per conversation list being computed

	refusalLog *rate.Limiter // refusals logged per second
	suppressed atomic.Int64  // refusals not logged since the last report

	rateLimited *frame // the error frame of a frame over the rate limit
}

// userLimits is what one user's connections share.
type userLimits struct {
	conns int
	files *rate.Limiter // bytes of files per second; nil: no limit
}

// groupSend is a conversation_update sent off the event path: to group,
// for conversation conv.
type groupSend struct {
	group string
	conv  int64
}

// New returns a server; call Run to receive group events and ping
// connections. Its metrics are registered on reg (nil: unregistered);
// cache, when not nil, serves histories from memory.
func New(cfg Config, store Store, verifier Verifier, media Media, layer Layer, log *slog.Logger, reg prometheus.Registerer, cache HistoryCache) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	mem := newBudget(cfg.MemoryBudget)
	s := &Server{
		cfg: cfg, store: store, verifier: verifier, media: media, layer: layer, log: log,
		mem: mem, metrics: newMetrics(reg, mem), cache: cache,
		ctx: ctx, cancel: cancel,
		conns:      map[string]*conn{},
		users:      map[int64]*userLimits{},
		updates:    make(chan groupSend, updateQueue),
		waiting:    map[groupSend]bool{},
		inboxSlots: make(chan struct{}, max(1, cfg.InboxConcurrency)),
		refusalLog: rate.NewLimiter(refusalLogRate, refusalLogBurst),
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  readBufferSize,
		WriteBufferPool: &sync.Pool{},
		// The Origin check runs before the upgrade, with Django's rules.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	s.histories = newHistories(s)
	s.events.max = eventQueueMax
	s.rateLimited = newFrame(mem, "error", errorFrame(fmt.Sprintf("Too many messages: at most %g per second", cfg.RateLimit)))
	s.routes = []*route{s.chatRoute(), s.inboxRoute(), s.notifyRoute()}
	return s
}

const (
	// readBufferSize is the socket read buffer of a connection: small,
	// since client frames are small but for files, which stream through it.
	readBufferSize = 1024
	// eventQueueMax bounds the group events waiting for one group; more
	// are dropped (and counted), as channels_redis drops over capacity.
	eventQueueMax = 1024
	// updateQueue and updateSenders: conversation_update events wait here
	// to be sent off the event path, so a slow layer never holds up a
	// group's events.
	updateQueue   = 4096
	updateSenders = 4
	// refusalLogRate and refusalLogBurst bound how many refusals are
	// logged; the rest are counted and reported once per ping interval.
	refusalLogRate  = 10
	refusalLogBurst = 20
	// maxLoggedString bounds client-controlled text written to the log.
	maxLoggedString = 128
)

// refusal is a handshake refused for a reason: HTTP 403 unless status says
// otherwise. Every refusal is counted by reason.
type refusal struct {
	reason string
	status int
	err    error
}

func (r *refusal) Error() string { return r.reason + ": " + r.err.Error() }

func refuse(reason string, err error) error {
	return &refusal{reason: reason, status: http.StatusForbidden, err: err}
}

// ServeHTTP upgrades a WebSocket route after the checks of
// docs/PROTOCOL.md section 4. Every refusal of the contract is HTTP 403, as
// Daphne answers a consumer that closes before accepting.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, param := s.match(r.URL.Path)
	if rt == nil {
		http.NotFound(w, r)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "WebSocket upgrade required", http.StatusBadRequest)
		return
	}
	if !originWellFormed(r.Header.Values("Origin")) {
		s.refused(w, r, rt, &refusal{reason: "origin_malformed", status: http.StatusBadRequest, err: errors.New("malformed Origin")})
		return
	}
	if !originAllowed(r.Header.Values("Origin"), s.cfg.AllowedHosts) {
		s.refused(w, r, rt, refuse("origin", errors.New("Origin not allowed")))
		return
	}
	c, err := s.admit(r.Context(), rt, param, r.URL.Query().Get("token"))
	if err != nil {
		s.refused(w, r, rt, err)
		return
	}
	if err := s.register(c); err != nil {
		s.refused(w, r, rt, err)
		return
	}
	// Join the group before the connect frames are built, as Channels does,
	// so no event sent in between is missed; events are held until the
	// connect frames are queued.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.LayerTimeout)
	err = s.layer.GroupAdd(ctx, c.group, c.channel)
	cancel()
	if err != nil {
		s.unregister(c)
		s.refused(w, r, rt, &refusal{reason: "error", status: http.StatusInternalServerError, err: fmt.Errorf("join group: %w", err)})
		return
	}
	frames, err := rt.connectFrames(r.Context(), c)
	if err != nil {
		s.leave(c)
		status, reason := http.StatusInternalServerError, "error"
		if errors.Is(err, errBusy) {
			status, reason = http.StatusServiceUnavailable, "busy"
		}
		s.refused(w, r, rt, &refusal{reason: reason, status: status, err: err})
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		for _, f := range frames {
			f.release()
		}
		s.leave(c) // the upgrader has answered the client
		s.log.Debug("upgrade failed", "route", rt.name, "err", err)
		return
	}
	c.start(ws, frames...)
	s.metrics.connects.WithLabelValues(rt.name).Inc()
	s.log.Debug("connected", "route", rt.name, "user", c.user.ID, "channel", c.channel)
	go c.readLoop()
}

// match finds the route of path and its parameter (the chat's segment).
func (s *Server) match(path string) (*route, string) {
	for _, rt := range s.routes {
		if param, ok := rt.match(path); ok {
			return rt, param
		}
	}
	return nil, ""
}

// admit checks the token and the user, then what the route checks, and
// returns the connection to accept.
func (s *Server) admit(ctx context.Context, rt *route, param, token string) (*conn, error) {
	if token == "" {
		return nil, refuse("token", errors.New("no token"))
	}
	userID, err := s.verifier.Verify(token)
	if err != nil {
		return nil, refuse("token", err)
	}
	dbctx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout)
	defer cancel()
	c := newConn(s, rt)
	if err := rt.admit(dbctx, c, userID, param); err != nil {
		return nil, err
	}
	c.channel = s.layer.NewChannel()
	c.limiter = s.newLimiter()
	return c, nil
}

// admitUser loads the token's user into c, refusing a missing or
// inactive one.
func (s *Server) admitUser(ctx context.Context, c *conn, userID int64) error {
	user, err := s.store.User(ctx, userID)
	return s.checkUser(c, user, err)
}

// admitToOwnGroup admits the token's user to its own group,
// user_<id>_<suffix> (the conversation list, notifications).
func (s *Server) admitToOwnGroup(suffix string) func(ctx context.Context, c *conn, userID int64, _ string) error {
	return func(ctx context.Context, c *conn, userID int64, _ string) error {
		if err := s.admitUser(ctx, c, userID); err != nil {
			return err
		}
		c.group = "user_" + itoa(c.user.ID) + "_" + suffix
		return nil
	}
}

// checkUser refuses a user that could not be loaded or is inactive, and
// else sets it as c's.
func (s *Server) checkUser(c *conn, user chat.User, err error) error {
	switch {
	case errors.Is(err, chat.ErrUserNotFound):
		return refuse("token", err)
	case err != nil:
		return &refusal{reason: "error", status: http.StatusInternalServerError, err: err}
	case !user.IsActive:
		// Divergence: SimpleJWT's REST authentication refuses inactive users.
		return refuse("inactive_user", errors.New("user is inactive"))
	}
	c.user = user
	return nil
}

func (s *Server) newLimiter() *rate.Limiter {
	if s.cfg.RateLimit <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(s.cfg.RateLimit), s.cfg.RateBurst)
}

// refused answers a refused handshake and logs it, at most refusalLogRate
// lines a second: a flood of refusals costs counts, not log volume.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	var ref *refusal
	if !errors.As(err, &ref) {
		ref = &refusal{reason: "error", status: http.StatusInternalServerError, err: err}
	}
	s.metrics.refusals.WithLabelValues(rt.name, ref.reason).Inc()
	switch {
	case ref.status == http.StatusInternalServerError:
		s.log.Error("connect failed", "route", rt.name, "err", ref.err)
	case s.refusalLog.Allow():
		s.log.Info("refused", "route", rt.name, "reason", ref.reason, "err", clip(ref.err.Error()),
			"path", clip(r.URL.Path), "origin", clip(r.Header.Get("Origin")), "remote", r.RemoteAddr)
	default:
		s.suppressed.Add(1)
	}
	switch ref.status {
	case http.StatusForbidden:
		// As Daphne answers a consumer that closes before accepting.
		w.WriteHeader(http.StatusForbidden)
	case http.StatusBadRequest:
		http.Error(w, "HTTP Origin header invalid", http.StatusBadRequest)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Server busy, try again later", http.StatusServiceUnavailable)
	default:
		http.Error(w, "Internal server error", ref.status)
	}
}

// clip bounds client-controlled text for the log.
func clip(s string) string {
	if len(s) <= maxLoggedString {
		return s
	}
	return s[:maxLoggedString] + fmt.Sprintf("…(%d bytes)", len(s))
}

// register adds a connection to the server, within its user's limit.
func (s *Server) register(c *conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return &refusal{reason: "shutting_down", status: http.StatusServiceUnavailable, err: errors.New("server is shutting down")}
	}
	u := s.users[c.user.ID]
	if u == nil {
		u = &userLimits{}
		if s.cfg.FileBytesPerSecond > 0 {
			u.files = rate.NewLimiter(rate.Limit(s.cfg.FileBytesPerSecond), int(s.cfg.FileBurstBytes))
		}
		s.users[c.user.ID] = u
	}
	if s.cfg.MaxUserConnections > 0 && u.conns >= s.cfg.MaxUserConnections {
		if u.conns == 0 {
			delete(s.users, c.user.ID)
		}
		return refuse("too_many_connections", fmt.Errorf("user has %d connections", u.conns))
	}
	u.conns++
	s.conns[c.channel] = c
	s.wg.Add(1)
	s.metrics.open.WithLabelValues(c.route.name).Inc()
	return nil
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c.channel]; !ok {
		return
	}
	delete(s.conns, c.channel)
	if u := s.users[c.user.ID]; u != nil {
		if u.conns--; u.conns <= 0 {
			delete(s.users, c.user.ID)
		}
	}
	s.metrics.open.WithLabelValues(c.route.name).Dec()
	s.wg.Done()
}

// fileLimiter is the user's byte rate for files (nil: none).
func (s *Server) fileLimiter(userID int64) *rate.Limiter {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if u := s.users[userID]; u != nil {
		return u.files
	}
	return nil
}

// leave takes a connection out of its group and of the server.
func (s *Server) leave(c *conn) {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.LayerTimeout)
	defer cancel()
	if err := s.layer.GroupDiscard(ctx, c.group, c.channel); err != nil {
		s.log.Warn("leave group", "group", c.group, "err", err)
	}
	s.unregister(c)
}

// Connections returns how many connections are open.
func (s *Server) Connections() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.conns)
}

// Shutdown stops accepting connections, lets each finish the frame it is
// handling, closes it with 1001 after what is queued for it and waits for
// all of them, or until ctx is done, when remaining work is cancelled and
// connections are cut.
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

// Run receives group events, sends conversation updates and pings
// connections until ctx is done or the layer fails.
func (s *Server) Run(ctx context.Context) error {
	go s.pingLoop(ctx)
	for i := 0; i < updateSenders; i++ {
		go s.sendUpdates(ctx)
	}
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
// connection holds no timer of its own, and reports suppressed log lines.
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
		if n := s.suppressed.Swap(0); n > 0 {
			s.log.Info("refusals not logged (too many)", "count", n)
		}
		if n := s.sendDrops.Swap(0); n > 1 {
			s.log.Warn("conversation updates dropped: too many waiting", "count", n)
		}
	}
}

// sendUpdate queues conversation_update for conv to group, to be sent off
// the event path. An update still waiting for the same group and
// conversation covers this one, since its receivers read the conversation
// when it arrives, after this write: under load the sends never fall
// further behind than one per pair. When too many wait, it is dropped and
// counted.
func (s *Server) sendUpdate(group string, conv int64) {
	u := groupSend{group, conv}
	s.waitingMu.Lock()
	defer s.waitingMu.Unlock()
	if s.waiting[u] {
		s.metrics.updateSends.WithLabelValues("coalesced").Inc()
		return
	}
	select {
	case s.updates <- u:
		s.waiting[u] = true
	default:
		s.metrics.eventsDropped.WithLabelValues("update_queue_full").Inc()
		if s.sendDrops.Add(1) == 1 {
			s.log.Warn("conversation update dropped: too many waiting", "group", group)
		}
	}
}

func (s *Server) sendUpdates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-s.updates:
			// No longer waiting: an update asked for from now on is for a
			// write this send may come too early for, and goes out itself.
			s.waitingMu.Lock()
			delete(s.waiting, u)
			s.waitingMu.Unlock()
			event := pyjson.Object{{Key: "type", Value: "conversation_update"}, {Key: "conversation_id", Value: u.conv}}
			lctx, cancel := context.WithTimeout(s.ctx, s.cfg.LayerTimeout)
			if err := s.layer.GroupSend(lctx, u.group, event); err != nil {
				s.metrics.updateSends.WithLabelValues("failed").Inc()
				s.log.Error("group send", "group", u.group, "err", err)
			} else {
				s.metrics.updateSends.WithLabelValues("sent").Inc()
			}
			cancel()
		}
	}
}
