package djangodb_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// pair is a fresh database with a listener, a talker and one conversation
// between them.
type pair struct {
	pg       *testenv.Database
	db       *djangodb.DB
	listener chat.User
	talker   chat.User
	conv     int64
}

func newStore(t testing.TB, pg *testenv.Database, s djangodb.Schema) *djangodb.DB {
	t.Helper()
	db, err := djangodb.New(pg.DB, pg.Dialect, s, djangodb.Options{})
	if err != nil {
		t.Fatalf("djangodb.New: %v", err)
	}
	return db
}

func newPair(t testing.TB, be testenv.Backend, status string) *pair {
	t.Helper()
	pg := be.New(t)
	return newPairIn(t, pg, newStore(t, pg, djangodb.Schema{}), status)
}

func newPairIn(t testing.TB, pg *testenv.Database, db *djangodb.DB, status string) *pair {
	t.Helper()
	p := &pair{pg: pg, db: db}
	p.listener = chat.User{Email: "listener@example.com", FullName: "", UserType: "listener", IsActive: true}
	p.listener.ID = pg.CreateUser(t, p.listener.Email, p.listener.FullName, p.listener.UserType)
	p.talker = chat.User{Email: "talker@example.com", FullName: "Tom Talker", UserType: "talker", IsActive: true}
	p.talker.ID = pg.CreateUser(t, p.talker.Email, p.talker.FullName, p.talker.UserType)
	p.conv = pg.CreateConversation(t, p.listener.ID, p.talker.ID, status)
	return p
}

// eachBackend runs f as a parallel subtest on each database engine.
func eachBackend(t *testing.T, f func(t *testing.T, be testenv.Backend)) {
	t.Helper()
	for _, be := range testenv.Backends {
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			f(t, be)
		})
	}
}

// messageRow is a chat_message row as stored.
type messageRow struct {
	id, conv, sender int64
	content, typ     string
	isRead           bool
	createdAt        time.Time
}

func messageRows(t testing.TB, sqldb *sql.DB, table string) []messageRow {
	t.Helper()
	rows, err := sqldb.Query(`SELECT id, conversation_id, sender_id, content, message_type, is_read, created_at FROM ` +
		table + ` ORDER BY id`)
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	defer rows.Close()
	var out []messageRow
	for rows.Next() {
		var r messageRow
		var createdAt djangodb.Timestamp
		if err := rows.Scan(&r.id, &r.conv, &r.sender, &r.content, &r.typ, &r.isRead, &createdAt); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		r.createdAt = createdAt.Time
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return out
}

func countRows(t testing.TB, sqldb *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := sqldb.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func lastMessageAt(t testing.TB, sqldb *sql.DB, conv int64) djangodb.Timestamp {
	t.Helper()
	var v djangodb.Timestamp
	if err := sqldb.QueryRow(`SELECT last_message_at FROM chat_conversation WHERE id = $1`, conv).Scan(&v); err != nil {
		t.Fatalf("read last_message_at of %d: %v", conv, err)
	}
	return v
}

// at is a fixed instant with nanoseconds and a non-UTC zone, so the tests
// see the save normalise it.
func at(sec int) time.Time {
	return time.Date(2026, 1, 14, 11, 0, sec, 123456789, time.FixedZone("CET", 3600))
}

func TestUser(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()

		got, err := p.db.User(ctx, p.talker.ID)
		if err != nil {
			t.Fatalf("User(talker): %v", err)
		}
		if got != p.talker {
			t.Errorf("User(talker) = %+v, want %+v", got, p.talker)
		}
		got, err = p.db.User(ctx, p.listener.ID)
		if err != nil {
			t.Fatalf("User(listener): %v", err)
		}
		if got != p.listener {
			t.Errorf("User(listener) = %+v, want %+v", got, p.listener)
		}

		p.pg.SetUserActive(t, p.talker.ID, false)
		got, err = p.db.User(ctx, p.talker.ID)
		if err != nil {
			t.Fatalf("User(inactive talker): %v", err)
		}
		if got.IsActive {
			t.Errorf("User(inactive talker).IsActive = true")
		}

		if _, err := p.db.User(ctx, p.talker.ID+1000); !errors.Is(err, chat.ErrUserNotFound) {
			t.Errorf("User(missing) error = %v, want ErrUserNotFound", err)
		}
	})
}

func TestConversation(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusPending)
		ctx := context.Background()
		want := chat.Conversation{ID: p.conv, ListenerID: p.listener.ID, TalkerID: p.talker.ID, Status: chat.StatusPending}

		c, blocked, err := p.db.Conversation(ctx, p.conv)
		if err != nil || c != want || blocked {
			t.Fatalf("Conversation = %+v, %v, %v; want %+v, false, nil", c, blocked, err, want)
		}

		// A block of another pair does not count.
		other := p.pg.CreateUser(t, "other@example.com", "", "talker")
		p.pg.Block(t, p.listener.ID, other)
		p.pg.Block(t, other, p.talker.ID)
		if _, blocked, err := p.db.Conversation(ctx, p.conv); err != nil || blocked {
			t.Fatalf("Conversation with other pairs blocked = %v, %v; want false, nil", blocked, err)
		}

		p.pg.Block(t, p.listener.ID, p.talker.ID)
		c, blocked, err = p.db.Conversation(ctx, p.conv)
		if err != nil || c != want || !blocked {
			t.Fatalf("Conversation after block = %+v, %v, %v; want %+v, true, nil", c, blocked, err, want)
		}

		p.pg.Unblock(t, p.listener.ID, p.talker.ID)
		if _, blocked, err := p.db.Conversation(ctx, p.conv); err != nil || blocked {
			t.Fatalf("Conversation after unblock blocked = %v, %v; want false, nil", blocked, err)
		}

		if _, _, err := p.db.Conversation(ctx, p.conv+1000); !errors.Is(err, chat.ErrConversationGone) {
			t.Errorf("Conversation(missing) error = %v, want chat.ErrConversationGone", err)
		}
	})
}

