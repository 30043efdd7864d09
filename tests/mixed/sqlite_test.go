package mixed

import (
	"sync"
	"testing"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Django and the sidecar write one SQLite file at once: Daphne serves the
// REST API (block, unblock, file uploads) in a loop while a client streams
// chat messages through the sidecar. No "database is locked" reaches
// anyone: every REST call succeeds, every message gets its new_message, and
// every row is there.
func TestSQLiteSharedWithDjangoREST(t *testing.T) {
	t.Parallel()
	db := testenv.SQLite(t)
	s := &stack{t: t, db: db}
	s.listener = db.CreateUser(t, "listener@example.com", "Lena Listener", "listener")
	s.talker = db.CreateUser(t, "talker@example.com", "", "talker")
	s.conv = db.CreateConversation(t, s.listener, s.talker, "active")
	// The blocks go to another pair, so the chat itself is never blocked.
	otherListener := db.CreateUser(t, "other-listener@example.com", "", "listener")
	otherTalker := db.CreateUser(t, "other-talker@example.com", "", "talker")
	s.env = []string{"DATABASE_URL=" + db.DSN, "SECRET_KEY=" + secretKey, "CHANNEL_LAYER=memory",
		"MEDIA_ROOT=" + t.TempDir(), "PUBLIC_BASE_URL=http://testserver", "ALLOWED_HOSTS=*"}
	s.tokens = testenv.Mint(secretKey, s.listener, s.talker, otherListener)
	py, goAddr := s.daphne(), s.sidecar()
	talker := s.join(goAddr, s.talker)

	const rounds = 40
	var restErrs []string
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		body := `{"talker_id": ` + itoa(otherTalker) + `}`
		for i := 0; i < rounds; i++ {
			for _, path := range []string{"/api/listener/profiles/block_talker/", "/api/listener/profiles/unblock_talker/"} {
				if code, out := s.restNoFail(py, path, otherListener, "application/json", body); code/100 != 2 {
					restErrs = append(restErrs, path+": "+itoa(int64(code))+" "+out)
				}
			}
			if code, out := s.uploadNoFail(py, s.listener, "f.txt", []byte("file "+itoa(int64(i)))); code != 201 {
				restErrs = append(restErrs, "upload: "+itoa(int64(code))+" "+out)
			}
		}
	}()

	sent := 0
	frames := talker.frames()
	for streaming := true; streaming; {
		select {
		case <-done:
			streaming = false
			continue
		default:
		}
		talker.send(`{"type": "chat_message", "message": "m` + itoa(int64(sent)) + `"}`)
		sent++
		f, ok := <-frames
		if !ok {
			t.Fatal("connection closed")
		}
		if get(f, "type") != "new_message" {
			t.Fatalf("message %d: %s", sent, dump(f))
		}
	}
	wg.Wait()
	for _, e := range restErrs {
		t.Errorf("REST call failed while the sidecar wrote: %s", e)
	}
	count := func(q string, args ...any) int {
		var n int
		if err := db.DB.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM chat_message WHERE sender_id = $1`, s.talker); n != sent {
		t.Errorf("%d sidecar messages stored, %d sent and acknowledged", n, sent)
	}
	if n := count(`SELECT count(*) FROM chat_fileattachment`); n != rounds {
		t.Errorf("%d uploads stored, want %d", n, rounds)
	}
	if n := count(`SELECT count(*) FROM listener_listenerblockedtalker`); n != 0 {
		t.Errorf("%d block rows left", n)
	}
	t.Logf("sidecar: %d messages; Django REST: %d blocks, %d unblocks, %d uploads", sent, rounds, rounds, rounds)
}
