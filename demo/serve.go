package demo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/consumer"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
	"github.com/chatsidecar/sidecar/pyjson"
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
func (s *Server) WebSocketURL(d *Demo, p Participant) string { return s.BaseURLWS() + wsPath(d, p) }

// BaseURLWS is BaseURL with the ws scheme.
func (s *Server) BaseURLWS() string { return "ws" + s.BaseURL[len("http"):] }

func wsPath(d *Demo, p Participant) string {
	return fmt.Sprintf("/ws/chat/%d/?token=%s", d.ConversationID, url.QueryEscape(p.Token))
}

// inboxPath is p's conversation list socket (PROTOCOL.md section 10),
// notificationsPath p's notifications socket (section 11).
func inboxPath(p Participant) string { return "/ws/conversations/?token=" + url.QueryEscape(p.Token) }

func notificationsPath(p Participant) string {
	return "/ws/notifications/?token=" + url.QueryEscape(p.Token)
}

// Serve runs the sidecar on the demo database until ctx is done, with the
// server's own defaults (package config) and the in-process channel layer,
// plus what only the demo has: its page, the endpoints behind its buttons
// (block, unblock; request, accept, reject a conversation) and file
// serving under MEDIA_URL. ready, when not nil, receives the Server once
// it listens.
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
	// The demo's own writes (its buttons) use a handle of their own.
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
	h.events = a // the events the REST endpoints send, on the application's layer
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
	d      *Demo
	fx     *fixture.Writer
	events groupSender // the application's channel layer
	log    *slog.Logger
	hosts  []string // ALLOWED_HOSTS, checked against each request's Host
}

// groupSender is what the demo's endpoints need of the channel layer: the
// REST API's group_send.
type groupSender interface {
	GroupSend(ctx context.Context, group string, event pyjson.Object) error
}

func (h *handlers) routes(mux *http.ServeMux, mediaRoot string) {
	page, _ := fs.Sub(webFS, "web")
	// The page's files by name, so that a GET on an endpoint's path is
	// answered 405 (Allow: POST), not 404.
	files := h.checkHost(http.StripPrefix("/demo/", http.FileServerFS(page)))
	for _, p := range []string{"/demo/{$}", "/demo/index.html", "/demo/demo.js", "/demo/demo.css"} {
		mux.Handle("GET "+p, files)
	}
	mux.Handle("GET /demo/config", h.checkHost(http.HandlerFunc(h.config)))
	mux.Handle("POST /demo/block", h.checkHost(sameOrigin(h.block)))
	mux.Handle("POST /demo/unblock", h.checkHost(sameOrigin(h.unblock)))
	mux.Handle("POST /demo/conversations", h.checkHost(sameOrigin(h.request)))
	mux.Handle("POST /demo/conversations/{id}/accept", h.checkHost(sameOrigin(h.answer("accept"))))
	mux.Handle("POST /demo/conversations/{id}/reject", h.checkHost(sameOrigin(h.answer("reject"))))
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

// pageParticipant is a user as the page sees it: who, and the paths of
// their sockets (ws_path, the chat's, only for the chat's two).
type pageParticipant struct {
	Participant
	WSPath            string `json:"ws_path,omitempty"`
	InboxPath         string `json:"inbox_path"`
	NotificationsPath string `json:"notifications_path"`
}

func (h *handlers) page(p Participant, chat bool) pageParticipant {
	pp := pageParticipant{Participant: p, InboxPath: inboxPath(p), NotificationsPath: notificationsPath(p)}
	if chat {
		pp.WSPath = wsPath(h.d, p)
	}
	return pp
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
		"listener":        h.page(h.d.Listener, true),
		"talker":          h.page(h.d.Talker, true),
		"requester":       h.page(h.d.Requester, false),
	})
}

// block inserts the block row as POST /api/listener/profiles/block_talker/
// does for the listener: [T1] of docs/PROTOCOL.md section 9.
func (h *handlers) block(w http.ResponseWriter, r *http.Request) {
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
	deleted, err := h.fx.Unblock(r.Context(), h.d.Listener.ID, h.d.Talker.ID)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.log.Info("demo: listener unblocked talker", "deleted", deleted)
	writeJSON(w, map[string]any{"blocked": false, "deleted": deleted})
}

// maxRequestBody bounds the JSON body of POST /demo/conversations.
const maxRequestBody = 64 << 10