// UserConversation answers as User then Conversation would, in one query.
func TestUserConversation(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		want := chat.Conversation{ID: p.conv, ListenerID: p.listener.ID, TalkerID: p.talker.ID, Status: chat.StatusActive}

		u, c, blocked, err := p.db.UserConversation(ctx, p.talker.ID, p.conv)
		if err != nil || u != p.talker || c != want || blocked {
			t.Fatalf("UserConversation = %+v, %+v, %v, %v; want %+v, %+v, false, nil", u, c, blocked, err, p.talker, want)
		}
		p.pg.Block(t, p.listener.ID, p.talker.ID)
		if _, c, blocked, err := p.db.UserConversation(ctx, p.listener.ID, p.conv); err != nil || c != want || !blocked {
			t.Fatalf("UserConversation after block = %+v, %v, %v; want %+v, true, nil", c, blocked, err, want)
		}
		u, _, _, err = p.db.UserConversation(ctx, p.listener.ID, p.conv+1000)
		if !errors.Is(err, chat.ErrConversationGone) || u != p.listener {
			t.Errorf("UserConversation(missing conversation) = %+v, %v; want the user and chat.ErrConversationGone", u, err)
		}
		if _, _, _, err := p.db.UserConversation(ctx, p.talker.ID+1000, p.conv+1000); !errors.Is(err, chat.ErrUserNotFound) {
			t.Errorf("UserConversation(missing user and conversation) error = %v, want chat.ErrUserNotFound", err)
		}
	})
}

func TestIsBlocked(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		check := func(l, tk int64, want bool) {
			t.Helper()
			got, err := p.db.IsBlocked(ctx, l, tk)
			if err != nil || got != want {
				t.Errorf("IsBlocked(%d, %d) = %v, %v; want %v, nil", l, tk, got, err, want)
			}
		}
		check(p.listener.ID, p.talker.ID, false)
		p.pg.Block(t, p.listener.ID, p.talker.ID)
		check(p.listener.ID, p.talker.ID, true)
		check(p.talker.ID, p.listener.ID, false) // the row is (listener, talker), not the reverse
		p.pg.Unblock(t, p.listener.ID, p.talker.ID)
		check(p.listener.ID, p.talker.ID, false)
	})
}

func TestSaveText(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()

		msg, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "Hello", CreatedAt: at(0)})
		if err != nil {
			t.Fatalf("SaveText: %v", err)
		}
		wantAt := time.Date(2026, 1, 14, 10, 0, 0, 123456000, time.UTC)
		if !msg.CreatedAt.Equal(wantAt) || msg.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt = %v, want %v (UTC, microseconds)", msg.CreatedAt, wantAt)
		}
		if msg.ID == 0 || msg.ConversationID != p.conv || msg.Sender != p.talker || msg.Content != "Hello" ||
			msg.MessageType != chat.TypeText || msg.IsRead || msg.Attachment != nil {
			t.Errorf("SaveText = %+v", msg)
		}

		rows := messageRows(t, p.pg.DB, "chat_message")
		if len(rows) != 1 {
			t.Fatalf("%d rows in chat_message, want 1", len(rows))
		}
		want := messageRow{id: msg.ID, conv: p.conv, sender: p.talker.ID, content: "Hello", typ: "text", isRead: false, createdAt: wantAt}
		got := rows[0]
		if !got.createdAt.Equal(want.createdAt) {
			t.Errorf("created_at = %v, want %v", got.createdAt, want.createdAt)
		}
		got.createdAt = want.createdAt
		if got != want {
			t.Errorf("row = %+v, want %+v", got, want)
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Valid || !lm.Time.Equal(wantAt) {
			t.Errorf("last_message_at = %v, want %v", lm, wantAt)
		}

		// Content may be empty at this layer; a zero CreatedAt means now.
		before := time.Now().Add(-time.Second)
		msg2, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.listener, Content: "héllo ✓"})
		if err != nil {
			t.Fatalf("SaveText(now): %v", err)
		}
		if msg2.CreatedAt.Before(before) || msg2.CreatedAt.After(time.Now().Add(time.Second)) ||
			msg2.CreatedAt.Nanosecond()%1000 != 0 || msg2.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt of zero draft time = %v", msg2.CreatedAt)
		}
		rows = messageRows(t, p.pg.DB, "chat_message")
		if len(rows) != 2 || !rows[1].createdAt.Equal(msg2.CreatedAt) || rows[1].content != "héllo ✓" || rows[1].sender != p.listener.ID {
			t.Errorf("rows after second save = %+v", rows)
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Time.Equal(msg2.CreatedAt) {
			t.Errorf("last_message_at = %v, want %v", lm, msg2.CreatedAt)
		}
	})
}

func TestSaveTextPendingTalker(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusPending)
		msg, err := p.db.SaveText(context.Background(), chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "hi", CreatedAt: at(0)})
		if err != nil {
			t.Fatalf("SaveText(pending, talker): %v", err)
		}
		if n := countRows(t, p.pg.DB, "chat_message"); n != 1 {
			t.Errorf("%d rows, want 1", n)
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Time.Equal(msg.CreatedAt) {
			t.Errorf("last_message_at = %v, want %v", lm, msg.CreatedAt)
		}
	})
}

