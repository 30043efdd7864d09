// Command sidecar serves Django's chat WebSocket (ws/chat/<id>/) in Go,
// beside the Django app: it verifies SimpleJWT access tokens, reads and
// writes Django's own tables and shares Channels' groups. See README.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/chatsidecar/sidecar/app"
	"github.com/chatsidecar/sidecar/config"
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
	if os.Getenv("GOMEMLIMIT") == "" {
		// The runtime collects harder as the heap nears the limit, so
		// garbage does not push the process past it.
		debug.SetMemoryLimit(int64(cfg.MemoryLimit))
	}
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

// run builds the sidecar and serves until ctx is done, then shuts down
// gracefully. ready, when not nil, receives the listening address.
func run(ctx context.Context, cfg config.Config, log *slog.Logger, ready chan<- string) error {
	log.Info("starting", "config", cfg)
	a, err := app.New(ctx, cfg, log, app.Options{})
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	if err := a.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}
