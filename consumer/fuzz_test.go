package consumer

import (
	"io"
	"log/slog"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/memlayer"
)

// FuzzHandle: no client frame makes the handler panic, and every frame gets
// at most one reply.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"type": "chat_message", "message": "hi"}`, `{"type": "file_message", "file": "aGk=", "filename": "../a b.png"}`,
		`{"type": "typing", "is_typing": [1, {"a": null}]}`, `{"type": "mark_read"}`, `{"type": 1e400}`, `[`, `{"type": {"a": [1, 2.5]}}`,
		`{"type": "file_message", "file": "====", "filename": "x"}`, `{"type": "chat_message", "message": "\u0000"}`,
	} {
		f.Add([]byte(s), false)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, data []byte, blocked bool) {
		store := newMemStore()
		talker := store.addUser(chat.User{ID: 2, Email: "t@example.com", UserType: "talker", IsActive: true})
		conv := chat.Conversation{ID: 1, ListenerID: 1, TalkerID: 2, Status: chat.StatusActive}
		store.addConversation(conv)
		store.setBlocked(1, 2, blocked)
		s := New(testConfig(), store, tokenVerifier{}, &memFiles{}, memlayer.New(0), log, nil, nil)
		c := newConn(s, s.routes[0])
		c.user, c.conv, c.group, c.channel, c.ready = talker, conv, "chat_1", "c", true
		c.handleChat(websocket.TextMessage, data)
		if n := len(c.queue); n > 1 {
			t.Fatalf("%d replies to one frame", n)
		}
	})
}