// TestSaveRefused: every refusal writes nothing and leaves last_message_at
// as it was, for text and for file messages. A NUL in the text loses to
// gone/blocked/status, as with Django, whose checks come before the INSERT.
func TestSaveRefused(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		type setup func(t *testing.T, p *pair) (conv int64, sender chat.User)
		active := func(t *testing.T, p *pair) (int64, chat.User) { return p.conv, p.talker }
		gone := func(t *testing.T, p *pair) (int64, chat.User) { return p.conv + 1000, p.talker }
		blocked := func(t *testing.T, p *pair) (int64, chat.User) {
			// Loaded unblocked (as when the connection was opened), then blocked.
			if _, b, err := p.db.Conversation(context.Background(), p.conv); err != nil || b {
				t.Fatalf("Conversation before block: %v, %v", b, err)
			}
			p.pg.Block(t, p.listener.ID, p.talker.ID)
			return p.conv, p.talker
		}
		status := func(s string) setup {
			return func(t *testing.T, p *pair) (int64, chat.User) {
				p.pg.SetConversationStatus(t, p.conv, s)
				return p.conv, p.talker
			}
		}
		pendingListener := func(t *testing.T, p *pair) (int64, chat.User) {
			p.pg.SetConversationStatus(t, p.conv, chat.StatusPending)
			return p.conv, p.listener
		}
		isStatus := func(want string) func(error) bool {
			return func(err error) bool {
				var se *chat.StatusError
				return errors.As(err, &se) && se.Status == want
			}
		}
		is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
		notUTF8 := func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "UTF-8") && !errors.Is(err, chat.ErrNUL)
		}

		cases := []struct {
			name     string
			setup    setup
			content  string
			filename string
			ok       func(error) bool
		}{
			{"gone", gone, "hi", "a.txt", is(chat.ErrConversationGone)},
			{"blocked", blocked, "hi", "a.txt", is(chat.ErrBlocked)},
			{"rejected", status(chat.StatusRejected), "hi", "a.txt", isStatus(chat.StatusRejected)},
			{"closed", status(chat.StatusClosed), "hi", "a.txt", isStatus(chat.StatusClosed)},
			{"pending listener", pendingListener, "hi", "a.txt", is(chat.ErrNotTalker)},
			{"NUL", active, "a\x00b", "a.txt", is(chat.ErrNUL)},
			{"NUL in filename", active, "hi", "a\x00.txt", is(chat.ErrNUL)},
			{"invalid UTF-8", active, "a\xffb", "a.txt", notUTF8},
			{"NUL gone", gone, "a\x00b", "a\x00.txt", is(chat.ErrConversationGone)},
			{"NUL blocked", blocked, "a\x00b", "a\x00.txt", is(chat.ErrBlocked)},
			{"NUL closed", status(chat.StatusClosed), "a\x00b", "a.txt", isStatus(chat.StatusClosed)},
			{"NUL pending listener", pendingListener, "\x00", "a.txt", is(chat.ErrNotTalker)},
		}
		for _, tc := range cases {
			for _, kind := range []string{"text", "file"} {
				if kind == "text" && tc.filename != "a.txt" {
					continue // the filename only matters to files
				}
				t.Run(tc.name+"/"+kind, func(t *testing.T) {
					t.Parallel()
					p := newPair(t, be, chat.StatusActive)
					ctx := context.Background()
					// An earlier message sets last_message_at, which must survive.
					first, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "first", CreatedAt: at(0)})
					if err != nil {
						t.Fatalf("first SaveText: %v", err)
					}
					conv, sender := tc.setup(t, p)
					d := chat.Draft{ConversationID: conv, Sender: sender, Content: tc.content, CreatedAt: at(30)}
					files := &fakeFiles{}
					var msg chat.Message
					if kind == "text" {
						msg, err = p.db.SaveText(ctx, d)
					} else {
						msg, err = p.db.SaveFile(ctx, d, chat.FileDraft{Name: "a.txt", Filename: tc.filename, Data: []byte("data"), FileType: "text/plain"}, files)
					}
					if !tc.ok(err) {
						t.Fatalf("error = %v (%T)", err, err)
					}
					if msg.ID != 0 {
						t.Errorf("refused save returned message %+v", msg)
					}
					if n := countRows(t, p.pg.DB, "chat_message"); n != 1 {
						t.Errorf("%d rows in chat_message, want 1 (nothing written)", n)
					}
					if n := countRows(t, p.pg.DB, "chat_fileattachment"); n != 0 {
						t.Errorf("%d rows in chat_fileattachment, want 0", n)
					}
					if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Valid || !lm.Time.Equal(first.CreatedAt) {
						t.Errorf("last_message_at = %v, want %v (untouched)", lm, first.CreatedAt)
					}
					if len(files.saved) != 0 || len(files.removed) != 0 {
						t.Errorf("files: saved %v, removed %v; want nothing written", files.saved, files.removed)
					}
				})
			}
		}
	})
}

// fakeFiles records what a save stores and removes.
type fakeFiles struct {
	mu       sync.Mutex
	saved    []string
	removed  []string
	saveErr  error
	rmErr    error
	onRemove func(relPath string)
}

func (f *fakeFiles) Save(ctx context.Context, name string, data []byte, now time.Time) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.saveErr != nil {
		return "", f.saveErr
	}
	rel := path.Join("chat_files", now.UTC().Format("2006/01/02"), name)
	f.saved = append(f.saved, rel)
	return rel, nil
}

func (f *fakeFiles) Remove(relPath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onRemove != nil {
		f.onRemove(relPath)
	}
	f.removed = append(f.removed, relPath)
	if f.rmErr != nil {
		return f.rmErr
	}
	return nil
}

