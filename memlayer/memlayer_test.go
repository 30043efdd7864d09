package memlayer

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pyjson"
)

func TestGroups(t *testing.T) {
	ctx := context.Background()
	l := New(10)
	a, b, c := l.NewChannel(), l.NewChannel(), l.NewChannel()
	if a == b || !strings.HasPrefix(a, "specific.") || !strings.Contains(a, "!") {
		t.Fatalf("channel names %q %q", a, b)
	}
	for _, ch := range []string{a, b} {
		if err := l.GroupAdd(ctx, "chat_1", ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.GroupAdd(ctx, "chat_2", c); err != nil {
		t.Fatal(err)
	}
	ev := pyjson.Object{{Key: "type", Value: "chat_message"}}
	if err := l.GroupSend(ctx, "chat_1", ev); err != nil {
		t.Fatal(err)
	}
	got, event, err := l.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{a, b}
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") || len(event) != 1 {
		t.Errorf("delivered to %v, want %v", got, want)
	}
	// Discarding leaves the others; an empty group delivers nothing.
	_ = l.GroupDiscard(ctx, "chat_1", a)
	_ = l.GroupDiscard(ctx, "chat_1", "never-added")
	_ = l.GroupSend(ctx, "chat_1", ev)
	if got, _, _ := l.Receive(ctx); len(got) != 1 || got[0] != b {
		t.Errorf("after discard: %v", got)
	}
	_ = l.GroupDiscard(ctx, "chat_1", b)
	if err := l.GroupSend(ctx, "chat_1", ev); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := l.Receive(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("receive on an empty queue: %v", err)
	}
}

func TestInvalidGroupAndFullQueue(t *testing.T) {
	ctx := context.Background()
	l := New(1)
	for _, g := range []string{"", "chat 1", "chat/1", "chat_é", strings.Repeat("a", 100)} {
		if err := l.GroupAdd(ctx, g, "x"); err == nil {
			t.Errorf("group %q accepted", g)
		}
	}
	_ = l.GroupAdd(ctx, "g", l.NewChannel())
	ev := pyjson.Object{{Key: "type", Value: "x"}}
	if err := l.GroupSend(ctx, "g", ev); err != nil {
		t.Fatal(err)
	}
	if err := l.GroupSend(ctx, "g", ev); !errors.Is(err, ErrChannelFull) {
		t.Errorf("second send into a queue of 1: %v, want ErrChannelFull", err)
	}
}
