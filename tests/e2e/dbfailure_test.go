package e2e

import (
	"testing"

	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// A real database failure in the middle of a file message's transaction
// (a trigger refusing the attachment row): the sender gets an error frame,
// nothing is half-written (no message row, no file, last_message_at
// untouched), and the server keeps serving both participants.
func TestDatabaseFailsMidTransaction(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		trigger := []string{
			`CREATE FUNCTION e2e_fail_attachment() RETURNS trigger AS $$
			BEGIN IF NEW.filename = 'fail.txt' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER e2e_fail BEFORE INSERT ON chat_fileattachment FOR EACH ROW EXECUTE FUNCTION e2e_fail_attachment()`,
		}
		if w.db.Dialect == djangodb.SQLite {
			trigger = []string{`CREATE TRIGGER e2e_fail BEFORE INSERT ON chat_fileattachment
				WHEN NEW.filename = 'fail.txt' BEGIN SELECT RAISE(ABORT, 'disk on fire'); END`}
		}
		for _, q := range trigger {
			if _, err := w.db.DB.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		lastAt := lastMessageAt(t, w.db.DB, w.conv)

		tc.send(`{"type": "file_message", "file": "aGVsbG8=", "filename": "fail.txt", "message": "doomed"}`)
		tc.expectError("Could not complete the request, please try again")
		barrier(tc, lc) // the listener got nothing before the read receipt
		if n := w.messages(); n != 0 {
			t.Errorf("%d message rows left by the failed transaction", n)
		}
		if f := w.files(); len(f) != 0 {
			t.Errorf("files left by the failed transaction: %v", f)
		}
		if got := lastMessageAt(t, w.db.DB, w.conv); got != lastAt {
			t.Errorf("last_message_at moved: %v → %v", lastAt, got)
		}

		// Both keep working.
		tc.send(`{"type": "file_message", "file": "aGVsbG8=", "filename": "ok.txt"}`)
		tc.expectType("new_message")
		lc.expectType("new_message")
		lc.send(`{"type": "chat_message", "message": "still here"}`)
		lc.expectType("new_message")
		tc.expectType("new_message")
		if n, f := w.messages(), w.files(); n != 2 || len(f) != 1 {
			t.Errorf("after recovery: %d messages, files %v", n, f)
		}
	})
}
