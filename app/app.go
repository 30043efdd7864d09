// Package app builds the whole sidecar from its configuration: the token
// verifier, Django's database, the media storage, the channel layer, the
// WebSocket routes and the health endpoints, and serves them until told to
// stop, then drains. main, the demo and the tests all build it here, so
// they run the same server with the same defaults; each adds only what is
// its own (Options).
package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/consumer"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/histcache"
	"github.com/chatsidecar/sidecar/mediastore"
	"github.com/chatsidecar/sidecar/memlayer"
	"github.com/chatsidecar/sidecar/pgfeed"
	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/redislayer"
)

const (
	// schemaCheckTimeout bounds the start-up check of Django's tables.
	schemaCheckTimeout = 30 * time.Second
	// headerTimeout bounds a request's headers; idleTimeout closes an idle
	// keep-alive connection (a handshake refused or not); maxHeaderBytes
	// refuses oversized requests (431) before any handler runs: a token
	// is a few hundred bytes.
	headerTimeout  = 10 * time.Second
	idleTimeout    = 60 * time.Second
	maxHeaderBytes = 64 << 10
	// readyTimeout bounds /readyz's checks.
	readyTimeout = 2 * time.Second
)

// Options are what an entry point adds to the application. The zero value
// is the server main runs.
type Options struct {
	// Routes adds handlers to the public listener's mux (the demo's page).
	Routes func(mux *http.ServeMux)
	// WrapStore and WrapLayer wrap the database and the channel layer the
	// consumers use, for tests that hold, fail or record their calls.
	WrapStore func(consumer.Store) consumer.Store
	WrapLayer func(consumer.Layer) consumer.Layer
}

// App is the sidecar, built and not yet serving.
type App struct {
	cfg      config.Config
	log      *slog.Logger
	sqldb    *sql.DB
	db       *djangodb.DB
	layer    consumer.Layer
	pingers  []pinger // what /readyz asks
	closers  []func()
	srv      *consumer.Server
	handler  http.Handler
	registry *prometheus.Registry // every metric of the process
	admin    *adminServer         // nil without ADMIN_ADDR
	feed     *pgfeed.Feed         // nil without the change feed
	cache    *histcache.Cache     // the feed's histories
	checked  *histcache.Checked   // without the feed, on PostgreSQL

	draining atomic.Bool
}

type pinger struct {
	name string
	ping func(context.Context) error
}

// New builds the application from cfg, which must be valid
// (config.Validate): it opens and checks Django's database, connects the
// channel layer and wires the routes. ctx bounds the start-up work only.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, opts Options) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	verifier, err := newVerifier(cfg)
	if err != nil {
		return nil, err
	}
	media, err := mediastore.New(cfg.MediaRoot, cfg.MediaURL, cfg.PublicBaseURL)
	if err != nil {
		return nil, fmt.Errorf("MEDIA_ROOT: %w", err)
	}
	if err := a.openDatabase(ctx); err != nil {
		return nil, err
	}
	if err := a.openLayer(ctx); err != nil {
		return nil, err
	}
	if err := a.openFeed(ctx, media); err != nil {
		return nil, err
	}
	a.openChecked(ctx, media)
	var store consumer.Store = a.db
	if opts.WrapStore != nil {
		store = opts.WrapStore(store)
	}
	layer := a.layer
	if opts.WrapLayer != nil {
		layer = opts.WrapLayer(layer)
	}
	a.srv = consumer.New(consumer.Config{
		AllowedHosts: cfg.AllowedHosts, PublicBaseURL: cfg.PublicBaseURL,
		MaxFrameBytes: cfg.MaxFrameBytes, MaxTextFrameBytes: cfg.MaxTextFrameBytes, MaxFileBytes: cfg.MaxFileBytes,
		MaxMessageChars: cfg.MaxMessageChars, MessageTimeout: cfg.MessageTimeout,
		SendQueueBytes: cfg.SendQueueBytes, MemoryBudget: int64(cfg.MemoryLimit) / 2, BudgetWait: cfg.MemoryWait,
		PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout, WriteTimeout: cfg.WriteTimeout,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, MaxUserConnections: cfg.MaxUserConns,
		FileBytesPerSecond: float64(cfg.FileRate), FileBurstBytes: int64(cfg.FileBurst),
		InboxConcurrency: cfg.InboxConcurrency, DBTimeout: cfg.DBTimeout, LayerTimeout: cfg.RedisTimeout,
	}, store, verifier, media, layer, log, a.registry, a.historyCache())

	mux := http.NewServeMux()
	mux.Handle("/ws/", a.srv) // ws/chat/<id>/, ws/conversations/, ws/notifications/; the rest is 404
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/readyz", a.ready)
	if opts.Routes != nil {
		opts.Routes(mux)
	}
	a.handler = mux
	if cfg.AdminAddr != "" {
		if a.admin, err = a.listenAdmin(); err != nil {
			return nil, err
		}
		a.closers = append(a.closers, a.admin.Close)
	}
	return a, nil
}

