package demo

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
)

// DefaultAddr is where the demo listens unless LISTEN_ADDR says otherwise.
const DefaultAddr = "127.0.0.1:8001"

// Main is `sidecar demo [-db path] [-force]`: it prepares the demo, serves
// it until ctx is done and prints, once it listens, the page to open and a
// WebSocket URL for each participant. getenv reads LISTEN_ADDR, DEMO_DB,
// ALLOWED_HOSTS and LOG_LEVEL.
func Main(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("sidecar demo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dbPath := fl.String("db", getenv("DEMO_DB"), "SQLite file to create (default: a temporary directory removed on exit; env DEMO_DB)")
	force := fl.Bool("force", false, "replace the -db file if it exists")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: sidecar demo [-db path] [-force]")
		fmt.Fprintln(stderr, "Serves the sidecar's sockets on a new SQLite database with a listener, a talker, an")
		fmt.Fprintln(stderr, "active conversation between them and a second talker, plus a page at /demo/ showing the")
		fmt.Fprintln(stderr, "chat, the listener's conversation list and the notifications. LISTEN_ADDR (default")
		fmt.Fprintln(stderr, DefaultAddr+") and ALLOWED_HOSTS (default localhost,127.0.0.1,[::1]) are read from the environment.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	level := slog.LevelWarn
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("LOG_LEVEL: %w", err)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	addr := getenv("LISTEN_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	hosts := []string{"localhost", "127.0.0.1", "[::1]"}
	if v := getenv("ALLOWED_HOSTS"); v != "" {
		hosts = nil
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				hosts = append(hosts, h)
			}
		}
	}

	d, err := Prepare(ctx, Options{DBPath: *dbPath, Overwrite: *force})
	if err != nil {
		return err
	}
	defer d.Close()
	ready := make(chan *Server, 1)
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, d, ServeConfig{Addr: addr, AllowedHosts: hosts, Log: log}, ready) }()
	select {
	case err := <-errc:
		return err
	case s := <-ready:
		printReady(stdout, d, s)
	}
	err = <-errc
	if err == nil {
		fmt.Fprintln(stdout, "sidecar demo: stopped.")
	}
	return err
}

func printReady(w io.Writer, d *Demo, s *Server) {
	keep := "removed on exit; -db path keeps one"
	if !d.ownDir || filepath.Dir(d.DBPath) != d.Dir {
		keep = "kept on exit"
	}
	fmt.Fprintf(w, `sidecar demo: Django's schema in a new SQLite file, a listener, a talker,
an active conversation (#%d) between them, and a second talker with none yet.
  database    %s (%s)
  media       %s
  SECRET_KEY  %s

Open the page (chat, the listener's conversation list, notifications, requests):
  %s

Or connect any WebSocket client (tokens valid %d days):
  listener  %s <%s>, user %d
    %s
  talker    %s <%s>, user %d
    %s
  talker    %s <%s>, user %d (no conversation yet)
    %s
Each token opens /ws/conversations/ and /ws/notifications/ the same way.

Ready. Ctrl-C stops the demo.
`, d.ConversationID, d.DBPath, keep, d.MediaRoot, d.SecretKey, s.PageURL(), int(TokenLifetime.Hours()/24),
		d.Listener.Name, d.Listener.Email, d.Listener.ID, s.WebSocketURL(d, d.Listener),
		d.Talker.Name, d.Talker.Email, d.Talker.ID, s.WebSocketURL(d, d.Talker),
		d.Requester.Name, d.Requester.Email, d.Requester.ID, s.BaseURLWS()+notificationsPath(d.Requester))
}
