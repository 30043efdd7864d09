package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/djangodb"
)

// serveDemo runs the demo on a free loopback port until the test ends.
func serveDemo(t *testing.T) (*Demo, *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Prepare(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan *Server, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, d, ServeConfig{Addr: "127.0.0.1:0", AllowedHosts: []string{"localhost", "127.0.0.1"}}, ready)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case s := <-ready:
		return d, s
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	return nil, nil
}

func request(t *testing.T, method, url, host string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The demo's endpoints hand out tokens and write blocks: they answer only
// under a Host in ALLOWED_HOSTS (a DNS-rebinding page gets 400).
func TestDemoChecksHost(t *testing.T) {
	_, s := serveDemo(t)
	for _, tc := range []struct {
		method, path, host string
		want               int
	}{
		{"GET", "/demo/config", "", http.StatusOK},
		{"GET", "/demo/config", "localhost", http.StatusOK},
		{"GET", "/demo/config", "attacker.example", http.StatusBadRequest},
		{"GET", "/demo/", "attacker.example", http.StatusBadRequest},
		{"POST", "/demo/block", "attacker.example:8001", http.StatusBadRequest},
		{"POST", "/demo/unblock", "attacker.example", http.StatusBadRequest},
		{"POST", "/demo/conversations", "attacker.example", http.StatusBadRequest},
		{"POST", "/demo/conversations/1/accept", "attacker.example", http.StatusBadRequest},
		{"POST", "/demo/conversations/1/reject", "attacker.example", http.StatusBadRequest},
		{"GET", "/healthz", "attacker.example", http.StatusOK}, // the server's own, for probes
		{"GET", "/demo/block", "", http.StatusMethodNotAllowed},
		{"GET", "/demo/demo.js", "", http.StatusOK},
	} {
		if got := request(t, tc.method, s.BaseURL+tc.path, tc.host).StatusCode; got != tc.want {
			t.Errorf("%s %s (Host %q): %d, want %d", tc.method, tc.path, tc.host, got, tc.want)
		}
	}
}

// Uploaded files never run as pages of the demo's origin: nosniff, a
// sandbox, and a download unless they are images.
func TestDemoMediaIsSafe(t *testing.T) {
	d, s := serveDemo(t)
	dir := filepath.Join(d.MediaRoot, "chat_files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"evil.html", "photo.png", "vector.svg"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("<script>alert(1)</script>"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, attachment := range map[string]bool{"evil.html": true, "photo.png": false, "vector.svg": true} {
		resp := request(t, "GET", s.BaseURL+"/media/chat_files/"+name, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: headers %v", name, resp.Header)
		}
		if got := strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment"); got != attachment {
			t.Errorf("%s: Content-Disposition %q, want attachment=%v", name, resp.Header.Get("Content-Disposition"), attachment)
		}
	}
}

// socket is a test client of one of the sidecar's sockets.
type socket struct {
	t    *testing.T
	name string
	ws   *websocket.Conn
}

func dialSocket(t *testing.T, s *Server, name, path string) *socket {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.BaseURLWS()+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", name, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &socket{t: t, name: name, ws: ws}
}

// next is the socket's next frame, which must be of type typ.
func (c *socket) next(typ string) map[string]any {
	c.t.Helper()
	return c.until(typ, func(map[string]any) bool { return true }, false)
}

// until skips frames of type typ until one satisfies ok; skip says
// whether frames of typ that do not may come first (a conversation list's
// updates may be merged, section 10).
func (c *socket) until(typ string, ok func(map[string]any) bool, skip bool) map[string]any {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v", c.name, typ, err)
		}
		var f map[string]any
		if err := json.Unmarshal(data, &f); err != nil {
			c.t.Fatalf("%s: %s: %v", c.name, data, err)
		}
		if f["type"] != typ {
			c.t.Fatalf("%s: got %s, want a %s", c.name, data, typ)
		}
		if ok(f) {
			return f
		}
		if !skip {
			c.t.Fatalf("%s: unexpected %s", c.name, data)
		}
	}
}

// post sends a same-origin POST with a JSON body and returns the status
// and the decoded answer.
func post(t *testing.T, s *Server, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", s.BaseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", s.BaseURL)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

// inboxItem is the item of conversation id in a conversation list frame.
func inboxItem(f map[string]any, id float64) map[string]any {
	list, _ := f["conversations"].([]any)
	for _, it := range list {
		if m, _ := it.(map[string]any); m["id"] == id {
			return m
		}
	}
	return nil
}

var isoTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$`)

// The request, accept and reject endpoints write what the REST endpoints
// write and send their events (PROTOCOL.md section 11), and both
// participants' lists are updated (section 10).
func TestDemoConversationRequests(t *testing.T) {
	d, s := serveDemo(t)
	lenaNotes := dialSocket(t, s, "Lena's notifications", notificationsPath(d.Listener))
	noraNotes := dialSocket(t, s, "Nora's notifications", notificationsPath(d.Requester))
	inbox := dialSocket(t, s, "Lena's inbox", inboxPath(d.Listener))
	lenaNotes.next("connection_established")
	noraNotes.next("connection_established")
	inbox.next("connection_established")
	if f := inbox.next("conversation_list"); f["count"] != 1.0 {
		t.Fatalf("Lena's list on connect: %v", f)
	}

	// Created: 201, conversation_request to the listener, the list updated.
	code, ans := post(t, s, "/demo/conversations", `{"initial_message": "Can we talk?"}`)
	if code != http.StatusCreated || ans["created"] != true || ans["status"] != "pending" {
		t.Fatalf("request: %d %v", code, ans)
	}
	conv := ans["conversation_id"].(float64)
	f := lenaNotes.next("conversation_request")
	if f["conversation_id"] != conv || f["talker_id"] != float64(d.Requester.ID) || f["talker_email"] != "nora@example.com" ||
		f["talker_name"] != "Nora Newcomer" || f["initial_message"] != "Can we talk?" || !isoTime.MatchString(f["created_at"].(string)) ||
		f["message"] != "New conversation request from Nora Newcomer" {
		t.Errorf("conversation_request %v", f)
	}
	inbox.until("conversation_list_updated", func(f map[string]any) bool {
		it := inboxItem(f, conv)
		return it != nil && it["status"] == "pending" && it["other_user_name"] == "Nora Newcomer"
	}, true)

	// Asked again while pending: 200, the new initial_message, no event.
	code, ans = post(t, s, "/demo/conversations", `{"initial_message": "Still there?"}`)
	if code != http.StatusOK || ans["created"] != false || ans["conversation_id"] != conv {
		t.Fatalf("request again: %d %v", code, ans)
	}
	inbox.until("conversation_list_updated", func(f map[string]any) bool {
		it := inboxItem(f, conv)
		return it != nil && it["initial_message"] == "Still there?"
	}, true)

	// Another site's page may not answer for the listener.
	req, _ := http.NewRequest("POST", s.BaseURL+"/demo/conversations/"+itoa(int64(conv))+"/accept", nil)
	req.Header.Set("Origin", "http://attacker.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin accept: %v %v", resp, err)
	}

	// Accepted: active, accepted_at, conversation_accepted to the talker.
	path := "/demo/conversations/" + itoa(int64(conv))
	code, ans = post(t, s, path+"/accept", "")
	if code != http.StatusOK || ans["status"] != "active" || !isoTime.MatchString(ans["accepted_at"].(string)) {
		t.Fatalf("accept: %d %v", code, ans)
	}
	f = noraNotes.next("conversation_accepted")
	if f["conversation_id"] != conv || f["listener_id"] != float64(d.Listener.ID) || f["listener_email"] != "lena@example.com" ||
		f["listener_name"] != "Lena Listener" || f["accepted_at"] != ans["accepted_at"] ||
		f["message"] != "Your conversation request was accepted by Lena Listener" {
		t.Errorf("conversation_accepted %v", f)
	}
	inbox.until("conversation_list_updated", func(f map[string]any) bool {
		it := inboxItem(f, conv)
		return it != nil && it["status"] == "active"
	}, true)

	// The REST endpoints' refusals.
	for _, tc := range []struct {
		path string
		code int
		err  string
	}{
		{path + "/accept", http.StatusBadRequest, "Cannot accept a active conversation"},
		{path + "/reject", http.StatusBadRequest, "Cannot reject a active conversation"},
		{"/demo/conversations/999/accept", http.StatusNotFound, ""},
	} {
		if code, ans := post(t, s, tc.path, ""); code != tc.code || (tc.err != "" && ans["error"] != tc.err) {
			t.Errorf("%s: %d %v, want %d %q", tc.path, code, ans, tc.code, tc.err)
		}
	}
	if code, ans := post(t, s, "/demo/conversations", `{"initial_message": "Hello again"}`); code != http.StatusOK || ans["status"] != "active" {
		t.Errorf("request of an active pair: %d %v", code, ans)
	}

	// Rejected, on a new request: the conversation is deleted first. Each
	// socket's next frame is the one this step sends: the steps above sent
	// nothing more to either.
	db, err := djangodb.OpenSQLite(d.DBPath, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM chat_conversation WHERE id = $1`, int64(conv)); err != nil {
		t.Fatal(err)
	}
	code, ans = post(t, s, "/demo/conversations", `{"initial_message": "Third time"}`)
	if code != http.StatusCreated {
		t.Fatalf("request after delete: %d %v", code, ans)
	}
	conv = ans["conversation_id"].(float64)
	if f := lenaNotes.next("conversation_request"); f["initial_message"] != "Third time" {
		t.Errorf("conversation_request %v", f)
	}
	code, ans = post(t, s, "/demo/conversations/"+itoa(int64(conv))+"/reject", "")
	if code != http.StatusOK || ans["status"] != "rejected" {
		t.Fatalf("reject: %d %v", code, ans)
	}
	f = noraNotes.next("conversation_rejected")
	if f["conversation_id"] != conv || f["rejected_at"] != ans["rejected_at"] ||
		f["message"] != "Your conversation request was rejected by Lena Listener" {
		t.Errorf("conversation_rejected %v", f)
	}
	var status, rejectedAt string
	var acceptedAt sql.NullString
	if err := db.QueryRow(`SELECT status, accepted_at, rejected_at FROM chat_conversation WHERE id = $1`, int64(conv)).
		Scan(&status, &acceptedAt, &rejectedAt); err != nil || status != "rejected" || acceptedAt.Valid || rejectedAt == "" {
		t.Errorf("row: %q %v %q %v", status, acceptedAt, rejectedAt, err)
	}
}