// GroupSend sends event to group on the application's channel layer, the
// one its consumers listen on, as a Python producer (the REST API) does.
func (a *App) GroupSend(ctx context.Context, group string, event pyjson.Object) error {
	return a.layer.GroupSend(ctx, group, event)
}

// AdminAddr is the admin listener's address ("" without ADMIN_ADDR).
func (a *App) AdminAddr() string {
	if a.admin == nil {
		return ""
	}
	return a.admin.ln.Addr().String()
}

// Connections returns how many WebSocket connections are open.
func (a *App) Connections() int { return a.srv.Connections() }

// Serve serves on ln until ctx is done, then shuts down gracefully: it stops
// accepting, lets each connection finish the frame it is handling, closes
// every connection with 1001 and returns once all are gone or
// SHUTDOWN_TIMEOUT has passed. It returns early with the error of a
// failing listener or channel layer.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	httpSrv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 3)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	if a.admin != nil {
		go func() {
			if err := a.admin.Serve(); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("ADMIN_ADDR: %w", err)
			}
		}()
	}
	go func() { errc <- a.srv.Run(runCtx) }()
	if a.feed != nil {
		// It reconnects by itself and ends with runCtx; Serve returns only
		// once it has, so no replication connection outlives the server.
		feedDone := make(chan struct{})
		go func() { _ = a.feed.Run(runCtx, a.cache); close(feedDone) }()
		defer func() { stopRun(); <-feedDone }()
	}
	go func() {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		_ = httpSrv.Close()
		return err
	}
	a.log.Info("shutting down: draining connections", "connections", a.srv.Connections(), "timeout", a.cfg.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), a.cfg.DrainTimeout)
	defer cancel()
	// The listener stays open while connections drain, so a client that
	// connects meanwhile is told 503 (and /readyz says 503) rather than
	// finding nobody there.
	a.draining.Store(true)
	if err := a.srv.Shutdown(drainCtx); err != nil {
		a.log.Warn("shutdown: connections cut", "err", err)
	}
	_ = httpSrv.Shutdown(drainCtx)
	return nil
}

