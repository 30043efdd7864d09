package consumer

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/memlayer"
)

// stubStore answers without a database: every save succeeds in memory.
type stubStore struct{ blocked bool }

func (s stubStore) User(context.Context, int64) (chat.User, error) { return chat.User{}, nil }
func (s stubStore) Conversation(context.Context, int64) (chat.Conversation, bool, error) {
	return chat.Conversation{ID: 1, ListenerID: 1, TalkerID: 2, Status: "active"}, s.blocked, nil
}
func (s stubStore) IsBlocked(context.Context, int64, int64) (bool, error) { return s.blocked, nil }
func (s stubStore) SaveText(_ context.Context, m djangodb.Draft) (chat.Message, error) {
	return chat.Message{ID: 1, ConversationID: m.ConversationID, Sender: m.Sender, Content: m.Content}, nil
}
func (s stubStore) SaveFile(_ context.Context, m djangodb.Draft, f djangodb.FileDraft, _ djangodb.Files) (chat.Message, error) {
	return chat.Message{ID: 1, Content: m.Content, Attachment: &chat.Attachment{Filename: f.Filename}}, nil
}
func (s stubStore) History(context.Context, int64) ([]chat.Message, error) { return nil, nil }
func (s stubStore) MarkRead(context.Context, int64, int64) (int64, error)  { return 0, nil }

// FuzzHandle: no client frame makes the handler panic, and every frame gets
// at most a bounded number of replies.
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
		s := New(Config{MaxFileBytes: 1 << 10, SendQueue: 64}, stubStore{blocked: blocked}, nil, fakeMedia{}, memlayer.New(0), log)
		c := &conn{srv: s, log: log, user: chat.User{ID: 2}, conv: chat.Conversation{ID: 1, ListenerID: 1, TalkerID: 2},
			group: "chat_1", channel: "c", send: make(chan []byte, 64), done: make(chan struct{}), ready: true}
		c.handle(data)
		if len(c.send) > 1 {
			t.Fatalf("%d replies to one frame", len(c.send))
		}
	})
}
