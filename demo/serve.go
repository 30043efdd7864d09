package demo

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/chatsidecar/sidecar/app"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/consumer"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
)

//go:embed web
var webFS embed.FS

// ServeConfig is how Serve listens.
type ServeConfig struct {
	Addr         string   // host:port; port 0 picks a free one
	AllowedHosts []string // Django's ALLOWED_HOSTS for the Origin check
	Log          *slog.Logger
}

// Server is the demo, listening.
type Server struct {
	Addr    string // host:port it listens on
	BaseURL string // http://host:port, for the printed URLs and file links
}

// PageURL is the demo page.
func (s *Server) PageURL() string { return s.BaseURL + "/demo/" }

// WebSocketURL is the chat WebSocket of the conversation for p.
func (s *Server) WebSocketURL(d *Demo, p Participant) string {
	return "ws" + s.BaseURL[len("http"):] + wsPath(d, p)
}

func wsPath(d *Demo, p Participant) string {
	return fmt.Sprintf("/ws/chat/%d/?token=%s", d.ConversationID, url.QueryEscape(p.Token))
}

// Serve runs the sidecar on the demo database until ctx is done, with the
// server's own defaults (package config) and the in-process channel layer,
// plus what only the demo has: its page, the endpoints behind its block
// buttons and file serving under MEDIA_URL. ready, when not nil, receives
// the Server once it listens.
func Serve(ctx context.Context, d *Demo, sc ServeConfig, ready chan<- *Server) error {
	log := sc.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", sc.Addr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	defer ln.Close()
	s := &Server{Addr: ln.Addr().String(), BaseURL: "http://" + urlHost(ln.Addr().(*net.TCPAddr))}

	cfg := config.Default()
	cfg.DatabaseURL = "sqlite://" + d.DBPath
	cfg.SecretKey = d.SecretKey
	cfg.MediaRoot = d.MediaRoot
	cfg.PublicBaseURL = s.BaseURL
	cfg.AllowedHosts = sc.AllowedHosts
	cfg.ChannelLayer = "memory"
	if err := cfg.Validate(); err != nil {
		return err
	}
	// The demo's own writes (its block buttons) use a handle of their own.
	db, err := djangodb.OpenSQLite(d.DBPath, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	h := &handlers{d: d, fx: fixture.New(db, djangodb.SQLite), log: log, hosts: sc.AllowedHosts}
	a, err := app.New(ctx, cfg, log, app.Options{Routes: func(mux *http.ServeMux) { h.routes(mux, d.MediaRoot) }})
	if err != nil {
		return err
	}
	defer a.Close()
	if ready != nil {
		ready <- s
	}
	return a.Serve(ctx, ln)
}

// urlHost is the host:port to print for a listening address: loopback
// when it listens on every interface.
func urlHost(a *net.TCPAddr) string {
	host := a.IP.String()
	if a.IP == nil || a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// handlers are the demo-only routes.
type handlers struct {
	d     *Demo
	fx    *fixture.Writer
	log   *slog.Logger
	hosts []string // ALLOWED_HOSTS, checked against each request's Host
}

func (h *handlers) routes(mux *http.ServeMux, mediaRoot string) {
	page, _ := fs.Sub(webFS, "web")
	mux.Handle("GET /demo/", h.checkHost(http.StripPrefix("/demo/", http.FileServerFS(page))))
	mux.Handle("GET /demo/config", h.checkHost(http.HandlerFunc(h.config)))
	mux.Handle("POST /demo/block", h.checkHost(http.HandlerFunc(h.block)))
	mux.Handle("POST /demo/unblock", h.checkHost(http.HandlerFunc(h.unblock)))
	// MEDIA_URL, so the file links of file messages open.
	mux.Handle("GET /media/", h.checkHost(safeMedia(http.StripPrefix("/media/", http.FileServer(http.Dir(mediaRoot))))))
	mux.Handle("GET /{$}", http.RedirectHandler("/demo/", http.StatusFound))
}

// checkHost refuses a request whose Host is not in ALLOWED_HOSTS, as
// Django does: the page hands out tokens, so a DNS-rebinding page must not
// reach it under another name.
func (h *handlers) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !consumer.HostAllowed(r.Host, h.hosts) {
			http.Error(w, "Invalid HTTP_HOST header", http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// safeMedia serves uploaded files so that none runs as a page of the
// demo's origin: no content sniffing, and anything but an image is a
// download.
func safeMedia(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'")
		if t := mime.TypeByExtension(path.Ext(r.URL.Path)); !strings.HasPrefix(t, "image/") || t == "image/svg+xml" {
			w.Header().Set("Content-Disposition", "attachment")
		}
		next.ServeHTTP(w, r)
	})
}

type pageParticipant struct {
	Participant
	WSPath string `json:"ws_path"`
}

func (h *handlers) config(w http.ResponseWriter, r *http.Request) {
	blocked, err := h.fx.Blocked(r.Context(), h.d.Listener.ID, h.d.Talker.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, map[string]any{
		"conversation_id": h.d.ConversationID,
		"blocked":         blocked,
		"listener":        pageParticipant{h.d.Listener, wsPath(h.d, h.d.Listener)},
		"talker":          pageParticipant{h.d.Talker, wsPath(h.d, h.d.Talker)},
	})
}

// block inserts the block row as POST /api/listener/profiles/block_talker/
// does for the listener: [T1] of docs/PROTOCOL.md section 9.
func (h *handlers) block(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	created, err := h.fx.Block(r.Context(), h.d.Listener.ID, h.d.Talker.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("demo: listener blocked talker", "created", created)
	writeJSON(w, map[string]any{"blocked": true, "created": created})
}

// unblock deletes it, as .../unblock_talker/ does: [T5].
func (h *handlers) unblock(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
		return
	}
	deleted, err := h.fx.Unblock(r.Context(), h.d.Listener.ID, h.d.Talker.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("demo: listener unblocked talker", "deleted", deleted)
	writeJSON(w, map[string]any{"blocked": false, "deleted": deleted})
}

// sameOrigin refuses a browser POST made by another site's page.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (h *handlers) fail(w http.ResponseWriter, err error) {
	h.log.Error("demo endpoint", "err", err)
	http.Error(w, "Internal server error", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}
