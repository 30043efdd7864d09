// Command sidecar serves Django's chat WebSocket (ws/chat/<id>/) in Go,
// beside the Django app: it verifies SimpleJWT access tokens, reads and
// writes Django's own tables and shares Channels' groups. See README.md.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lib/pq"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/consumer"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/mediastore"
	"github.com/chatsidecar/sidecar/memlayer"
	"github.com/chatsidecar/sidecar/redislayer"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		os.Exit(runDemo(os.Args[2:]))
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		os.Exit(2)
	}
	log := newLogger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("sidecar stopped", "err", err)
		os.Exit(1)
	}
}

func newLogger(cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// run wires the sidecar and serves until ctx is done, then shuts down
// gracefully. ready, when not nil, receives the listening address.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- string) error {
	log.Info("starting", "config", cfg)

	verifier, err := auth.NewVerifier(auth.Config{
		Algorithm: cfg.JWTAlgorithm, SigningKey: cfg.SigningKey(), VerifyingKey: cfg.JWTVerifyingKey,
		Audience: cfg.JWTAudience, Issuer: cfg.JWTIssuer, Leeway: time.Duration(cfg.JWTLeeway),
		UserIDClaim: cfg.JWTUserIDClaim, TokenTypeClaim: cfg.JWTTypeClaim,
	})
	if err != nil {
		return err
	}
	media, err := mediastore.New(cfg.MediaRoot, cfg.MediaURL, cfg.PublicBaseURL)
	if err != nil {
		return fmt.Errorf("MEDIA_ROOT: %w", err)
	}
	sqldb, dialect, err := openDatabase(cfg)
	if err != nil {
		return err
	}
	defer sqldb.Close()
	store, err := djangodb.New(sqldb, dialect, djangodb.Schema{
		UserTable: cfg.UserTable, ConversationTable: cfg.ConversationTable, MessageTable: cfg.MessageTable,
		AttachmentTable: cfg.AttachmentTable, BlockTable: cfg.BlockTable, Columns: cfg.DBColumns,
	})
	if err != nil {
		return err
	}
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = store.CheckSchema(checkCtx)
	cancel()
	if err != nil {
		return err
	}

	layer, closeLayer, err := openLayer(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeLayer()
	srv := consumer.New(consumer.Config{
		AllowedHosts: cfg.AllowedHosts, PublicBaseURL: cfg.PublicBaseURL,
		MaxFrameBytes: cfg.MaxFrameBytes, MaxFileBytes: cfg.MaxFileBytes, SendQueue: cfg.SendQueue,
		PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout, WriteTimeout: cfg.WriteTimeout,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst,
	}, store, verifier, media, layer, log)

	mux := http.NewServeMux()
	mux.Handle("/ws/chat/", srv)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(pctx); err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		// The Redis layer: connections are served without it, but their
		// messages reach no one else.
		if p, ok := layer.(interface{ Ping(context.Context) error }); ok {
			if err := p.Ping(pctx); err != nil {
				http.Error(w, "channel layer: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	httpSrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}

	errc := make(chan error, 2)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	go func() { errc <- srv.Run(runCtx) }()
	go func() {
		if err := httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}

	log.Info("shutting down: draining connections", "timeout", cfg.DrainTimeout)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancelDrain()
	_ = httpSrv.Shutdown(drainCtx) // stop accepting; upgraded connections are the consumer's
	if err := srv.Shutdown(drainCtx); err != nil {
		log.Warn("shutdown: connections cut", "err", err)
	}
	log.Info("stopped")
	return nil
}

// openLayer returns the channel layer CHANNEL_LAYER names.
func openLayer(ctx context.Context, cfg config.Config, log *slog.Logger) (consumer.Layer, func(), error) {
	if cfg.ChannelLayer != "redis" {
		return memlayer.New(0), func() {}, nil
	}
	redislayer.RouteClientLogs(log)
	layer, err := redislayer.New(ctx, redislayer.Config{
		Hosts: cfg.RedisURL, Prefix: cfg.LayerPrefix, Capacity: cfg.LayerCapacity,
		Expiry: time.Duration(cfg.LayerExpiry), GroupExpiry: time.Duration(cfg.LayerGroupExpiry),
		SymmetricEncryptionKeys: cfg.LayerKeys,
	}, log.With("layer", "redis"))
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	return layer, func() { _ = layer.Close() }, nil
}

// openDatabase opens Django's database named by DATABASE_URL: an SQLite
// file (sqlite:///abs/path/db.sqlite3) through djangodb.OpenSQLite, else
// PostgreSQL.
func openDatabase(cfg config.Config) (*sql.DB, djangodb.Dialect, error) {
	if path, ok := djangodb.SQLitePath(cfg.DatabaseURL); ok {
		db, err := djangodb.OpenSQLite(path, cfg.DBMaxConns)
		if err != nil {
			return nil, djangodb.SQLite, fmt.Errorf("DATABASE_URL: %w", err)
		}
		return db, djangodb.SQLite, nil
	}
	db, err := openPostgres(cfg)
	return db, djangodb.Postgres, err
}

// openPostgres opens Django's PostgreSQL database in UTC, as Django sets
// the connection's time zone when USE_TZ is on.
func openPostgres(cfg config.Config) (*sql.DB, error) {
	connector, err := pq.NewConnector(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.DBMaxConns)
	db.SetMaxIdleConns(cfg.DBMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}