// dirFiles stores files under a real directory, as MEDIA_ROOT.
type dirFiles struct{ root string }

func (d dirFiles) Save(ctx context.Context, name string, data []byte, now time.Time) (string, error) {
	rel := path.Join("chat_files", now.UTC().Format("2006/01/02"), name)
	full := filepath.Join(d.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		return "", err
	}
	return rel, nil
}

func (d dirFiles) Remove(relPath string) error {
	return os.Remove(filepath.Join(d.root, filepath.FromSlash(relPath)))
}

type attachmentRow struct {
	id, message, size int64
	file, name, ftype string
	uploadedAt        time.Time
}

func attachmentRows(t testing.TB, sqldb *sql.DB) []attachmentRow {
	t.Helper()
	rows, err := sqldb.Query(`SELECT id, message_id, file_size, file, filename, file_type, uploaded_at FROM chat_fileattachment ORDER BY id`)
	if err != nil {
		t.Fatalf("read chat_fileattachment: %v", err)
	}
	defer rows.Close()
	var out []attachmentRow
	for rows.Next() {
		var r attachmentRow
		var uploadedAt djangodb.Timestamp
		if err := rows.Scan(&r.id, &r.message, &r.size, &r.file, &r.name, &r.ftype, &uploadedAt); err != nil {
			t.Fatalf("read chat_fileattachment: %v", err)
		}
		r.uploadedAt = uploadedAt.Time
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read chat_fileattachment: %v", err)
	}
	return out
}

func TestSaveFile(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		files := &fakeFiles{}
		data := []byte("\x89PNG fake image")
		msg, err := p.db.SaveFile(ctx,
			chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "a caption", CreatedAt: at(5)},
			chat.FileDraft{Name: "my_photo.png", Filename: "my photo.png", Data: data, FileType: "image/png"}, files)
		if err != nil {
			t.Fatalf("SaveFile: %v", err)
		}
		wantAt := time.Date(2026, 1, 14, 10, 0, 5, 123456000, time.UTC)
		wantFile := "chat_files/2026/01/14/my_photo.png"
		if len(files.saved) != 1 || files.saved[0] != wantFile || len(files.removed) != 0 {
			t.Errorf("files saved %v removed %v; want [%s] and nothing removed", files.saved, files.removed, wantFile)
		}
		if msg.ID == 0 || msg.MessageType != chat.TypeFile || msg.Content != "a caption" || !msg.CreatedAt.Equal(wantAt) ||
			msg.Sender != p.talker || msg.ConversationID != p.conv || msg.IsRead {
			t.Errorf("SaveFile = %+v", msg)
		}
		wantAtt := chat.Attachment{File: wantFile, Filename: "my photo.png", FileSize: int64(len(data)), FileType: "image/png"}
		if msg.Attachment == nil {
			t.Fatalf("SaveFile returned no attachment")
		}
		gotAtt := *msg.Attachment
		if gotAtt.ID == 0 {
			t.Errorf("attachment id is 0")
		}
		gotAtt.ID = 0
		if gotAtt != wantAtt {
			t.Errorf("attachment = %+v, want %+v", gotAtt, wantAtt)
		}

		rows := messageRows(t, p.pg.DB, "chat_message")
		if len(rows) != 1 || rows[0].id != msg.ID || rows[0].typ != "file" || rows[0].content != "a caption" ||
			rows[0].isRead || !rows[0].createdAt.Equal(wantAt) || rows[0].sender != p.talker.ID {
			t.Errorf("chat_message rows = %+v", rows)
		}
		atts := attachmentRows(t, p.pg.DB)
		if len(atts) != 1 {
			t.Fatalf("%d attachment rows, want 1", len(atts))
		}
		a := atts[0]
		if a.id != msg.Attachment.ID || a.message != msg.ID || a.file != wantFile || a.name != "my photo.png" ||
			a.size != int64(len(data)) || a.ftype != "image/png" || !a.uploadedAt.Equal(wantAt) {
			t.Errorf("attachment row = %+v", a)
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Time.Equal(wantAt) {
			t.Errorf("last_message_at = %v, want %v", lm, wantAt)
		}

		// Pending: the talker may send a file, the listener may not.
		p.pg.SetConversationStatus(t, p.conv, chat.StatusPending)
		if _, err := p.db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, CreatedAt: at(6)},
			chat.FileDraft{Name: "b.txt", Filename: "b.txt", Data: []byte("b")}, files); err != nil {
			t.Errorf("SaveFile(pending, talker): %v", err)
		}
		if n := countRows(t, p.pg.DB, "chat_fileattachment"); n != 2 {
			t.Errorf("%d attachment rows, want 2", n)
		}
	})
}

