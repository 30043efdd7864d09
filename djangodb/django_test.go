package djangodb_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// djangoRoundTrip is run by `manage.py shell -c` with CONV, TALKER and
// LISTENER formatted in. It prints, as JSON, what Django's ORM reads from
// the rows the sidecar wrote, then writes rows through the ORM (two messages,
// last_message_at, a block), and prints the raw stored text of every
// datetime on SQLite (CAST, so that Django's sqlite3 converters do not
// parse it).
const djangoRoundTrip = `
import datetime, json
from django.db import connection
from chat.models import Conversation, FileAttachment, Message
from listener.models import ListenerBlockedTalker
utc = datetime.timezone.utc
out = {"read": [], "raw": {}}
conv = Conversation.objects.get(pk=%[1]d)
out["last_message_at"] = conv.last_message_at.isoformat()
for m in Message.objects.filter(conversation=conv).order_by("id"):
    row = {"id": m.id, "sender": m.sender_id, "content": m.content, "type": m.message_type,
           "is_read": m.is_read, "created_at": m.created_at.isoformat()}
    try:
        a = m.file_attachment
        row["file"] = [a.file.name, a.filename, a.file_size, a.file_type, a.uploaded_at.isoformat()]
    except FileAttachment.DoesNotExist:
        pass
    out["read"].append(row)
for i, at in enumerate([datetime.datetime(2026, 1, 14, 10, 0, 3, 654321, tzinfo=utc),
                        datetime.datetime(2026, 1, 14, 10, 0, 4, tzinfo=utc)]):
    m = Message.objects.create(conversation=conv, sender_id=%[2]d, content="from django %%d" %% i, is_read=True)
    Message.objects.filter(pk=m.id).update(created_at=at)
    out.setdefault("written", []).append(m.id)
Conversation.objects.filter(pk=conv.pk).update(last_message_at=datetime.datetime(2026, 1, 14, 10, 0, 4, tzinfo=utc))
ListenerBlockedTalker.objects.create(listener_id=%[3]d, talker_id=%[2]d)
if connection.vendor == "sqlite":
    with connection.cursor() as c:
        c.execute("SELECT id, CAST(created_at AS TEXT) FROM chat_message ORDER BY id")
        out["raw"]["messages"] = [[r[0], r[1]] for r in c.fetchall()]
        c.execute("SELECT CAST(last_message_at AS TEXT) FROM chat_conversation WHERE id = %%s", [conv.pk])
        out["raw"]["last_message_at"] = c.fetchone()[0]
        c.execute("SELECT CAST(uploaded_at AS TEXT) FROM chat_fileattachment")
        out["raw"]["uploaded_at"] = [r[0] for r in c.fetchall()]
print(json.dumps(out))
`

