package djangodb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// djangoWriter is run by `manage.py shell -c` with the conversation, the
// listener, the talker of another pair, the sender and the number of rounds
// formatted in. Each round blocks the other pair, inserts a message into the
// conversation and unblocks, each an autocommit write through the ORM, as
// the REST API makes them. It prints the counts, and every error.
const djangoWriter = `
import json, time
from chat.models import Message
from listener.models import ListenerBlockedTalker
out = {"blocks": 0, "unblocks": 0, "messages": 0, "errors": []}
start = time.monotonic()
for i in range(%[5]d):
    for step in ("block", "message", "unblock"):
        try:
            if step == "block":
                ListenerBlockedTalker.objects.create(listener_id=%[2]d, talker_id=%[3]d)
                out["blocks"] += 1
            elif step == "message":
                Message.objects.create(conversation_id=%[1]d, sender_id=%[4]d, content="django %%d" %% i)
                out["messages"] += 1
            else:
                ListenerBlockedTalker.objects.filter(listener_id=%[2]d, talker_id=%[3]d).delete()
                out["unblocks"] += 1
        except Exception as e:
            out["errors"].append("%%s %%d: %%r" %% (step, i, e))
out["seconds"] = time.monotonic() - start
print(json.dumps(out))
`

// TestSQLiteWithDjangoWriting: Django writes the same SQLite file in a
// loop (blocks, messages, unblocks) while the sidecar takes a stream of
// SaveText calls from several goroutines. No save fails (no "database is
// locked" can reach a client), nothing is lost on either side.
func TestSQLiteWithDjangoWriting(t *testing.T) {
	t.Parallel()
	const (
		rounds  = 1000
		senders = 6
	)
	p := newPair(t, testenv.Backend{Name: "sqlite", New: testenv.SQLite}, chat.StatusActive)
	other := p.pg.CreateUser(t, "other@example.com", "", "talker")
	ctx := context.Background()

	cmd := exec.Command(testenv.Python(), filepath.Join(testenv.DjangoDir(t), "manage.py"), "shell", "-c",
		fmt.Sprintf(djangoWriter, p.conv, p.listener.ID, other, p.listener.ID, rounds))
	cmd.Dir = testenv.DjangoDir(t)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "DATABASE_URL="+p.pg.DSN)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	djangoDone := make(chan error, 1)
	go func() { djangoDone <- cmd.Wait() }()

	var (
		saved, failed atomic.Int64
		stop          atomic.Bool
		mu            sync.Mutex
		errs          []error
		slowest       atomic.Int64
		wg            sync.WaitGroup
	)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				_, err := p.db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "sidecar"})
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d) // racy maximum, good enough for a log line
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					continue
				}
				saved.Add(1)
			}
		}()
	}
	err := <-djangoDone
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Django writer: %v\n%s", err, stderr.String())
	}
	var dj struct {
		Blocks, Unblocks, Messages int
		Errors                     []string
		Seconds                    float64
	}
	if err := json.Unmarshal(stdout.Bytes(), &dj); err != nil {
		t.Fatalf("Django writer output %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	t.Logf("sidecar: %d saves from %d goroutines, %d failed, slowest %v; Django: %d blocks, %d messages, %d unblocks in %.1fs, %d errors",
		saved.Load(), senders, failed.Load(), time.Duration(slowest.Load()).Round(time.Millisecond),
		dj.Blocks, dj.Messages, dj.Unblocks, dj.Seconds, len(dj.Errors))

	for i, err := range errs {
		if i < 5 {
			t.Errorf("SaveText failed: %v", err)
		}
	}
	for i, e := range dj.Errors {
		if i < 5 {
			t.Errorf("Django write failed: %s", e)
		}
	}
	if dj.Blocks != rounds || dj.Messages != rounds || dj.Unblocks != rounds {
		t.Errorf("Django wrote %d blocks, %d messages, %d unblocks; want %d each", dj.Blocks, dj.Messages, dj.Unblocks, rounds)
	}
	if saved.Load() == 0 {
		t.Fatalf("the sidecar saved nothing while Django wrote")
	}
	count := func(query string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := p.pg.DB.QueryRow(query, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM chat_message WHERE sender_id = $1`, p.talker.ID); n != saved.Load() {
		t.Errorf("%d sidecar rows, %d saves succeeded", n, saved.Load())
	}
	if n := count(`SELECT count(*) FROM chat_message WHERE sender_id = $1`, p.listener.ID); n != int64(dj.Messages) {
		t.Errorf("%d Django rows, Django wrote %d", n, dj.Messages)
	}
	if n := count(`SELECT count(*) FROM listener_listenerblockedtalker`); n != 0 {
		t.Errorf("%d block rows left, want 0", n)
	}
	var check string
	if err := p.pg.DB.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check = %q, %v", check, err)
	}
}
