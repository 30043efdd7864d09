package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/pgfeed"
)

// Check runs what start-up checks, and what a deployment needs besides,
// against the real database, Redis and media directory, without serving:
// one line per check on w ("name: ok ..." or "name: FAILED: ..."). With a
// token it also verifies the token as a connection's would be, and looks
// up its user. It reports whether every check passed.
func Check(ctx context.Context, cfg config.Config, token string, w io.Writer) bool {
	a := &App{cfg: cfg, log: slog.New(slog.DiscardHandler), registry: prometheus.NewRegistry()}
	defer a.Close()
	ok := true
	report := func(name, detail string, err error) {
		if err != nil {
			ok = false
			fmt.Fprintf(w, "%-14s FAILED: %v\n", name+":", err)
			return
		}
		fmt.Fprintf(w, "%-14s ok: %s\n", name+":", detail)
	}

	verifier, err := newVerifier(cfg)
	report("tokens", "SIMPLE_JWT_ALGORITHM "+cfg.JWTAlgorithm, err)

	dbErr := a.openDatabase(ctx)
	dialect := "PostgreSQL"
	if _, sqlite := cfg.SQLitePath(); sqlite {
		dialect = "SQLite"
	}
	report("database", dialect+", every table and column the sidecar uses is there", dbErr)

	if dbErr == nil {
		detail, err := a.checkFeed(ctx)
		report("feed", detail, err)
	}

	if cfg.ChannelLayer == "redis" {
		report("channel layer", fmt.Sprintf("Redis, %d host(s) answer", len(cfg.RedisURL)), a.openLayer(ctx))
	} else {
		report("channel layer", "memory (this process only)", nil)
	}

	report("media", "MEDIA_ROOT "+cfg.MediaRoot+" is writable", writable(cfg.MediaRoot))

	if token != "" {
		switch {
		case verifier == nil:
			report("token", "", errors.New("no verifier (see tokens)"))
		case dbErr != nil:
			report("token", "", errors.New("no database (see database)"))
		default:
			detail, err := a.checkToken(ctx, verifier.Verify, token)
			report("token", detail, err)
		}
	}
	return ok
}

// checkFeed says whether the change feed will run: a failure only when
// FEED=on requires it.
func (a *App) checkFeed(ctx context.Context) (string, error) {
	cfg := a.cfg
	switch _, sqlite := cfg.SQLitePath(); {
	case sqlite:
		return "off (SQLite: histories are read from the database)", nil
	case cfg.Feed == "off":
		return "off (FEED=off)", nil
	}
	err := pgfeed.Check(ctx, a.sqldb, cfg.FeedPublication, a.feedTables())
	switch {
	case err == nil:
		return "on: publication " + cfg.FeedPublication + " is ready", nil
	case cfg.Feed == "on":
		return "", err
	}
	return "off (FEED=auto): " + err.Error(), nil
}

// checkToken verifies a token and looks up its user, as a connection does.
func (a *App) checkToken(ctx context.Context, verify func(string) (int64, error), token string) (string, error) {
	id, err := verify(token)
	if err != nil {
		return "", err
	}
	u, err := a.db.User(ctx, id)
	switch {
	case errors.Is(err, chat.ErrUserNotFound):
		return "", fmt.Errorf("user %d does not exist", id)
	case err != nil:
		return "", err
	case !u.IsActive:
		return "", fmt.Errorf("user %d (%s) is inactive: refused", id, u.Email)
	}
	return fmt.Sprintf("user %d (%s, %s), active", id, u.Email, u.UserType), nil
}

// writable checks that files can be written under dir.
func writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".sidecar-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}
