package djangodb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// BenchmarkSaveText saves text messages from parallel goroutines, spread
// over several conversations, on a real PostgreSQL and a real SQLite file.
func BenchmarkSaveText(b *testing.B) {
	for _, be := range testenv.Backends {
		b.Run(be.Name, func(b *testing.B) { benchSaveText(b, be) })
	}
}

func benchSaveText(b *testing.B, be testenv.Backend) {
	const conversations = 8
	pg := be.New(b)
	db := newStore(b, pg, djangodb.Schema{})
	listener := pg.CreateUser(b, "listener@example.com", "", "listener")
	type target struct {
		conv   int64
		sender chat.User
	}
	targets := make([]target, conversations)
	for i := range targets {
		u := chat.User{Email: fmt.Sprintf("talker%d@example.com", i), UserType: "talker", IsActive: true}
		u.ID = pg.CreateUser(b, u.Email, "", u.UserType)
		targets[i] = target{conv: pg.CreateConversation(b, listener, u.ID, chat.StatusActive), sender: u}
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		tg := targets[int(next.Add(1))%conversations]
		for pb.Next() {
			if _, err := db.SaveText(ctx, chat.Draft{ConversationID: tg.conv, Sender: tg.sender, Content: "benchmark message"}); err != nil {
				b.Errorf("SaveText: %v", err)
				return
			}
		}
	})
}

// BenchmarkHistory loads a conversation of 50 messages, one in five a file,
// on each backend.
func BenchmarkHistory(b *testing.B) {
	for _, be := range testenv.Backends {
		b.Run(be.Name, func(b *testing.B) { benchHistory(b, be) })
	}
}

func benchHistory(b *testing.B, be testenv.Backend) {
	p := newPair(b, be, chat.StatusActive)
	ctx := context.Background()
	for i := range 50 {
		d := chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: fmt.Sprintf("message %d", i)}
		var err error
		if i%5 == 0 {
			_, err = p.db.SaveFile(ctx, d, chat.FileDraft{Name: "f.png", Filename: "f.png", Data: []byte("png"), FileType: "image/png"}, &fakeFiles{})
		} else {
			_, err = p.db.SaveText(ctx, d)
		}
		if err != nil {
			b.Fatalf("save %d: %v", i, err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		h, err := historyOf(ctx, p.db, p.conv)
		if err != nil || len(h) != 50 {
			b.Fatalf("History = %d messages, %v", len(h), err)
		}
	}
}

// historyOf collects a conversation's history, newest first.
func historyOf(ctx context.Context, db *djangodb.DB, conv int64) ([]chat.Message, error) {
	var out []chat.Message
	if err := db.History(ctx, conv, func(m chat.Message) error { out = append(out, m); return nil }); err != nil {
		return nil, err // what came before the error is not a history
	}
	return out, nil
}