func TestSaveFileDir(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		root := t.TempDir()
		files := dirFiles{root: root}

		first, err := p.db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, CreatedAt: at(1)},
			chat.FileDraft{Name: "ok.txt", Filename: "ok.txt", Data: []byte("kept"), FileType: "text/plain"}, files)
		if err != nil {
			t.Fatalf("SaveFile: %v", err)
		}
		b, err := os.ReadFile(filepath.Join(root, "chat_files", "2026", "01", "14", "ok.txt"))
		if err != nil || string(b) != "kept" {
			t.Fatalf("stored file = %q, %v", b, err)
		}

		// filename is varchar(255): the attachment insert fails after the
		// message row and the file were written; both must go. SQLite does not
		// enforce the length (nor does Django there): a trigger stands in.
		if p.pg.Dialect == djangodb.SQLite {
			execAll(t, p.pg, []string{`CREATE TRIGGER filename_length BEFORE INSERT ON chat_fileattachment
				WHEN length(NEW.filename) > 255 BEGIN SELECT RAISE(ABORT, 'value too long for varchar(255)'); END`})
		}
		long := strings.Repeat("n", 256) + ".txt"
		_, err = p.db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "cap", CreatedAt: at(2)},
			chat.FileDraft{Name: "long.txt", Filename: long, Data: []byte("gone"), FileType: "text/plain"}, files)
		if err == nil {
			t.Fatalf("SaveFile with a %d-character filename succeeded", len(long))
		}
		for _, target := range []error{chat.ErrBlocked, chat.ErrConversationGone, chat.ErrNotTalker, chat.ErrNUL} {
			if errors.Is(err, target) {
				t.Errorf("error %v is %v", err, target)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "chat_files", "2026", "01", "14", "long.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file of the failed save: stat error = %v, want not exist", err)
		}
		if _, err := os.Stat(filepath.Join(root, "chat_files", "2026", "01", "14", "ok.txt")); err != nil {
			t.Errorf("file of the first save: %v", err)
		}
		rows := messageRows(t, p.pg.DB, "chat_message")
		if len(rows) != 1 || rows[0].id != first.ID {
			t.Errorf("chat_message rows = %+v, want only message %d", rows, first.ID)
		}
		if n := countRows(t, p.pg.DB, "chat_fileattachment"); n != 1 {
			t.Errorf("%d attachment rows, want 1", n)
		}
		if lm := lastMessageAt(t, p.pg.DB, p.conv); !lm.Time.Equal(first.CreatedAt) {
			t.Errorf("last_message_at = %v, want %v (rolled back)", lm, first.CreatedAt)
		}
	})
}

func TestHistory(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()

		if h, err := historyOf(ctx, p.db, p.conv); err != nil || len(h) != 0 {
			t.Fatalf("History(empty) = %v, %v; want no messages", h, err)
		}

		save := func(sender chat.User, content string, sec int) chat.Message {
			t.Helper()
			m, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: sender, Content: content, CreatedAt: at(sec)})
			if err != nil {
				t.Fatalf("SaveText(%q): %v", content, err)
			}
			return m
		}
		m1 := save(p.talker, "one", 0)
		m2 := save(p.listener, "two", 1)
		m3, err := p.db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "three", CreatedAt: at(2)},
			chat.FileDraft{Name: "f.pdf", Filename: "f.pdf", Data: []byte("%PDF"), FileType: "application/pdf"}, &fakeFiles{})
		if err != nil {
			t.Fatalf("SaveFile: %v", err)
		}
		m4 := save(p.listener, "four", 2) // same created_at as m3: the higher id comes first
		m0 := save(p.talker, "zero", -10) // saved last, but the oldest

		// Another conversation's messages stay out.
		other := p.pg.CreateUser(t, "other@example.com", "Other", "talker")
		oc := p.pg.CreateConversation(t, p.listener.ID, other, chat.StatusActive)
		if _, err := p.db.SaveText(ctx, chat.Draft{ConversationID: oc, Sender: p.listener, Content: "elsewhere", CreatedAt: at(3)}); err != nil {
			t.Fatalf("SaveText(other): %v", err)
		}
		if _, err := p.db.MarkRead(ctx, p.conv, p.listener.ID); err != nil {
			t.Fatalf("MarkRead: %v", err)
		}
		m1.IsRead, m3.IsRead, m0.IsRead = true, true, true

		h, err := historyOf(ctx, p.db, p.conv)
		if err != nil {
			t.Fatalf("History: %v", err)
		}
		want := []chat.Message{m4, m3, m2, m1, m0}
		if len(h) != len(want) {
			t.Fatalf("History has %d messages, want %d: %+v", len(h), len(want), h)
		}
		for i := range want {
			g, w := h[i], want[i]
			if !g.CreatedAt.Equal(w.CreatedAt) || g.CreatedAt.Location() != time.UTC {
				t.Errorf("History[%d].CreatedAt = %v, want %v in UTC", i, g.CreatedAt, w.CreatedAt)
			}
			g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
			// The user row has is_active, which History does not read.
			g.Sender.IsActive, w.Sender.IsActive = false, false
			if (g.Attachment == nil) != (w.Attachment == nil) || (g.Attachment != nil && *g.Attachment != *w.Attachment) {
				t.Errorf("History[%d].Attachment = %+v, want %+v", i, g.Attachment, w.Attachment)
			}
			g.Attachment, w.Attachment = nil, nil
			if g != w {
				t.Errorf("History[%d] = %+v\nwant %+v", i, g, w)
			}
		}
		if h[1].Attachment == nil || h[1].Attachment.File != "chat_files/2026/01/14/f.pdf" || h[1].Attachment.FileType != "application/pdf" {
			t.Errorf("file message attachment = %+v", h[1].Attachment)
		}
		if h[2].Sender.FullName != "" || h[2].Sender.Email != "listener@example.com" || h[2].Sender.UserType != "listener" {
			t.Errorf("listener sender = %+v", h[2].Sender)
		}

		if h, err := historyOf(ctx, p.db, p.conv+1000); err != nil || len(h) != 0 {
			t.Errorf("History(missing conversation) = %v, %v; want no messages", h, err)
		}
		checkHistorySince(t, p.db, p.conv, p.pg.Dialect, h)
	})
}

