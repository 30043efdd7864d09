package consumer

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/chatsidecar/sidecar/memlayer"
	"github.com/chatsidecar/sidecar/pyjson"
)

// sendRecorder records group sends and holds each until released.
type sendRecorder struct {
	*memlayer.Layer
	release chan struct{}
	mu      sync.Mutex
	sent    []string // group:conversation
}

func (l *sendRecorder) GroupSend(ctx context.Context, group string, event pyjson.Object) error {
	<-l.release
	l.mu.Lock()
	defer l.mu.Unlock()
	id, _ := event[1].Value.(int64)
	l.sent = append(l.sent, group+":"+itoa(id))
	return nil
}

func (l *sendRecorder) sends() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent...)
}

// Section 10: conversation_update sends waiting for the same group and
// conversation are one send (its receivers read the conversation when it
// arrives, after every write that asked for it); one for another
// conversation or group is its own; once a send has been taken off the
// queue, a new update is sent again (it may be for a write that send
// came too early for).
func TestConversationUpdatesCoalesce(t *testing.T) {
	layer := &sendRecorder{Layer: memlayer.New(0), release: make(chan struct{})}
	s := New(testConfig(), newMemStore(), tokenVerifier{}, &memFiles{}, layer, slog.New(slog.DiscardHandler), nil, nil)
	for i := 0; i < 5; i++ {
		s.sendUpdate("user_1_conversations", 7)
		s.sendUpdate("user_2_conversations", 7)
	}
	s.sendUpdate("user_1_conversations", 8)
	if got := testutilCount(s.metrics.updateSends.WithLabelValues("coalesced")); got != 8 {
		t.Errorf("coalesced %v, want 8", got)
	}
	if n := len(s.updates); n != 3 {
		t.Fatalf("%d sends waiting, want 3", n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.sendUpdates(ctx)
	layer.release <- struct{}{} // the first send goes; the sender takes the second
	waitFor(t, "the second send taken", func() bool {
		s.waitingMu.Lock()
		defer s.waitingMu.Unlock()
		return !s.waiting[groupSend{"user_2_conversations", 7}]
	})
	s.sendUpdate("user_2_conversations", 7) // taken already: sent again
	s.sendUpdate("user_1_conversations", 8) // still waiting: covered
	close(layer.release)
	waitFor(t, "every send", func() bool { return len(layer.sends()) == 4 })
	want := []string{"user_1_conversations:7", "user_2_conversations:7", "user_1_conversations:8", "user_2_conversations:7"}
	for i, g := range layer.sends() {
		if g != want[i] {
			t.Errorf("sends %v, want %v", layer.sends(), want)
			break
		}
	}
	if got := testutilCount(s.metrics.updateSends.WithLabelValues("sent")); got != 4 {
		t.Errorf("sent %v, want 4", got)
	}
}
