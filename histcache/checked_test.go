package histcache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/histcache"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// full is what the checked tests encode of a message: every field a
// frame shows, so any change the cache missed shows up.
func full(m chat.Message) ([]byte, error) { return json.Marshal(m) }

type checkedEnv struct {
	db     *testenv.Database
	store  *djangodb.DB
	cache  *histcache.Checked
	talker chat.User
	conv   int64
}

func setupChecked(t *testing.T, maxBytes int64) *checkedEnv {
	t.Helper()
	db := testenv.Postgres(t)
	store, err := djangodb.New(db.DB, djangodb.Postgres, djangodb.Schema{}, djangodb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &checkedEnv{db: db, store: store, cache: histcache.NewChecked(maxBytes, full, store)}
	listener := db.CreateUser(t, "listener@example.com", "Lena", "listener")
	e.talker = chat.User{Email: "talker@example.com", FullName: "Tom", UserType: "talker", IsActive: true}
	e.talker.ID = db.CreateUser(t, e.talker.Email, e.talker.FullName, e.talker.UserType)
	e.conv = db.CreateConversation(t, listener, e.talker.ID, "active")
	return e
}

func (e *checkedEnv) save(t *testing.T, content string) int64 {
	t.Helper()
	m, err := e.store.SaveText(context.Background(), chat.Draft{ConversationID: e.conv, Sender: e.talker, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func (e *checkedEnv) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := e.db.DB.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// check compares the cache's history with a fresh query's.
func (e *checkedEnv) check(t *testing.T, step string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts, n, err := e.cache.Get(ctx, e.conv, nil)
	if err != nil {
		t.Fatalf("%s: get: %v", step, err)
	}
	got := bytes.Join(parts, nil)
	want, n2 := []byte("["), 0
	if err := e.store.History(ctx, e.conv, func(m chat.Message) error {
		b, err := full(m)
		if n2++; n2 > 1 {
			want = append(want, ", "...)
		}
		want = append(want, b...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want = append(want, ']')
	if !bytes.Equal(got, want) || n != n2 {
		t.Fatalf("%s: cache served (%d)\n%s\nfresh query (%d)\n%s", step, n, got, n2, want)
	}
}

// Whatever changes a conversation's rows, and whoever makes the change,
// the next history equals a fresh query's: appends are read alone, any
// other change is seen by the digest and read whole.
func TestCheckedExact(t *testing.T) {
	e := setupChecked(t, 1<<20)
	e.check(t, "empty")
	first := e.save(t, "first")
	e.save(t, "second")
	e.check(t, "two saved")
	e.save(t, "third")
	e.check(t, "one more")
	if _, err := e.db.Fixture().Message(context.Background(), e.conv, e.talker.ID, "from the REST API", time.Now()); err != nil {
		t.Fatal(err)
	}
	e.check(t, "written elsewhere")
	st := e.cache.Stats()
	if st.Loads != 1 || st.Hits != 3 || st.NotExact != 0 {
		t.Fatalf("after appends only: %+v, want 1 load, 3 hits", st)
	}

	steps := []struct {
		name  string
		query string
		args  []any
	}{
		{"mark_read", `UPDATE chat_message SET is_read = true WHERE conversation_id = $1 AND sender_id = $2`, []any{e.conv, e.talker.ID}},
		{"sender renamed", `UPDATE users_user SET full_name = 'Thomas' WHERE id = $1`, []any{e.talker.ID}},
		{"attachment added to an old message", `INSERT INTO chat_fileattachment (message_id, file, filename, file_size, file_type, uploaded_at)
			VALUES ($1, 'chat_files/a.png', 'a.png', 3, 'image', now())`, []any{first}},
		{"attachment edited", `UPDATE chat_fileattachment SET filename = 'b.png' WHERE message_id = $1`, []any{first}},
		{"content edited in the admin", `UPDATE chat_message SET content = 'edited' WHERE id = $1`, []any{first}},
		{"created_at moved: a new order", `UPDATE chat_message SET created_at = created_at + interval '1 hour' WHERE id = $1`, []any{first}},
		{"deleted through the ORM", `DELETE FROM chat_message WHERE id = $1 + 1`, []any{first}},
		{"attachment deleted", `DELETE FROM chat_fileattachment WHERE message_id = $1`, []any{first}},
		{"a row locked, not changed", `SELECT 1 FROM users_user WHERE id = $1 FOR KEY SHARE`, []any{e.talker.ID}},
	}
	for _, s := range steps {
		before := e.cache.Stats()
		e.exec(t, s.query, s.args...)
		e.check(t, s.name)
		after := e.cache.Stats()
		changed := s.name != "a row locked, not changed"
		if got := after.NotExact - before.NotExact; (got == 1) != changed {
			t.Errorf("%s: %d digest mismatches, want one only when a row changed", s.name, got)
		}
	}
}

// A message written after the cached copy but older than its newest (a
// writer with a slow clock) takes its place in the order; one committed
// after a higher id was cached (ids are taken before commit) is seen by
// the digest.
func TestCheckedOutOfOrder(t *testing.T) {
	e := setupChecked(t, 1<<20)
	e.save(t, "now")
	e.check(t, "one")
	if _, err := e.db.Fixture().Message(context.Background(), e.conv, e.talker.ID, "an hour ago", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.check(t, "older created_at, higher id")

	ctx := context.Background()
	tx, err := e.db.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
		VALUES ($1, $2, 'slow commit', 'text', false, now())`, e.conv, e.talker.ID); err != nil {
		t.Fatal(err)
	}
	e.save(t, "fast commit") // a higher id, committed first
	e.check(t, "the higher id alone")
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	before := e.cache.Stats().NotExact
	e.check(t, "the lower id committed later")
	if e.cache.Stats().NotExact != before+1 {
		t.Error("the late commit below the cached ids was not seen by the digest")
	}
}

// Past its bound the cache drops the least recently used conversations
// and serves them right when asked again.
func TestCheckedEvicts(t *testing.T) {
	const maxBytes = 128 << 10
	e := setupChecked(t, maxBytes)
	convs := []int64{e.conv}
	for i := range 11 {
		talker := e.db.CreateUser(t, fmt.Sprintf("talker%d@example.com", i), "T", "talker")
		convs = append(convs, e.db.CreateConversation(t, e.db.CreateUser(t, fmt.Sprintf("l%d@example.com", i), "L", "listener"), talker, "active"))
	}
	for _, conv := range convs {
		for i := range 20 {
			if _, err := e.db.Fixture().Message(context.Background(), conv, e.talker.ID, fmt.Sprintf("message %d with a few words", i), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round := range 2 {
		for _, conv := range convs {
			e.conv = conv
			e.check(t, fmt.Sprintf("round %d, conversation %d", round, conv))
		}
	}
	if st := e.cache.Stats(); st.Evictions == 0 || st.Loads <= uint64(len(convs)) || st.Bytes <= 0 || st.Bytes > maxBytes {
		t.Errorf("stats %+v: want evictions, loads again after them, and at most %d bytes held", st, maxBytes)
	}
}

// A history larger than an eighth of the cache is not kept: the caller
// reads it within the memory budget, and for a while is told so without a
// query.
func TestCheckedTooLarge(t *testing.T) {
	e := setupChecked(t, 64<<10) // 8 KiB for one history
	for i := range 40 {
		e.save(t, fmt.Sprintf("message %d, long enough that forty of them are more than eight KiB of JSON", i))
	}
	ctx := context.Background()
	if _, _, err := e.cache.Get(ctx, e.conv, nil); !errors.Is(err, histcache.ErrTooLarge) {
		t.Fatalf("Get = %v, want ErrTooLarge", err)
	}
	e.db.DB.Close() // a query now would fail
	if _, _, err := e.cache.Get(ctx, e.conv, nil); !errors.Is(err, histcache.ErrTooLarge) {
		t.Fatalf("Get again = %v, want ErrTooLarge without a query", err)
	}
}

// Concurrent Gets of one conversation while messages are saved each get
// a history with every message saved before it asked.
func TestCheckedConcurrent(t *testing.T) {
	e := setupChecked(t, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			var err error
			defer func() { errs <- err }()
			for i := range 20 {
				var m chat.Message
				m, err = e.store.SaveText(ctx, chat.Draft{ConversationID: e.conv, Sender: e.talker, Content: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					return
				}
				var parts [][]byte
				parts, _, err = e.cache.Get(ctx, e.conv, []int64{m.ID})
				if err != nil {
					return
				}
				var got []chat.Message
				if err = json.Unmarshal(bytes.Join(parts, nil), &got); err != nil {
					return
				}
				found := false
				for _, g := range got {
					found = found || g.ID == m.ID
				}
				if !found {
					err = fmt.Errorf("history after saving %d misses it", m.ID)
					return
				}
			}
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	e.check(t, "after all")
}