// checkHistorySince checks that HistorySince reads the rows of history
// (newest first, as History gives them), and that its digest of the rows
// up to an id sums their versions.
func checkHistorySince(t *testing.T, db *djangodb.DB, conv int64, dialect djangodb.Dialect, history []chat.Message) {
	t.Helper()
	ctx := context.Background()
	var got []chat.Message
	var all djangodb.Digest
	old, err := db.HistorySince(ctx, conv, 0, func(m chat.Message, v int64) error {
		got = append(got, m)
		all.Add(v)
		return nil
	})
	if dialect == djangodb.SQLite {
		if !errors.Is(err, djangodb.ErrNoDigest) {
			t.Errorf("HistorySince on SQLite = %v, want ErrNoDigest", err)
		}
		return
	}
	if err != nil || !old.Equal(djangodb.Digest{}) {
		t.Fatalf("HistorySince(0) = %+v, %v; want an empty digest", old, err)
	}
	slices.SortFunc(got, func(a, b chat.Message) int { return b.CreatedAt.Compare(a.CreatedAt)*2 + cmp.Compare(b.ID, a.ID) })
	if !reflect.DeepEqual(got, history) {
		t.Fatalf("HistorySince(0) read\n%+v\nHistory read\n%+v", got, history)
	}
	var maxID int64
	for _, m := range history {
		maxID = max(maxID, m.ID)
	}
	old, err = db.HistorySince(ctx, conv, maxID, func(m chat.Message, _ int64) error {
		return fmt.Errorf("message %d above the highest id", m.ID)
	})
	if err != nil || !old.Equal(all) || old.Count != int64(len(history)) {
		t.Fatalf("HistorySince(%d) = %+v, %v; want the digest %+v", maxID, old, err, all)
	}
	// From the middle: the rows above it in full, each with the version
	// the whole read gave it, and the digest of the rest.
	versions := map[int64]int64{}
	if _, err := db.HistorySince(ctx, conv, 0, func(m chat.Message, v int64) error { versions[m.ID] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	ids := slices.Sorted(maps.Keys(versions))
	mid := ids[len(ids)/2]
	var below, above djangodb.Digest
	var wantAbove []chat.Message
	for _, m := range history {
		if m.ID <= mid {
			below.Add(versions[m.ID])
		} else {
			wantAbove = append(wantAbove, m)
		}
	}
	var gotAbove []chat.Message
	old, err = db.HistorySince(ctx, conv, mid, func(m chat.Message, v int64) error {
		gotAbove = append(gotAbove, m)
		above.Add(v)
		if v != versions[m.ID] {
			return fmt.Errorf("message %d: version %d, the whole read gave %d", m.ID, v, versions[m.ID])
		}
		return nil
	})
	if err != nil || !old.Equal(below) {
		t.Fatalf("HistorySince(%d) = %+v, %v; want the digest %+v", mid, old, err, below)
	}
	slices.SortFunc(gotAbove, func(a, b chat.Message) int { return b.CreatedAt.Compare(a.CreatedAt)*2 + cmp.Compare(b.ID, a.ID) })
	if !reflect.DeepEqual(gotAbove, wantAbove) {
		t.Fatalf("HistorySince(%d) read\n%+v\nwant\n%+v", mid, gotAbove, wantAbove)
	}
}

func TestMarkRead(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		p := newPair(t, be, chat.StatusActive)
		ctx := context.Background()
		save := func(conv int64, sender chat.User) int64 {
			t.Helper()
			m, err := p.db.SaveText(ctx, chat.Draft{ConversationID: conv, Sender: sender, Content: "x"})
			if err != nil {
				t.Fatalf("SaveText: %v", err)
			}
			return m.ID
		}
		t1, t2 := save(p.conv, p.talker), save(p.conv, p.talker)
		l1 := save(p.conv, p.listener)
		other := chat.User{Email: "other@example.com", UserType: "talker"}
		other.ID = p.pg.CreateUser(t, other.Email, "", other.UserType)
		oc := p.pg.CreateConversation(t, p.listener.ID, other.ID, chat.StatusActive)
		o1 := save(oc, other)

		readState := func() map[int64]bool {
			t.Helper()
			out := map[int64]bool{}
			for _, r := range messageRows(t, p.pg.DB, "chat_message") {
				out[r.id] = r.isRead
			}
			return out
		}
		mark := func(reader int64, want int64) {
			t.Helper()
			n, err := p.db.MarkRead(ctx, p.conv, reader)
			if err != nil || n != want {
				t.Errorf("MarkRead(%d) = %d, %v; want %d, nil", reader, n, err, want)
			}
		}

		mark(p.listener.ID, 2)
		if s := readState(); !s[t1] || !s[t2] || s[l1] || s[o1] {
			t.Errorf("after listener read: %v (talker messages %d, %d read; %d, %d not)", s, t1, t2, l1, o1)
		}
		mark(p.listener.ID, 0) // already read
		t3 := save(p.conv, p.talker)
		mark(p.listener.ID, 1) // only the new one
		mark(p.talker.ID, 1)
		if s := readState(); !s[t3] || !s[l1] || s[o1] {
			t.Errorf("after both read: %v", s)
		}
		if n, err := p.db.MarkRead(ctx, p.conv+1000, p.listener.ID); err != nil || n != 0 {
			t.Errorf("MarkRead(missing conversation) = %d, %v", n, err)
		}
	})
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, be testenv.Backend) { checkSchema(t, be) })
}

