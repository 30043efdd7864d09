package e2e

import (
	"context"
	"testing"

	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// PROTOCOL.md section 9: the blocking timeline, with the block row made and
// removed in the database as the REST API does, and no restart.
func TestBlockingTimeline(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)

		// T0: chatting.
		tc.send(`{"type": "chat_message", "message": "hi"}`)
		tc.expectType("new_message")
		lc.expectType("new_message")
		lc.send(`{"type": "chat_message", "message": "hello"}`)
		lc.expectType("new_message")
		tc.expectType("new_message")

		// T1: the listener blocks the talker.
		w.db.Block(t, w.listener, w.talker)
		before := w.messages()
		lastAt := lastMessageAt(t, w.db.DB, w.conv)

		// T2: text refused, nothing saved, nothing broadcast.
		tc.send(`{"type": "chat_message", "message": "Hello listener!"}`)
		tc.expectError("You cannot message this user because they have blocked you or you have blocked them")
		// The listener is stopped too (the block is symmetric in effect).
		lc.send(`{"type": "chat_message", "message": "listener while blocked"}`)
		lc.expectError("You cannot message this user because they have blocked you or you have blocked them")

		// T3: file refused, no file written.
		tc.send(`{"type": "file_message", "file": "aGVsbG8=", "filename": "image.jpg"}`)
		tc.expectError("You cannot send files to this user because they have blocked you or you have blocked them")
		tc.send(`{"type": "file_message", "file": "not base64", "filename": "x.jpg"}`)
		tc.expectError("You cannot send files to this user because they have blocked you or you have blocked them")

		// T4: typing is silently dropped: no error, no frame for the listener.
		tc.send(`{"type": "typing", "is_typing": true}`)
		tc.send(`{"type": "after-typing"}`)
		tc.expectError("Unknown message type: after-typing")
		barrier(tc, lc) // mark_read is not subject to blocking

		if n := w.messages(); n != before {
			t.Errorf("T2/T3 wrote %d messages", n-before)
		}
		if f := w.files(); len(f) != 0 {
			t.Errorf("T3 wrote files %v", f)
		}
		if got := lastMessageAt(t, w.db.DB, w.conv); got != lastAt {
			t.Errorf("last_message_at moved while blocked: %v → %v", lastAt, got)
		}

		// T4': new connections of either participant are refused.
		w.refused(w.chatPath(), w.tokens[w.talker].Access, nil)
		w.refused(w.chatPath(), w.tokens[w.listener].Access, nil)

		// T5: unblock.
		w.db.Unblock(t, w.listener, w.talker)

		// T6: saved, broadcast, received.
		tc.send(`{"type": "chat_message", "message": "Are you there?"}`)
		mine := tc.expectType("new_message")
		theirs := lc.expectType("new_message")
		latest := get(theirs, "latest_message").(pyjson.Object)
		if get(latest, "content") != "Are you there?" || mustJSON(mine) != mustJSON(theirs) {
			t.Errorf("T6 frame %s", mustJSON(theirs))
		}
		if n := w.messages(); n != before+1 {
			t.Errorf("T6: %d messages, want %d", n, before+1)
		}
		w.connect(w.talker) // and connecting works again
	})
}

// Section 7: chat_message events also send conversation_update to both
// users' conversation-list groups, once per event per process however many
// members are connected (docs/PROTOCOL.md section 10: Python sent one per
// member connection); a blocked or deleted conversation sends none.
func TestConversationUpdate(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		tc.send(`{"type": "chat_message", "message": "hi"}`)
		tc.expectType("new_message")
		lc.expectType("new_message")
		want := `{"type": "conversation_update", "conversation_id": ` + itoa(w.conv) + `}`
		for _, u := range []int64{w.talker, w.listener} {
			group := "user_" + itoa(u) + "_conversations"
			// Sent off the event path, after the frames are queued.
			waitFor(t, "the update of "+group, func() bool { return len(w.layer.sentTo(group)) > 0 })
			barrier(tc, lc)
			got := w.layer.sentTo(group)
			if len(got) != 1 {
				t.Fatalf("user %d: %d updates, want 1 (once per event per process)", u, len(got))
			}
			for _, e := range got {
				if mustJSON(e) != want {
					t.Errorf("update %s, want %s", mustJSON(e), want)
				}
			}
		}
	})
}

// Section 7: events from other producers (the REST upload endpoint) pass
// latest_message through untouched; unknown events are ignored and keep
// the connections open.
func TestGroupEventsFromOthers(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		group := "chat_" + itoa(w.conv)
		ctx := context.Background()

		// What DRF's MessageSerializer sends: another shape, kept as received.
		drf := pyjson.Object{
			{Key: "id", Value: int64(77)}, {Key: "conversation", Value: w.conv},
			{Key: "sender", Value: pyjson.Object{{Key: "id", Value: w.talker}, {Key: "email", Value: "talker@example.com"}}},
			{Key: "content", Value: "upload"}, {Key: "created_at", Value: "2026-01-14T10:00:00.120000Z"},
			{Key: "file_attachment", Value: pyjson.Object{{Key: "file_url", Value: "http://testserver/media/chat_files/a%20b.png"}, {Key: "size", Value: 2.5}}},
		}
		for _, event := range []pyjson.Object{
			{{Key: "type", Value: "no_such_handler"}, {Key: "x", Value: int64(1)}},
			{{Key: "type", Value: "chat_message"}, {Key: "message", Value: drf}},
		} {
			if err := w.layer.GroupSend(ctx, group, event); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []*client{tc, lc} {
			f := c.expectType("new_message")
			if got, want := mustJSON(get(f, "latest_message")), mustJSON(drf); got != want {
				t.Errorf("latest_message\n got %s\nwant %s", got, want)
			}
		}
		// A typing event whose user_id is a string is not "the same user".
		ev := pyjson.Object{{Key: "type", Value: "typing_indicator"}, {Key: "user_id", Value: itoa(w.talker)},
			{Key: "user_email", Value: "talker@example.com"}, {Key: "is_typing", Value: true}}
		if err := w.layer.GroupSend(ctx, group, ev); err != nil {
			t.Fatal(err)
		}
		tc.expectType("typing")
		lc.expectType("typing")
	})
}