// TestDjangoRoundTrip: Django's ORM reads what the sidecar wrote, value for
// value, and the sidecar reads what Django wrote; on SQLite the stored text
// of the sidecar's datetimes is byte for byte the text Django stores.
func TestDjangoRoundTrip(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		m1, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "héllo ✓", CreatedAt: at(0)})
		if err != nil {
			t.Fatal(err)
		}
		whole := time.Date(2026, 1, 14, 10, 0, 1, 0, time.UTC) // no microseconds
		m2, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.listener, Content: "", CreatedAt: whole})
		if err != nil {
			t.Fatal(err)
		}
		m3, err := p.db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "cap", CreatedAt: at(2)},
			chat.FileDraft{Name: "a b.png", Filename: "a b.png", Data: []byte("png"), FileType: "image/png"}, &fakeFiles{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.db.MarkRead(ctx, p.conv, p.listener.ID); err != nil {
			t.Fatal(err)
		}

		stdout := testenv.RunManage(t, []string{"DATABASE_URL=" + p.pg.DSN}, "shell", "-c",
			fmt.Sprintf(djangoRoundTrip, p.conv, p.talker.ID, p.listener.ID))
		var got struct {
			Read []struct {
				ID        int64  `json:"id"`
				Sender    int64  `json:"sender"`
				Content   string `json:"content"`
				Type      string `json:"type"`
				IsRead    bool   `json:"is_read"`
				CreatedAt string `json:"created_at"`
				File      []any  `json:"file"`
			} `json:"read"`
			LastMessageAt string  `json:"last_message_at"`
			Written       []int64 `json:"written"`
			Raw           struct {
				Messages      [][2]any `json:"messages"`
				LastMessageAt string   `json:"last_message_at"`
				UploadedAt    []string `json:"uploaded_at"`
			} `json:"raw"`
		}
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("shell output %q: %v", stdout, err)
		}

		// Django reads the sidecar's rows.
		type row struct {
			id, sender       int64
			content, typ, at string
			isRead           bool
		}
		want := []row{
			{m1.ID, p.talker.ID, "héllo ✓", "text", "2026-01-14T10:00:00.123456+00:00", true},
			{m2.ID, p.listener.ID, "", "text", "2026-01-14T10:00:01+00:00", false},
			{m3.ID, p.talker.ID, "cap", "file", "2026-01-14T10:00:02.123456+00:00", true},
		}
		if len(got.Read) != len(want) {
			t.Fatalf("Django read %d messages, want %d: %s", len(got.Read), len(want), stdout)
		}
		for i, w := range want {
			g := got.Read[i]
			if (row{g.ID, g.Sender, g.Content, g.Type, g.CreatedAt, g.IsRead}) != w {
				t.Errorf("Django read message %d as %+v, want %+v", i, g, w)
			}
		}
		if f := got.Read[2].File; fmt.Sprint(f) != fmt.Sprint([]any{"chat_files/2026/01/14/a b.png", "a b.png", 3.0, "image/png", "2026-01-14T10:00:02.123456+00:00"}) {
			t.Errorf("Django read the attachment as %v", f)
		}
		if got.LastMessageAt != "2026-01-14T10:00:02.123456+00:00" {
			t.Errorf("Django read last_message_at %s", got.LastMessageAt)
		}

		// The sidecar reads Django's rows.
		h, err := historyOf(ctx, p.db, p.conv)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 5 || len(got.Written) != 2 || h[0].ID != got.Written[1] || h[1].ID != got.Written[0] {
			t.Fatalf("History after Django's writes = %+v (Django wrote %v)", h, got.Written)
		}
		for i, wantAt := range []time.Time{time.Date(2026, 1, 14, 10, 0, 4, 0, time.UTC), time.Date(2026, 1, 14, 10, 0, 3, 654321000, time.UTC)} {
			m := h[i]
			if !m.CreatedAt.Equal(wantAt) || m.CreatedAt.Location() != time.UTC || !m.IsRead || m.Sender.ID != p.talker.ID ||
				m.Content != fmt.Sprintf("from django %d", 1-i) || m.MessageType != "text" || m.Attachment != nil {
				t.Errorf("History[%d] (Django's) = %+v, want created_at %v", i, m, wantAt)
			}
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Time.Equal(time.Date(2026, 1, 14, 10, 0, 4, 0, time.UTC)) {
			t.Errorf("last_message_at after Django = %v", lm)
		}
		if _, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "x"}); !errors.Is(err, chat.ErrBlocked) {
			t.Errorf("SaveText after Django's block = %v, want ErrBlocked", err)
		}

		if p.pg.Dialect != djangodb.SQLite {
			return
		}
		// Stored text: the sidecar's rows and Django's have one format.
		wantRaw := []string{"2026-01-14 10:00:00.123456", "2026-01-14 10:00:01", "2026-01-14 10:00:02.123456",
			"2026-01-14 10:00:03.654321", "2026-01-14 10:00:04"}
		if len(got.Raw.Messages) != len(wantRaw) {
			t.Fatalf("raw rows %v", got.Raw.Messages)
		}
		for i, w := range wantRaw {
			if got.Raw.Messages[i][1] != w {
				t.Errorf("stored created_at of row %v = %q, want %q", got.Raw.Messages[i][0], got.Raw.Messages[i][1], w)
			}
		}
		if fmt.Sprint(got.Raw.UploadedAt) != "[2026-01-14 10:00:02.123456]" || got.Raw.LastMessageAt != "2026-01-14 10:00:04" {
			t.Errorf("stored uploaded_at %v, last_message_at %q", got.Raw.UploadedAt, got.Raw.LastMessageAt)
		}
	})
}