// Django's SQLite tables, for rebuilding them with a change: SQLite cannot
// add a NOT NULL column without a default or change a column's type.
const (
	sqliteMessageCols = `"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "content" text NOT NULL, ` +
		`"message_type" varchar(10) NOT NULL, "is_read" bool NOT NULL, "created_at" datetime NOT NULL, ` +
		`"conversation_id" bigint NOT NULL REFERENCES "chat_conversation" ("id") DEFERRABLE INITIALLY DEFERRED, ` +
		`"sender_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED`
	sqliteAttachmentCols = `"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "file" varchar(100) NOT NULL, ` +
		`"filename" varchar(255) NOT NULL, "file_size" bigint NOT NULL, "file_type" varchar(100) NOT NULL, ` +
		`"uploaded_at" datetime NOT NULL, ` +
		`"message_id" bigint NOT NULL UNIQUE REFERENCES "chat_message" ("id") DEFERRABLE INITIALLY DEFERRED`
	sqliteBlockCols = `"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "blocked_at" datetime NOT NULL, ` +
		`"listener_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED, ` +
		`"talker_id" bigint NOT NULL REFERENCES "users_user" ("id") DEFERRABLE INITIALLY DEFERRED`
)

// sqliteRebuild replaces an (empty) SQLite table by one with columns cols.
func sqliteRebuild(table, cols string) []string {
	return []string{`DROP TABLE "` + table + `"`, `CREATE TABLE "` + table + `" (` + cols + `)`}
}

func execAll(t *testing.T, db *testenv.Database, stmts []string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func checkSchema(t *testing.T, be testenv.Backend) {
	ctx := context.Background()
	t.Run("django", func(t *testing.T) {
		t.Parallel()
		pg := be.New(t)
		if err := newStore(t, pg, djangodb.Schema{}).CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema on Django's schema: %v", err)
		}
		// Spelling the defaults out is the same.
		s := djangodb.Schema{
			UserTable: "users_user", ConversationTable: "chat_conversation", MessageTable: "chat_message",
			AttachmentTable: "chat_fileattachment", BlockTable: "listener_listenerblockedtalker",
			Columns: map[string]string{"message.sender_id": "sender_id"},
		}
		if err := newStore(t, pg, s).CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema with explicit defaults: %v", err)
		}
	})

	fails := []struct {
		name   string
		ddl    string   // run in this case's own PostgreSQL database first
		lite   []string // run in this case's own SQLite database first
		schema djangodb.Schema
		want   []string // substrings of the error
	}{
		{name: "missing table", schema: djangodb.Schema{MessageTable: "chat_msg"},
			want: []string{`"chat_msg"`, "does not exist", "MESSAGE_TABLE"}},
		{name: "missing block table", schema: djangodb.Schema{BlockTable: "listener_block"},
			want: []string{`"listener_block"`, "BLOCK_TABLE"}},
		{name: "missing column", schema: djangodb.Schema{Columns: map[string]string{"message.sender_id": "author_id"}},
			want: []string{`"chat_message"`, `"author_id"`, "DB_COLUMNS=message.sender_id"}},
		{name: "missing user column", ddl: `ALTER TABLE users_user RENAME COLUMN full_name TO name`,
			lite: []string{`ALTER TABLE users_user RENAME COLUMN full_name TO name`},
			want: []string{`"users_user"`, `"full_name"`, "USER_TABLE", "DB_COLUMNS=user.full_name"}},
		{name: "extra NOT NULL column", ddl: `ALTER TABLE chat_message ADD COLUMN edited_by bigint NOT NULL`,
			lite: sqliteRebuild("chat_message", sqliteMessageCols+`, "edited_by" bigint NOT NULL`),
			want: []string{`"chat_message"`, `"edited_by"`, "NOT NULL", "MESSAGE_TABLE"}},
		{name: "extra NOT NULL attachment column", ddl: `ALTER TABLE chat_fileattachment ADD COLUMN checksum text NOT NULL`,
			lite: sqliteRebuild("chat_fileattachment", sqliteAttachmentCols+`, "checksum" text NOT NULL`),
			want: []string{`"chat_fileattachment"`, `"checksum"`, "ATTACHMENT_TABLE"}},
		{name: "incompatible type", ddl: `ALTER TABLE chat_message ALTER COLUMN is_read TYPE integer USING is_read::integer`,
			lite: sqliteRebuild("chat_message", strings.Replace(sqliteMessageCols, `"is_read" bool`, `"is_read" integer`, 1)),
			want: []string{`"chat_message"."is_read"`, "integer", "boolean"}},
		{name: "text created_at", ddl: `ALTER TABLE chat_message ALTER COLUMN created_at TYPE text`,
			lite: sqliteRebuild("chat_message", strings.Replace(sqliteMessageCols, `"created_at" datetime`, `"created_at" text`, 1)),
			want: []string{`"chat_message"."created_at"`, "text", "timestamp"}},
		{name: "id without a sequence", ddl: `CREATE TABLE app_msg (LIKE chat_message)`, // LIKE drops the identity
			// Only a lone "integer" primary key is SQLite's rowid, numbered by SQLite.
			lite:   []string{`CREATE TABLE app_msg (` + strings.Replace(sqliteMessageCols, `"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT`, `"id" bigint NOT NULL PRIMARY KEY`, 1) + `)`},
			schema: djangodb.Schema{MessageTable: "app_msg"},
			want:   []string{`"app_msg"."id"`, "no default"}},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pg := be.New(t)
			if pg.Dialect == djangodb.SQLite {
				execAll(t, pg, tc.lite)
			} else if tc.ddl != "" {
				execAll(t, pg, []string{tc.ddl})
			}
			err := newStore(t, pg, tc.schema).CheckSchema(ctx)
			if err == nil {
				t.Fatalf("CheckSchema passed")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckSchema error %q does not name %s", err, w)
				}
			}
		})
	}

	t.Run("tolerated extra columns", func(t *testing.T) {
		t.Parallel()
		pg := be.New(t)
		if pg.Dialect == djangodb.SQLite {
			execAll(t, pg, append([]string{
				`ALTER TABLE chat_message ADD COLUMN edited_at datetime NULL`,          // nullable
				`ALTER TABLE chat_message ADD COLUMN flags integer NOT NULL DEFAULT 0`, // has a default
				// Filled by the database, as Django 5's GeneratedField does.
				`ALTER TABLE chat_message ADD COLUMN content_length integer NOT NULL GENERATED ALWAYS AS (length(content)) VIRTUAL`,
			}, sqliteRebuild("listener_listenerblockedtalker", sqliteBlockCols+`, "reason" text NOT NULL`)...)) // never inserted into
		} else {
			execAll(t, pg, []string{
				`ALTER TABLE chat_message ADD COLUMN edited_at timestamptz`,                  // nullable
				`ALTER TABLE chat_message ADD COLUMN flags integer NOT NULL DEFAULT 0`,       // has a default
				`ALTER TABLE listener_listenerblockedtalker ADD COLUMN reason text NOT NULL`, // never inserted into
				// Filled by the database, as Django 5's GeneratedField does.
				`ALTER TABLE chat_message ADD COLUMN content_length integer NOT NULL GENERATED ALWAYS AS (length(content)) STORED`,
				`ALTER TABLE chat_fileattachment ADD COLUMN serial bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY`,
			})
		}
		db := newStore(t, pg, djangodb.Schema{})
		if err := db.CheckSchema(ctx); err != nil {
			t.Fatalf("CheckSchema: %v", err)
		}
		// And the saves work with those columns there.
		p := newPairIn(t, pg, db, chat.StatusActive)
		if _, err := db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "four"},
			chat.FileDraft{Name: "x.txt", Filename: "x.txt", Data: []byte("x")}, &fakeFiles{}); err != nil {
			t.Fatalf("SaveFile: %v", err)
		}
		var n int
		if err := pg.DB.QueryRow(`SELECT content_length FROM chat_message`).Scan(&n); err != nil || n != 4 {
			t.Errorf("content_length = %d, %v; want 4", n, err)
		}
	})
}

