package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// PROTOCOL.md section 4: the three frames, byte for byte.
func TestConnectFrames(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		c, _, err := w.dial(w.chatPath(), w.tokens[w.talker].Access, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.raw(), `{"type": "connection_established", "message": "Connected to chat"}`; got != want {
			t.Errorf("frame 1\n got %s\nwant %s", got, want)
		}
		id := itoa(w.conv)
		wantInfo := `{"type": "api_info", "endpoint": "/api/chat/conversations/` + id + `/upload_file/", "method": "POST", ` +
			`"description": "Upload image or file to conversation", "content_type": "multipart/form-data", ` +
			`"parameters": {"file": "Required - The image or file to upload", "content": "Optional - Message description"}, ` +
			`"headers": {"Authorization": "Bearer YOUR_JWT_TOKEN"}, ` +
			`"example_url": "https://chat.example.com/api/chat/conversations/` + id + `/upload_file/", ` +
			`"message": "Use the endpoint above to upload files. Files will be automatically broadcasted to all connected users."}`
		if got := c.raw(); got != wantInfo {
			t.Errorf("frame 2\n got %s\nwant %s", got, wantInfo)
		}
		if got, want := c.raw(), `{"type": "conversation_history", "messages": [], "count": 0, "message": "Loaded 0 previous message(s)"}`; got != want {
			t.Errorf("frame 3\n got %s\nwant %s", got, want)
		}
	})
}

