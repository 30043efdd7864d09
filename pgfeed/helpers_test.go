package pgfeed_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pgfeed"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// publication is the one every test database gets: the DDL of the package doc.
const publication = "pgfeed_test"

const publicationDDL = `CREATE PUBLICATION pgfeed_test FOR TABLE
	chat_message, chat_fileattachment,
	users_user (id, email, full_name, user_type, is_active)`

// waitTimeout bounds every wait of the tests on the feed.
const waitTimeout = 10 * time.Second

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu      sync.Mutex
	resets  int
	txs     []*pgfeed.Tx
	applied []time.Time // when each of txs was applied
}

func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resets++
}

func (r *recorder) Apply(tx *pgfeed.Tx) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.txs = append(r.txs, tx)
	r.applied = append(r.applied, time.Now())
}

func (r *recorder) resetCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resets
}

// since returns the transactions that ended after pos, in order.
func (r *recorder) since(pos pgfeed.LSN) []*pgfeed.Tx {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*pgfeed.Tx
	for _, tx := range r.txs {
		if tx.EndLSN > pos {
			out = append(out, tx)
		}
	}
	return out
}

// env is a Django database on the private cluster with the publication,
// a talker, a listener, an active conversation between them, and a running
// feed on it.
type env struct {
	db       *testenv.Database
	feed     *pgfeed.Feed
	rec      *recorder
	stop     func() // stops the feed and waits for Run to return
	talker   int64
	listener int64
	conv     int64
}

// setup builds an env; tweak may change the feed's Config before it starts.
func setup(t testing.TB, tweak func(*pgfeed.Config)) *env {
	t.Helper()
	db := testenv.LogicalCluster(t).Postgres(t)
	if _, err := db.DB.Exec(publicationDDL); err != nil {
		t.Fatalf("create publication: %v", err)
	}
	e := &env{db: db, rec: &recorder{}}
	e.listener = db.CreateUser(t, "listener@example.com", "Lena Listener", "listener")
	e.talker = db.CreateUser(t, "talker@example.com", "Tom Talker", "talker")
	e.conv = db.CreateConversation(t, e.listener, e.talker, "active")

	cfg := pgfeed.Config{DSN: db.DSN, Publication: publication,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if tweak != nil {
		tweak(&cfg)
	}
	f, err := pgfeed.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.feed = f
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, e.rec) }()
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("Run did not return within %s of its context's end", waitTimeout)
			}
		})
	}
	t.Cleanup(e.stop)
	e.waitUp(t)
	return e
}

// waitUp waits until the feed streams.
func (e *env) waitUp(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !e.feed.Up() {
		if time.Now().After(deadline) {
			t.Fatalf("feed not streaming after %s", waitTimeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lsn is CurrentLSN on the test database.
func (e *env) lsn(t testing.TB) pgfeed.LSN {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	l, err := pgfeed.CurrentLSN(ctx, e.db.DB)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sync waits until the feed has applied everything committed so far and
// returns the position it waited for.
func (e *env) sync(t testing.TB) pgfeed.LSN {
	t.Helper()
	l := e.lsn(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.feed.WaitFor(ctx, l); err != nil {
		t.Fatalf("WaitFor(%s): %v (applied %s)", l, err, e.feed.Applied())
	}
	return l
}

// insertMessage inserts a chat_message from the talker and returns its id.
func (e *env) insertMessage(t testing.TB, content string) int64 {
	t.Helper()
	var id int64
	err := e.db.DB.QueryRow(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
		VALUES ($1, $2, $3, 'text', false, now()) RETURNING id`, e.conv, e.talker, content).Scan(&id)
	if err != nil {
		t.Fatalf("insert message: %v", err)
	}
	return id
}

func (e *env) exec(t testing.TB, query string, args ...any) {
	t.Helper()
	if _, err := e.db.DB.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// text is a present value.
func text(s string) pgfeed.Value { return pgfeed.Value{Kind: pgfeed.Text, Text: s} }

func id(n int64) pgfeed.Value { return text(fmt.Sprint(n)) }

// checkRow compares a decoded row with want, column by column.
func checkRow(t testing.TB, what string, got, want map[string]pgfeed.Value) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d columns %v, want %d %v", what, len(got), got, len(want), want)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s: column %s = %v, want %v", what, k, g, w)
		}
	}
}

// isDown reports whether err is ErrDown.
func isDown(err error) bool { return errors.Is(err, pgfeed.ErrDown) }