// Close releases the database and the channel layer.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// ready is /readyz: 200 when Django's database and the channel layer
// answer; connections are served without the layer, but their messages
// reach no one else. It says only "ready" or "not ready": what failed goes
// to the log, never to whoever asks.
func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	for _, p := range a.pingers {
		if err := p.ping(ctx); err != nil {
			a.log.Warn("not ready", "check", p.name, "err", err)
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

// openDatabase opens Django's database named by DATABASE_URL (an SQLite
// file, else PostgreSQL) and checks its schema.
func (a *App) openDatabase(ctx context.Context) error {
	cfg := a.cfg
	dialect := djangodb.Postgres
	if path, ok := cfg.SQLitePath(); ok {
		dialect = djangodb.SQLite
		db, err := djangodb.OpenSQLite(path, cfg.DBMaxConns)
		if err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		a.sqldb = db
	} else {
		// lib/pq; the connection's time zone is UTC, as Django sets it
		// when USE_TZ is on.
		dsn, err := withTimeouts(cfg.DatabaseURL, cfg.DBTimeout+cfg.MemoryWait, cfg.DBTimeout)
		if err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		connector, err := pq.NewConnector(dsn)
		if err != nil {
			return fmt.Errorf("DATABASE_URL: %w", err)
		}
		db := sql.OpenDB(connector)
		db.SetMaxOpenConns(cfg.DBMaxConns)
		db.SetMaxIdleConns(cfg.DBMaxConns)
		db.SetConnMaxIdleTime(5 * time.Minute)
		a.sqldb = db
	}
	a.closers = append(a.closers, func() { _ = a.sqldb.Close() })
	db, err := djangodb.New(a.sqldb, dialect, a.schema(), djangodb.Options{Unprepared: !cfg.DBPrepare})
	if err != nil {
		return err
	}
	checkCtx, cancel := context.WithTimeout(ctx, schemaCheckTimeout)
	defer cancel()
	if err := db.CheckSchema(checkCtx); err != nil {
		return err
	}
	a.db = db
	if err := db.Register(a.registry); err != nil {
		return err
	}
	a.pingers = append(a.pingers, pinger{"database", db.Ping})
	return nil
}

// openLayer connects the channel layer CHANNEL_LAYER names.
func (a *App) openLayer(ctx context.Context) error {
	cfg := a.cfg
	if cfg.ChannelLayer != "redis" {
		a.layer = memlayer.New(0)
		return nil
	}
	redislayer.RouteClientLogs(a.log)
	rules, err := cfg.ChannelCapacity()
	if err != nil {
		return err
	}
	capacity := make([]redislayer.CapacityRule, len(rules))
	for i, r := range rules {
		capacity[i] = redislayer.CapacityRule{Pattern: r.Pattern, Capacity: r.Capacity}
	}
	layer, err := redislayer.New(ctx, redislayer.Config{
		Hosts: cfg.RedisURL, Prefix: cfg.LayerPrefix, Capacity: cfg.LayerCapacity, ChannelCapacity: capacity,
		Expiry: time.Duration(cfg.LayerExpiry), GroupExpiry: time.Duration(cfg.LayerGroupExpiry),
		SymmetricEncryptionKeys: cfg.LayerKeys, Timeout: cfg.RedisTimeout,
	}, a.log.With("layer", "redis"))
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	a.layer = layer
	a.closers = append(a.closers, func() { _ = layer.Close() })
	if err := layer.Register(a.registry); err != nil {
		return err
	}
	a.pingers = append(a.pingers, pinger{"channel layer", layer.Ping})
	return nil
}

// withTimeouts sets PostgreSQL's statement_timeout and lock_timeout on every
// connection (lib/pq sends unknown URL parameters as run-time settings),
// unless DATABASE_URL sets them itself: a statement or a lock wait never
// outlives the call that waits for it. The longest call is a history
// load, whose query stays open while it waits for memory (DB_TIMEOUT +
// MEMORY_WAIT): a shorter statement_timeout cancels it during that wait,
// and the cancel strikes once memory is freed and rows flow again.
func withTimeouts(dsn string, statement, lock time.Duration) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("not a URL")
	}
	q := u.Query()
	for k, d := range map[string]time.Duration{"statement_timeout": statement, "lock_timeout": lock} {
		if q.Get(k) == "" {
			q.Set(k, strconv.FormatInt(d.Milliseconds(), 10))
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// adminServer is the admin listener: Prometheus metrics and Go's profiler,
// for operators only (ADMIN_ADDR, loopback or a private network).
type adminServer struct {
	srv *http.Server
	ln  net.Listener
}

func (s *adminServer) Serve() error { return s.srv.Serve(s.ln) }
func (s *adminServer) Close()       { _ = s.srv.Close() }

// healthz answers that the process is up (/healthz on both listeners).
func healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

// listenAdmin opens ADMIN_ADDR: /metrics, /debug/pprof/, and /healthz and
// /readyz as on the public listener.
func (a *App) listenAdmin() (*adminServer, error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{Registry: a.registry}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", healthz)
	mux.HandleFunc("/readyz", a.ready)
	ln, err := net.Listen("tcp", a.cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("ADMIN_ADDR: %w", err)
	}
	a.log.Info("admin listening", "addr", ln.Addr().String())
	return &adminServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: headerTimeout, IdleTimeout: idleTimeout,
			ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)},
		ln: ln,
	}, nil
}

// historyCache is the consumer's view of the cache: nil without one (a
// nil pointer in the interface would not be nil).
func (a *App) historyCache() consumer.HistoryCache {
	switch {
	case a.cache != nil:
		return a.cache
	case a.checked != nil:
		return a.checked
	}
	return nil
}

// openChecked keeps histories in memory without the feed on PostgreSQL,
// checked against the rows' versions at every read (histcache.Checked),
// once a first read shows the server can compute the digest
// (hashtextextended, PostgreSQL 11+).
func (a *App) openChecked(ctx context.Context, media consumer.Media) {
	if _, sqlite := a.cfg.SQLitePath(); sqlite || a.cache != nil {
		return
	}
	probeCtx, cancel := context.WithTimeout(ctx, schemaCheckTimeout)
	var err error
	for _, after := range []int64{0, 1} { // its two statements: a whole read, a check
		if _, err = a.db.HistorySince(probeCtx, 0, after, func(chat.Message, int64) error { return nil }); err != nil {
			break
		}
	}
	cancel()
	if err != nil {
		a.log.Warn("history cache off: every history is read whole", "reason", err)
		return
	}
	a.checked = histcache.NewChecked(int64(a.cfg.HistoryCacheBytes), consumer.EncodeMessage(media), a.db)
	a.registerCacheStats(a.checked.Stats)
}

