package djangodb_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// The conversation list in one query: every conversation of the user, in
// Django's order for order_by('-last_message_at', '-created_at') on each
// engine (NULL first on PostgreSQL, last on SQLite), ties by greatest id,
// each with its latest message (greatest created_at, then id), cut to 50
// code points, and its count.
func TestInbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		ctx := context.Background()
		pg := be.New(t)
		db := newStore(t, pg, djangodb.Schema{})
		fx := pg.Fixture()
		user := func(email, name, typ string) int64 {
			id, err := fx.User(ctx, fixture.User{Email: email, FullName: name, Type: typ})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		me := user("me@example.com", "Me", "listener")
		t1 := user("t1@example.com", "", "talker")
		t2 := user("t2@example.com", "Two", "talker")
		t3 := user("t3@example.com", "Three", "talker")
		l2 := user("l2@example.com", "", "listener")
		base := time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC)
		conv := func(l, tk int64, status, initial string, created, last time.Time) int64 {
			id, err := fx.Conversation(ctx, fixture.Conversation{ListenerID: l, TalkerID: tk, Status: status,
				InitialMessage: initial, CreatedAt: created, LastMessageAt: last})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		noMsgs := conv(me, t1, "pending", "hello there", base, time.Time{})
		older := conv(me, t2, "active", "", base.Add(-time.Hour), base.Add(time.Minute))
		newer := conv(me, t3, "active", "", base.Add(-2*time.Hour), base.Add(2*time.Minute))
		conv(l2, t3, "active", "", base, base)                                         // not mine
		tie := conv(l2, me, "active", "", base.Add(-time.Hour), base.Add(time.Minute)) // I am its talker; same times as older

		msg := func(c, sender int64, content string, at time.Time) int64 {
			id, err := fx.Message(ctx, c, sender, content, at)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		astral := strings.Repeat("é", 48) + "😀😀xyz" // the 50-code-point cut falls after the second emoji
		msg(older, t2, "first", base)
		msg(older, me, astral, base.Add(time.Second))
		same := base.Add(3 * time.Second)
		msg(newer, t3, "a", same)
		msg(newer, me, "b wins the tie by id", same)

		items, err := db.Inbox(ctx, me)
		if err != nil {
			t.Fatal(err)
		}
		var order []int64
		for _, it := range items {
			order = append(order, it.ID)
		}
		want := []int64{newer, tie, older, noMsgs} // tie and older: same times, greatest id first
		if be.Name == "postgres" {
			want = []int64{noMsgs, newer, tie, older}
		}
		if !slices.Equal(order, want) {
			t.Fatalf("order %v, want %v", order, want)
		}
		byID := map[int64]chat.InboxItem{}
		for _, it := range items {
			byID[it.ID] = it
		}
		if it := byID[older]; it.Preview != strings.Repeat("é", 48)+"😀😀" || it.LatestSenderID != me || !it.HasLatest ||
			it.TotalMessages != 2 || it.Talker.FullName != "Two" || it.Listener.Email != "me@example.com" {
			t.Errorf("older: %+v", it)
		}
		if it := byID[newer]; it.Preview != "b wins the tie by id" || it.TotalMessages != 2 {
			t.Errorf("newer: %+v", it)
		}
		if it := byID[noMsgs]; it.HasLatest || it.TotalMessages != 0 || !it.LastMessageAt.IsZero() ||
			it.InitialMessage != "hello there" || it.Status != "pending" || !it.CreatedAt.Equal(base) {
			t.Errorf("noMsgs: %+v", it)
		}
		if it := byID[tie]; it.Talker.ID != me || it.Listener.ID != l2 {
			t.Errorf("tie: %+v", it)
		}

		pending, err := db.PendingConversations(ctx, me)
		if err != nil || len(pending) != 1 || pending[0].ID != noMsgs || pending[0].Talker.Email != "t1@example.com" ||
			pending[0].InitialMessage != "hello there" || !pending[0].CreatedAt.Equal(base) {
			t.Errorf("PendingConversations = %+v, %v", pending, err)
		}
		if empty, err := db.Inbox(ctx, user("nobody@example.com", "", "talker")); err != nil || len(empty) != 0 {
			t.Errorf("Inbox of a user without conversations = %v, %v", empty, err)
		}
	})
}
