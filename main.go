// Command sidecar serves Django's chat WebSocket (ws/chat/<id>/) in Go,
// beside the Django app: it verifies SimpleJWT access tokens, reads and
// writes Django's own tables and shares Channels' groups. See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/chatsidecar/sidecar/app"
	"github.com/chatsidecar/sidecar/config"
)

func main() {
	cmd, args := "serve", []string(nil)
	if len(os.Args) > 1 {
		cmd, args = os.Args[1], os.Args[2:]
	}
	switch cmd {
	case "serve":
	case "demo":
		os.Exit(runDemo(args))
	case "check":
		os.Exit(runCheck(args, os.Stdout, os.Stderr))
	case "healthcheck":
		os.Exit(runHealthcheck(args, os.Stderr))
	case "version":
		printVersion(os.Stdout)
		return
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	default:
		fmt.Fprintf(os.Stderr, "sidecar: unknown command %q\n\n", cmd)
		usage(os.Stderr)
		os.Exit(2)
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

// usage lists the commands and every setting with its default.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: sidecar [command]

Serves Django's chat WebSockets (ws/chat/<id>/, ws/conversations/,
ws/notifications/) beside the Django app, configured by environment
variables named as Django's settings are.

Commands:
  serve      serve (the default); SIGTERM drains and stops
  check      check the deployment without serving: database schema, change
             feed, Redis, MEDIA_ROOT and, with -token, an access token; one
             line per check, exit status 1 if any fails
  healthcheck GET /healthz on LISTEN_ADDR: exit status 0 on 200, else 1
  demo       a self-contained demo on a new SQLite database (sidecar demo -h)
  version    print the version and build information

Settings (environment variables):
`)
	config.PrintSettings(w)
}

// runCheck is `sidecar check [-token T]`; it returns the exit status.
func runCheck(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("sidecar check", flag.ContinueOnError)
	fl.SetOutput(stderr)
	token := fl.String("token", "", "an access token to verify as a connection's would be")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintf(stdout, "%-14s FAILED: %v\n", "config:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%-14s ok\n", "config:")
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	if !app.Check(ctx, cfg, *token, stdout) {
		return 1
	}
	return 0
}

// checkTimeout bounds the whole of `sidecar check`.
const checkTimeout = time.Minute

// printVersion prints what the binary was built from.
func printVersion(w io.Writer) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "sidecar (no build information)")
		return
	}
	version := info.Main.Version
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	fmt.Fprintf(w, "sidecar %s\n", version)
	if rev := settings["vcs.revision"]; rev != "" {
		dirty := ""
		if settings["vcs.modified"] == "true" {
			dirty = " (modified)"
		}
		fmt.Fprintf(w, "commit  %s%s, %s\n", rev, dirty, settings["vcs.time"])
	}
	fmt.Fprintf(w, "go      %s %s/%s\n", info.GoVersion, settings["GOOS"], settings["GOARCH"])
	fmt.Fprintf(w, "module  %s\n", info.Main.Path)
}