// History is every message, newest first, ties on created_at broken by id.
func TestConnectHistoryOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		same := time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC)
		for i, row := range []struct {
			sender  int64
			content string
			at      time.Time
		}{
			{w.talker, "first", same.Add(-time.Hour)},
			{w.listener, "tie-a", same},
			{w.talker, "tie-b", same},
			{w.talker, "newest", same.Add(123456 * time.Microsecond)},
		} {
			_, err := w.db.DB.Exec(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
			VALUES ($1, $2, $3, 'text', $4, $5)`, w.conv, row.sender, row.content, i == 0, w.db.Time(row.at))
			if err != nil {
				t.Fatal(err)
			}
		}
		c, _, err := w.dial(w.chatPath(), w.tokens[w.listener].Access, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.expectType("connection_established")
		c.expectType("api_info")
		h := c.expectType("conversation_history")
		msgs := get(h, "messages").(pyjson.List)
		var order []string
		for _, m := range msgs {
			order = append(order, get(m.(pyjson.Object), "content").(string))
		}
		if got, want := mustJSON(toList(order)), `["newest", "tie-b", "tie-a", "first"]`; got != want {
			t.Errorf("history order %s, want %s", got, want)
		}
		if got := get(h, "message"); got != "Loaded 4 previous message(s)" || get(h, "count") != int64(4) {
			t.Errorf("history count/message: %v %v", get(h, "count"), got)
		}
		newest := mustJSON(msgs[0])
		want := `{"id": ` + mustJSON(get(msgs[0].(pyjson.Object), "id")) + `, "conversation": ` + itoa(w.conv) +
			`, "sender": {"id": ` + itoa(w.talker) + `, "email": "talker@example.com", "full_name": "talker@example.com", "user_type": "talker"}, ` +
			`"content": "newest", "message_type": "text", "created_at": "2026-01-14T10:00:00.123456+00:00", "is_read": false, "file_attachment": null}`
		if newest != want {
			t.Errorf("message object\n got %s\nwant %s", newest, want)
		}
		tieA := msgs[2].(pyjson.Object)
		if got := get(tieA, "created_at"); got != "2026-01-14T10:00:00+00:00" {
			t.Errorf("created_at without microseconds = %v", got)
		}
		if got := get(get(tieA, "sender").(pyjson.Object), "full_name"); got != "Lena Listener" {
			t.Errorf("full_name = %v", got)
		}
	})
}

func toList(s []string) pyjson.List {
	l := make(pyjson.List, len(s))
	for i, v := range s {
		l[i] = v
	}
	return l
}

func get(o pyjson.Object, key string) pyjson.Value {
	v, _ := o.Get(key)
	return v
}

// The trailing slash may be missing; a segment like 007 finds conversation
// 7 but keeps its spelling in the group and in api_info.
func TestConnectPathSpelling(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		c, _, err := w.dial("/ws/chat/"+itoa(w.conv), w.tokens[w.talker].Access, nil)
		if err != nil {
			t.Fatalf("no trailing slash: %v", err)
		}
		c.expectType("connection_established")

		padded := "00" + itoa(w.conv)
		p, _, err := w.dial("/ws/chat/"+padded+"/", w.tokens[w.listener].Access, nil)
		if err != nil {
			t.Fatalf("segment %s: %v", padded, err)
		}
		p.expectType("connection_established")
		info := p.expectType("api_info")
		if got := get(info, "endpoint"); got != "/api/chat/conversations/"+padded+"/upload_file/" {
			t.Errorf("endpoint = %v", got)
		}
		p.expectType("conversation_history")
		p.send(`{"type": "chat_message", "message": "padded"}`)
		p.expectType("new_message")
		if got := w.layer.sentTo("chat_" + padded); len(got) != 1 {
			t.Errorf("group chat_%s got %d events, want 1", padded, len(got))
		}
		if got := w.layer.sentTo("chat_" + itoa(w.conv)); len(got) != 0 {
			t.Errorf("group chat_%d got %d events, want 0 (different spelling)", w.conv, len(got))
		}
	})
}

// Every refusal cause is HTTP 403 (PROTOCOL.md section 4).
func TestConnectRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		stranger := w.db.CreateUser(t, "stranger@example.com", "", "talker")
		inactive := w.db.CreateUser(t, "inactive@example.com", "", "talker")
		gone := w.db.CreateUser(t, "gone@example.com", "", "talker")
		toks := mintFor(t, w, stranger, inactive, gone)
		inactiveConv := w.db.CreateConversation(t, w.listener, inactive, "active")
		w.db.SetUserActive(t, inactive, false)
		if _, err := w.db.DB.Exec(`DELETE FROM users_user WHERE id = $1`, gone); err != nil {
			t.Fatal(err)
		}
		blockedTalker := w.db.CreateUser(t, "blocked@example.com", "", "talker")
		blockedConv := w.db.CreateConversation(t, w.listener, blockedTalker, "active")
		w.db.Block(t, w.listener, blockedTalker)
		btoks := mintFor(t, w, blockedTalker)

		talker := w.tokens[w.talker].Access
		path := w.chatPath()
		cases := []struct {
			name, path, token string
		}{
			{"no token", path, ""},
			{"garbage token", path, "not-a-jwt"},
			{"refresh token", path, w.tokens[w.talker].Refresh},
			{"token of another key", path, hs256(t, `{"token_type":"access","exp":4102444800,"jti":"0123456789abcdef0123456789abcdef","user_id":1}`, "other-key")},
			{"token without user id", path, hs256(t, `{"token_type":"access","exp":4102444800,"jti":"0123456789abcdef0123456789abcdef"}`, secretKey)},
			{"expired token", path, hs256(t, `{"token_type":"access","exp":1000000000,"jti":"0123456789abcdef0123456789abcdef","user_id":`+itoa(w.talker)+`}`, secretKey)},
			{"user missing", path, toks[gone]},
			{"user inactive (divergence)", "/ws/chat/" + itoa(inactiveConv) + "/", toks[inactive]},
			{"conversation missing", "/ws/chat/999999/", talker},
			{"not a participant", path, toks[stranger]},
			{"blocked pair, talker", "/ws/chat/" + itoa(blockedConv) + "/", btoks[blockedTalker]},
			{"blocked pair, listener", "/ws/chat/" + itoa(blockedConv) + "/", w.tokens[w.listener].Access},
			{"segment abc (divergence)", "/ws/chat/abc/", talker},
			{"segment out of range (divergence)", "/ws/chat/99999999999999999999/", talker},
			{"segment zero", "/ws/chat/0/", talker},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				w.t = t
				w.refused(tc.path, tc.token, nil)
			})
		}
		w.t = t
		// Other paths are not the chat route.
		resp, err := http.Get(w.url + "/ws/chat/1/extra/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("other path: %d, want 404", resp.StatusCode)
		}
	})
}

func mintFor(t *testing.T, w *world, ids ...int64) map[int64]string {
	t.Helper()
	toks := map[int64]string{}
	for id, tok := range testenvMint(t, w, ids...) {
		toks[id] = tok
	}
	return toks
}

// hs256 signs payload as SimpleJWT does (header {"alg":"HS256","typ":"JWT"}).
func hs256(t *testing.T, payload, key string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// Origin: Django's ALLOWED_HOSTS semantics; no Origin header is allowed.
func TestConnectOrigin(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		tok := w.tokens[w.talker].Access
		for _, tc := range []struct {
			origin string
			ok     bool
		}{
			{"", true},
			{"https://chat.example.com", true},
			{"http://chat.example.com:8080", true},
			{"https://CHAT.EXAMPLE.COM", true},
			{"https://example.org", true},
			{"https://deep.sub.example.org", true},
			{"https://evil.com", false},
			{"https://chat.example.com.evil.com", false},
			{"https://notexample.org", false},
			{"null", false},
		} {
			t.Run(tc.origin, func(t *testing.T) {
				w.t = t
				h := http.Header{}
				if tc.origin != "" {
					h.Set("Origin", tc.origin)
				}
				if !tc.ok {
					w.refused(w.chatPath(), tok, h)
					return
				}
				c, resp, err := w.dial(w.chatPath(), tok, h)
				if err != nil {
					t.Fatalf("refused: %v %s", err, status(resp))
				}
				c.expectType("connection_established")
			})
		}
	})
}

// ALLOWED_HOSTS=* admits every Origin, "null" included.
func TestConnectOriginWildcard(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active", func(c *config.Config) { c.AllowedHosts = []string{"*"} })
		h := http.Header{"Origin": {"null"}}
		c, resp, err := w.dial(w.chatPath(), w.tokens[w.talker].Access, h)
		if err != nil {
			t.Fatalf("refused: %v %s", err, status(resp))
		}
		c.expectType("connection_established")
	})
}