// request writes the conversation the requester (the second talker) asks
// the listener for, as POST /api/chat/conversations/ does for a talker
// ({"listener_id", "initial_message"}; here {"initial_message"}, the pair
// being the demo's): get_or_create on the pair with status pending, a
// pending one taking the new initial_message; 201 and conversation_request
// to user_<listener>_notifications when it was created, 200 otherwise.
// Then, when a row changed, conversation_update for both users' lists.
func (h *handlers) request(w http.ResponseWriter, r *http.Request) {
	var body struct {
		InitialMessage string `json:"initial_message"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		writeJSONStatus(w, http.StatusBadRequest, map[string]any{"error": "body: " + err.Error()})
		return
	}
	talker, listener := h.d.Requester, h.d.Listener
	req, err := h.fx.RequestConversation(r.Context(), listener.ID, talker.ID, body.InitialMessage)
	if err != nil {
		h.fail(w, err)
		return
	}
	if req.Created {
		// chat/views.py create_conversation's event, key for key.
		err := h.events.GroupSend(r.Context(), "user_"+itoa(listener.ID)+"_notifications", pyjson.Object{
			{Key: "type", Value: "conversation_request"},
			{Key: "conversation_id", Value: req.ID},
			{Key: "talker_id", Value: talker.ID},
			{Key: "talker_email", Value: talker.Email},
			{Key: "talker_name", Value: chat.User{Email: talker.Email, FullName: talker.Name}.DisplayName()},
			{Key: "initial_message", Value: body.InitialMessage},
			{Key: "created_at", Value: chat.ISOFormat(req.CreatedAt)},
		})
		if err != nil {
			h.fail(w, err)
			return
		}
	}
	if req.Created || req.Updated {
		if err := h.conversationUpdated(r.Context(), req.ID, listener.ID, talker.ID); err != nil {
			h.fail(w, err)
			return
		}
	}
	h.log.Info("demo: conversation requested", "conversation", req.ID, "created", req.Created, "status", req.Status)
	code := http.StatusOK
	if req.Created {
		code = http.StatusCreated
	}
	writeJSONStatus(w, code, map[string]any{
		"conversation_id": req.ID, "status": req.Status, "created": req.Created, "notified": req.Created,
	})
}

// answer is the listener's accept or reject, as POST
// /api/chat/conversations/<id>/accept/ (or reject/) does: a pending
// conversation of the listener's becomes active with accepted_at (or
// rejected with rejected_at), and conversation_accepted (or _rejected)
// goes to user_<talker>_notifications; the endpoint's refusals are 404,
// 403 and 400 with its texts. Then conversation_update for both lists.
func (h *handlers) answer(verb string) http.HandlerFunc {
	write, status, kind, column := h.fx.AcceptConversation, "active", "conversation_accepted", "accepted_at"
	if verb == "reject" {
		write, status, kind, column = h.fx.RejectConversation, "rejected", "conversation_rejected", "rejected_at"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		listener := h.d.Listener // the demo answers as its listener
		done, err := write(r.Context(), id, listener.ID)
		var notListener *fixture.NotListenerError
		var notPending *fixture.NotPendingError
		switch {
		case errors.Is(err, fixture.ErrNoConversation):
			writeJSONStatus(w, http.StatusNotFound, map[string]any{"detail": "Not found."})
			return
		case errors.As(err, &notListener):
			writeJSONStatus(w, http.StatusForbidden, map[string]any{"error": err.Error()})
			return
		case errors.As(err, &notPending):
			writeJSONStatus(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
			return
		case err != nil:
			h.fail(w, err)
			return
		}
		at := chat.ISOFormat(done.At)
		// chat/views.py _answer's event: its keys, then type and the time
		// (event.update), in that order.
		err = h.events.GroupSend(r.Context(), "user_"+itoa(done.TalkerID)+"_notifications", pyjson.Object{
			{Key: "conversation_id", Value: id},
			{Key: "listener_id", Value: listener.ID},
			{Key: "listener_email", Value: listener.Email},
			{Key: "listener_name", Value: chat.User{Email: listener.Email, FullName: listener.Name}.DisplayName()},
			{Key: "type", Value: kind},
			{Key: column, Value: at},
		})
		if err == nil {
			err = h.conversationUpdated(r.Context(), id, listener.ID, done.TalkerID)
		}
		if err != nil {
			h.fail(w, err)
			return
		}
		h.log.Info("demo: conversation answered", "conversation", id, "status", status)
		writeJSON(w, map[string]any{"conversation_id": id, "status": status, column: at})
	}
}

// conversationUpdated sends conversation_update for the conversation to
// both users' conversation-list groups, as the chat does after a message
// (PROTOCOL.md section 7), so their inboxes show the change at once.
// Django's create/accept/reject endpoints send none: with them an open
// list learns of the change with the conversation's next message.
func (h *handlers) conversationUpdated(ctx context.Context, id int64, userIDs ...int64) error {
	for _, u := range userIDs {
		err := h.events.GroupSend(ctx, "user_"+itoa(u)+"_conversations", pyjson.Object{
			{Key: "type", Value: "conversation_update"},
			{Key: "conversation_id", Value: id},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// sameOrigin refuses a browser POST made by another site's page.
func sameOrigin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
		}
		next(w, r)
	})
}

func (h *handlers) fail(w http.ResponseWriter, err error) {
	h.log.Error("demo endpoint", "err", err)
	http.Error(w, "Internal server error", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