// registerCacheStats adds the history cache's counts, the feed's or the
// checked one's, to the metrics.
func (a *App) registerCacheStats(stats func() histcache.Stats) {
	a.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sidecar_history_cache_hits_total",
			Help: "Histories served from memory: from the feed's cache, or, without the feed, checked against the rows' versions."},
			func() float64 { return float64(stats().Hits) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sidecar_history_cache_loads_total", Help: "Whole histories read into the cache."},
			func() float64 { return float64(stats().Loads) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sidecar_history_cache_not_exact_total",
			Help: "Histories the cache could not serve as it held them (the feed down or behind; without the feed, a cached row changed): read from the database."},
			func() float64 { return float64(stats().NotExact) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sidecar_history_cache_evictions_total", Help: "Conversations dropped from the cache past HISTORY_CACHE_BYTES."},
			func() float64 { return float64(stats().Evictions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sidecar_history_cache_bytes", Help: "Memory the cached histories take, as the cache counts it against HISTORY_CACHE_BYTES."},
			func() float64 { return float64(stats().Bytes) }),
	)
}

// openFeed starts following Django's chat tables through PostgreSQL's
// logical replication when FEED allows and the database is set up for it
// (pgfeed.Check). With FEED=auto a database that is not set up is said
// once in the log and histories are read from the database; with FEED=on
// it stops start-up.
func (a *App) openFeed(ctx context.Context, media consumer.Media) error {
	cfg := a.cfg
	if _, sqlite := cfg.SQLitePath(); sqlite || cfg.Feed == "off" {
		return nil
	}
	schema := a.schema()
	checkCtx, cancel := context.WithTimeout(ctx, schemaCheckTimeout)
	err := pgfeed.Check(checkCtx, a.sqldb, cfg.FeedPublication, a.feedTables())
	cancel()
	if err != nil {
		if cfg.Feed == "on" {
			return fmt.Errorf("FEED: %w", err)
		}
		a.log.Info("feed off: histories are read from the database", "reason", err)
		return nil
	}
	feed, err := pgfeed.New(pgfeed.Config{DSN: cfg.DatabaseURL, Publication: cfg.FeedPublication, Log: a.log.With("feed", cfg.FeedPublication)})
	if err != nil {
		return fmt.Errorf("FEED: %w", err)
	}
	a.feed = feed
	served := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sidecar_history_cache_seconds",
		Help:    "Time to serve a history from the feed's cache, mostly the wait for the feed to pass the caller's position.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15),
	})
	a.cache = histcache.New(histcache.Config{
		MaxBytes: int64(cfg.HistoryCacheBytes), MaxLag: cfg.FeedMaxLag, Encode: consumer.EncodeMessage(media),
		QueryTimeout: cfg.DBTimeout, Served: func(d time.Duration) { served.Observe(d.Seconds()) },
	}, histcache.Names{Table: schema.Table, Column: schema.Column}, a.sqldb, feed, a.db)
	a.registry.MustRegister(served,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sidecar_feed_up", Help: "1 while the change feed streams."},
			func() float64 {
				if feed.Up() {
					return 1
				}
				return 0
			}),
	)
	a.registerCacheStats(a.cache.Stats)
	a.log.Info("feed on", "publication", cfg.FeedPublication)
	return nil
}

// newVerifier checks tokens with the project's SIMPLE_JWT settings.
func newVerifier(cfg config.Config) (*auth.Verifier, error) {
	return auth.NewVerifier(auth.Config{
		Algorithm: cfg.JWTAlgorithm, SigningKey: cfg.SigningKey(), VerifyingKey: cfg.JWTVerifyingKey,
		Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer, Leeway: time.Duration(cfg.JWTLeeway),
		UserIDClaim: cfg.JWTUserIDClaim, TokenTypeClaim: cfg.JWTTypeClaim,
	})
}

// schema is the table and column names of the configuration.
func (a *App) schema() djangodb.Schema {
	cfg := a.cfg
	return djangodb.Schema{
		UserTable: cfg.UserTable, ConversationTable: cfg.ConversationTable, MessageTable: cfg.MessageTable,
		AttachmentTable: cfg.AttachmentTable, BlockTable: cfg.BlockTable, Columns: cfg.DBColumns,
	}
}

// feedTables are the tables the change feed follows.
func (a *App) feedTables() []string {
	s := a.schema()
	return []string{s.Table("message"), s.Table("attachment"), s.Table("user")}
}