func TestSchemaValidate(t *testing.T) {
	t.Parallel()
	ok := djangodb.Schema{Columns: map[string]string{"message.sender_id": "author_id", "user.full_name": "name", "block.talker_id": "t"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(known keys): %v", err)
	}
	if err := (djangodb.Schema{}).Validate(); err != nil {
		t.Errorf("Validate(zero): %v", err)
	}
	bad := djangodb.Schema{Columns: map[string]string{"message.author": "x", "sender_id": "y", "message.sender_id": "z"}}
	err := bad.Validate()
	if err == nil {
		t.Fatalf("Validate accepted unknown DB_COLUMNS keys")
	}
	for _, w := range []string{"DB_COLUMNS", "message.author", "sender_id"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate error %q does not name %s", err, w)
		}
	}
	if _, err := djangodb.New(nil, djangodb.Postgres, bad, djangodb.Options{}); err == nil {
		t.Errorf("New accepted unknown DB_COLUMNS keys")
	}
}

// TestRenamedTables runs saves and history against a database whose message
// table and a column were renamed, through the schema map.
func TestRenamedTables(t *testing.T) {
	t.Parallel()
	eachBackend(t, renamedTables)
}

func renamedTables(t *testing.T, be testenv.Backend) {
	pg := be.New(t)
	ctx := context.Background()
	for _, ddl := range []string{
		`ALTER TABLE chat_message RENAME TO app_msg`,
		`ALTER TABLE app_msg RENAME COLUMN sender_id TO author_id`,
	} {
		if _, err := pg.DB.Exec(ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	if err := newStore(t, pg, djangodb.Schema{}).CheckSchema(ctx); err == nil || !strings.Contains(err.Error(), `"chat_message"`) {
		t.Errorf("CheckSchema with default names = %v, want chat_message named", err)
	}
	s := djangodb.Schema{MessageTable: "app_msg", Columns: map[string]string{"message.sender_id": "author_id"}}
	db := newStore(t, pg, s)
	if err := db.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema(app_msg): %v", err)
	}
	p := newPairIn(t, pg, db, chat.StatusActive)

	m1, err := db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "renamed", CreatedAt: at(0)})
	if err != nil {
		t.Fatalf("SaveText: %v", err)
	}
	m2, err := db.SaveFile(ctx, chat.Draft{ConversationID: p.conv, Sender: p.listener, CreatedAt: at(1)},
		chat.FileDraft{Name: "r.txt", Filename: "r.txt", Data: []byte("r")}, &fakeFiles{})
	if err != nil {
		t.Fatalf("SaveFile: %v", err)
	}
	var n int
	if err := pg.DB.QueryRow(`SELECT count(*) FROM app_msg WHERE author_id IN ($1, $2)`, p.talker.ID, p.listener.ID).Scan(&n); err != nil || n != 2 {
		t.Fatalf("app_msg rows = %d, %v; want 2", n, err)
	}
	h, err := historyOf(ctx, db, p.conv)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	if len(h) != 2 || h[0].ID != m2.ID || h[1].ID != m1.ID || h[1].Sender.ID != p.talker.ID || h[0].Attachment == nil {
		t.Fatalf("History = %+v", h)
	}
	checkHistorySince(t, db, p.conv, pg.Dialect, h)
	if n, err := db.MarkRead(ctx, p.conv, p.talker.ID); err != nil || n != 1 {
		t.Errorf("MarkRead = %d, %v; want 1", n, err)
	}
	p.pg.Block(t, p.listener.ID, p.talker.ID)
	if _, err := db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "no"}); !errors.Is(err, chat.ErrBlocked) {
		t.Errorf("SaveText after block = %v, want ErrBlocked", err)
	}
}
