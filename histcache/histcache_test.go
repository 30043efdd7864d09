package histcache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/histcache"
	"github.com/chatsidecar/sidecar/pgfeed"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// item is what the test's Encode writes of a message.
type item struct {
	ID      int64  `json:"id"`
	Content string `json:"content"`
	IsRead  bool   `json:"is_read"`
}

type env struct {
	db       *testenv.Database
	store    *djangodb.DB
	cache    *histcache.Cache
	talker   chat.User
	listener int64
	conv     int64
}

const maxLag = 300 * time.Millisecond

// setup runs a feed into a cache on a fresh database of the logical
// cluster, with a conversation between a listener and a talker.
func setup(t *testing.T) *env {
	t.Helper()
	return setupSized(t, 4<<20)
}

// setupSized is setup with a cache of maxBytes.
func setupSized(t *testing.T, maxBytes int64) *env {
	t.Helper()
	db := testenv.LogicalCluster(t).Postgres(t)
	if _, err := db.DB.Exec(`CREATE PUBLICATION histcache_test FOR TABLE chat_message, chat_fileattachment,
		users_user (id, email, full_name, user_type, is_active)`); err != nil {
		t.Fatalf("create publication: %v", err)
	}
	store, err := djangodb.New(db.DB, djangodb.Postgres, djangodb.Schema{}, djangodb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, store: store}
	e.listener = db.CreateUser(t, "listener@example.com", "Lena", "listener")
	e.talker = chat.User{Email: "talker@example.com", FullName: "Tom", UserType: "talker", IsActive: true}
	e.talker.ID = db.CreateUser(t, e.talker.Email, e.talker.FullName, e.talker.UserType)
	e.conv = db.CreateConversation(t, e.listener, e.talker.ID, "active")

	feed, err := pgfeed.New(pgfeed.Config{DSN: db.DSN, Publication: "histcache_test",
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	s := djangodb.Schema{}
	e.cache = histcache.New(histcache.Config{MaxBytes: maxBytes, MaxLag: maxLag, QueryTimeout: 5 * time.Second,
		Encode: func(m chat.Message) ([]byte, error) { return json.Marshal(item{m.ID, m.Content, m.IsRead}) },
	}, histcache.Names{Table: s.Table, Column: s.Column}, db.DB, feed, store)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- feed.Run(ctx, e.cache) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !feed.Up(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("feed not up within 10s")
		}
	}
	return e
}

func (e *env) save(t *testing.T, content string) int64 {
	t.Helper()
	m, err := e.store.SaveText(context.Background(), chat.Draft{ConversationID: e.conv, Sender: e.talker, Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return m.ID
}

func (e *env) get(t *testing.T, after ...int64) ([]item, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	parts, n, err := e.cache.Get(ctx, e.conv, after)
	if err != nil {
		return nil, err
	}
	list := bytes.Join(parts, nil)
	var items []item
	if err := json.Unmarshal(list, &items); err != nil {
		t.Fatalf("list %q: %v", list, err)
	}
	if len(items) != n {
		t.Errorf("count %d, list has %d", n, len(items))
	}
	return items, nil
}

// Served from the cache with after (the messages the caller saved), a
// history holds them and every change committed before them, without a
// look at the WAL position; that holds however many times in a row.
func TestGetAfterOwnMessage(t *testing.T) {
	e := setup(t)
	first := e.save(t, "first")
	if items, err := e.get(t); err != nil || len(items) != 1 || items[0].ID != first {
		t.Fatalf("loading Get = %+v, %v; want the first message", items, err)
	}
	for i := range 20 {
		// A change made elsewhere (the REST API's mark_read), then a
		// message of our own: the history must show both.
		if _, err := e.db.DB.Exec(`UPDATE chat_message SET is_read = true WHERE conversation_id = $1`, e.conv); err != nil {
			t.Fatal(err)
		}
		id := e.save(t, fmt.Sprint("m", i))
		items, err := e.get(t, id)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(items) != i+2 || items[0].ID != id || items[0].Content != fmt.Sprint("m", i) {
			t.Fatalf("message %d: history %+v; want it first of %d", i, items, i+2)
		}
		for _, it := range items[1:] {
			if !it.IsRead {
				t.Fatalf("message %d: %+v not read, though marked before the message was saved", i, it)
			}
		}
	}
	if st := e.cache.Stats(); st.Loads != 1 || st.Hits != 20 || st.NotExact != 0 || st.Bytes <= 0 {
		t.Errorf("stats %+v; want one load, 20 hits, some bytes held", st)
	}
}

// A message the cache never sees (deleted before, or never committed) is
// waited for MaxLag, then the caller is sent to the database.
func TestGetAfterMissingMessage(t *testing.T) {
	e := setup(t)
	e.save(t, "first")
	if _, err := e.get(t); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := e.get(t, 1<<40)
	if !errors.Is(err, histcache.ErrNotExact) {
		t.Fatalf("Get after a message that never comes: %v, want ErrNotExact", err)
	}
	if waited := time.Since(start); waited < maxLag {
		t.Errorf("gave up after %v, before MaxLag %v", waited, maxLag)
	}
	// A message saved while nothing is cached needs no wait: the load
	// runs after its commit.
	e2 := setup(t)
	id := e2.save(t, "first")
	if items, err := e2.get(t, id); err != nil || len(items) != 1 || items[0].ID != id {
		t.Fatalf("Get on an empty cache = %+v, %v", items, err)
	}
}

// New messages are written in front of the list the cache holds, in
// place; a list handed out is never written again, and every list is what
// the database holds, through headroom used up and rebuilt many times.
func TestPrependedListsExact(t *testing.T) {
	e := setup(t)
	e.save(t, "first")
	if _, err := e.get(t); err != nil {
		t.Fatal(err)
	}
	encode := func(m chat.Message) []byte { b, _ := json.Marshal(item{m.ID, m.Content, m.IsRead}); return b }
	type served struct {
		parts [][]byte
		was   []byte
	}
	var all []served
	for i := range 150 {
		id := e.save(t, strings.Repeat("x", i*7%300))
		if i%40 == 39 { // a change elsewhere: a rebuild
			if _, err := e.db.DB.Exec(`UPDATE chat_message SET is_read = true WHERE id = $1`, id); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		parts, _, err := e.cache.Get(ctx, e.conv, []int64{id})
		cancel()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var want []byte
		if err := e.store.History(context.Background(), e.conv, func(m chat.Message) error {
			if want == nil {
				want = []byte("[")
			} else {
				want = append(want, ", "...)
			}
			want = append(want, encode(m)...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want = append(want, ']')
		got := bytes.Join(parts, nil)
		if i%40 != 39 && !bytes.Equal(got, want) {
			// (after the UPDATE the feed may not have applied it yet: the
			// Get waited for the insert only)
			t.Fatalf("message %d: cache\n%s\ndatabase\n%s", i, got, want)
		}
		all = append(all, served{parts, got})
	}
	for i, s := range all {
		if got := bytes.Join(s.parts, nil); !bytes.Equal(got, s.was) {
			t.Fatalf("the list served for message %d changed after it was served:\n%s\nwas\n%s", i, got, s.was)
		}
	}
}

// A history larger than an eighth of the cache is not kept, whether it is
// found so when loaded or grows so through the feed: the caller reads it
// from the database, within its memory budget, and the cache does not try
// again for a while.
func TestTooLarge(t *testing.T) {
	long := strings.Repeat("a long message ", 20) // 300 bytes
	e := setupSized(t, 64<<10)                    // 8 KiB for one history
	var last int64
	for range 40 {
		last = e.save(t, long)
	}
	if _, err := e.get(t, last); !errors.Is(err, histcache.ErrTooLarge) {
		t.Fatalf("loading Get = %v, want ErrTooLarge", err)
	}
	if _, err := e.get(t, last); !errors.Is(err, histcache.ErrTooLarge) {
		t.Fatalf("Get again = %v, want ErrTooLarge", err)
	}
	if st := e.cache.Stats(); st.Loads != 1 || st.Bytes != 0 {
		t.Errorf("stats %+v; want the one load that found it too large, and nothing held", st)
	}

	// Small when loaded, then grown by the feed.
	e = setupSized(t, 64<<10)
	last = e.save(t, long)
	if items, err := e.get(t, last); err != nil || len(items) != 1 {
		t.Fatalf("Get = %v, %v; want the one message", items, err)
	}
	grown := false
	for i := range 40 {
		last = e.save(t, long)
		items, err := e.get(t, last)
		if errors.Is(err, histcache.ErrTooLarge) {
			grown = true
			break
		}
		if err != nil || len(items) != i+2 {
			t.Fatalf("message %d: Get = %d items, %v", i, len(items), err)
		}
	}
	if !grown {
		t.Fatal("a history of 41 messages of 300 bytes was still kept in a cache of 64 KiB")
	}
	if _, err := e.get(t, last); !errors.Is(err, histcache.ErrTooLarge) {
		t.Fatalf("Get after it grew too large = %v, want ErrTooLarge", err)
	}
	if st := e.cache.Stats(); st.Bytes != 0 {
		t.Errorf("stats %+v; want nothing held once the only history was dropped", st)
	}
}
