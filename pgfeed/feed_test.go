package pgfeed_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pgfeed"
)

// Inserts, updates, deletes and truncates of the published tables arrive
// in commit order with their values; a table outside the publication and
// the columns outside users_user's column list never appear.
func TestChangesInCommitOrder(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	start := e.sync(t)

	user := e.db.CreateUser(t, "new@example.com", "New User", "talker")
	e.db.SetConversationStatus(t, e.conv, "closed") // chat_conversation: not published
	msg := e.insertMessage(t, "hello")
	e.exec(t, `UPDATE chat_message SET content = 'hello, edited' WHERE id = $1`, msg)
	var att int64
	if err := e.db.DB.QueryRow(`INSERT INTO chat_fileattachment (message_id, file, filename, file_size, file_type, uploaded_at)
		VALUES ($1, 'chat_files/a.txt', 'a.txt', 3, 'text/plain', now()) RETURNING id`, msg).Scan(&att); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `DELETE FROM chat_fileattachment WHERE id = $1`, att)
	e.exec(t, `TRUNCATE chat_fileattachment, chat_message`)
	e.sync(t)

	txs := e.rec.since(start)
	want := []struct {
		op    pgfeed.Op
		table string
	}{
		{pgfeed.Insert, "users_user"},
		{pgfeed.Insert, "chat_message"},
		{pgfeed.Update, "chat_message"},
		{pgfeed.Insert, "chat_fileattachment"},
		{pgfeed.Delete, "chat_fileattachment"},
		{pgfeed.Truncate, "chat_fileattachment"},
	}
	if len(txs) != len(want) {
		for _, tx := range txs {
			t.Logf("tx %d at %s: %d changes", tx.Xid, tx.EndLSN, len(tx.Changes))
		}
		t.Fatalf("%d transactions, want %d", len(txs), len(want))
	}
	var last pgfeed.LSN
	for i, w := range want {
		tx := txs[i]
		if tx.CommitLSN <= last || tx.EndLSN <= tx.CommitLSN || tx.CommitTime.IsZero() || tx.Overflow {
			t.Errorf("tx %d: commit %s end %s time %v overflow %v after %s", i, tx.CommitLSN, tx.EndLSN, tx.CommitTime, tx.Overflow, last)
		}
		last = tx.EndLSN
		c := tx.Changes[0]
		if c.Op != w.op || c.Rel.Table != w.table || c.Rel.Namespace != "public" {
			t.Errorf("tx %d: %s on %s.%s, want %s on public.%s", i, c.Op, c.Rel.Namespace, c.Rel.Table, w.op, w.table)
		}
	}

	checkRow(t, "user insert", txs[0].Changes[0].New, map[string]pgfeed.Value{
		"id": id(user), "email": text("new@example.com"), "full_name": text("New User"),
		"user_type": text("talker"), "is_active": text("t")})
	ins := txs[1].Changes[0]
	if ins.Old != nil || ins.New["id"] != id(msg) || ins.New["content"] != text("hello") ||
		ins.New["is_read"] != text("f") || ins.New["conversation_id"] != id(e.conv) || ins.New["created_at"].Kind != pgfeed.Text {
		t.Errorf("message insert: new %v old %v", ins.New, ins.Old)
	}
	upd := txs[2].Changes[0]
	if upd.Old != nil || upd.New["id"] != id(msg) || upd.New["content"] != text("hello, edited") {
		t.Errorf("message update: new %v old %v (no old key: the key did not change)", upd.New, upd.Old)
	}
	del := txs[4].Changes[0]
	if del.New != nil {
		t.Errorf("delete has a new row: %v", del.New)
	}
	checkRow(t, "attachment delete", del.Old, map[string]pgfeed.Value{"id": id(att)})
	trunc := txs[5].Changes
	if len(trunc) != 2 || trunc[1].Op != pgfeed.Truncate || trunc[1].Rel.Table != "chat_message" || trunc[0].New != nil {
		t.Errorf("truncate: %+v", trunc)
	}
}

// A transaction of several statements arrives whole, as one Tx, at its
// commit, and nothing of it before: a commit made elsewhere in the middle
// arrives first.
func TestTransactionArrivesWholeAtCommit(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	start := e.sync(t)

	tx, err := e.db.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var msg int64
	if err := tx.QueryRow(`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
		VALUES ($1, $2, 'file', 'file', false, now()) RETURNING id`, e.conv, e.talker).Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO chat_fileattachment (message_id, file, filename, file_size, file_type, uploaded_at)
		VALUES ($1, 'chat_files/b.png', 'b.png', 10, 'image/png', now())`, msg); err != nil {
		t.Fatal(err)
	}
	// Barrier: another session's commit, waited for, while ours is open.
	other := e.insertMessage(t, "meanwhile")
	mid := e.sync(t)
	if got := e.rec.since(start); len(got) != 1 || got[0].Changes[0].New["id"] != id(other) {
		t.Fatalf("before the commit: %d transactions, want only the other session's", len(got))
	}
	if _, err := tx.Exec(`UPDATE chat_message SET is_read = true WHERE id = $1`, msg); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	e.sync(t)

	got := e.rec.since(mid)
	if len(got) != 1 {
		t.Fatalf("after the commit: %d transactions, want 1", len(got))
	}
	ops := []string{}
	for _, c := range got[0].Changes {
		ops = append(ops, c.Op.String()+" "+c.Rel.Table)
	}
	if strings.Join(ops, ", ") != "insert chat_message, insert chat_fileattachment, update chat_message" {
		t.Errorf("changes: %s", strings.Join(ops, ", "))
	}
}

// An UPDATE of is_read on a message whose content is large (TOASTed)
// carries the content as Unchanged.
func TestUnchangedToastedContent(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	b := make([]byte, 50<<10)
	_, _ = rand.Read(b)
	big := hex.EncodeToString(b) // 100 KB that compression cannot shrink below the TOAST threshold
	start := e.sync(t)
	msg := e.insertMessage(t, big)
	e.exec(t, `UPDATE chat_message SET is_read = true WHERE id = $1`, msg)
	e.sync(t)

	txs := e.rec.since(start)
	if len(txs) != 2 {
		t.Fatalf("%d transactions, want 2", len(txs))
	}
	if got := txs[0].Changes[0].New["content"]; got.Kind != pgfeed.Text || got.Text != big {
		t.Errorf("insert: content of %d bytes, kind %c; want the %d bytes", len(got.Text), got.Kind, len(big))
	}
	upd := txs[1].Changes[0].New
	if upd["content"].Kind != pgfeed.Unchanged || upd["is_read"] != text("t") || upd["id"] != id(msg) {
		t.Errorf("update: content %v, is_read %v, id %v; want content unchanged", upd["content"], upd["is_read"], upd["id"])
	}
}

// A delete carries the primary key and nothing else, and an update that
// changes the key carries the old key.
func TestDeleteCarriesOnlyKey(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	msg := e.insertMessage(t, "to be deleted")
	start := e.sync(t)
	e.exec(t, `UPDATE chat_message SET id = id + 1000000 WHERE id = $1`, msg)
	e.exec(t, `DELETE FROM chat_message WHERE id = $1`, msg+1000000)
	e.sync(t)
	txs := e.rec.since(start)
	if len(txs) != 2 {
		t.Fatalf("%d transactions, want 2", len(txs))
	}
	upd := txs[0].Changes[0]
	checkRow(t, "key update old", upd.Old, map[string]pgfeed.Value{"id": id(msg)})
	if upd.New["id"] != id(msg+1000000) || upd.New["content"] != text("to be deleted") {
		t.Errorf("key update new: %v", upd.New)
	}
	del := txs[1].Changes[0]
	if del.Op != pgfeed.Delete || del.New != nil {
		t.Errorf("delete: %s, new %v", del.Op, del.New)
	}
	checkRow(t, "delete", del.Old, map[string]pgfeed.Value{"id": id(msg + 1000000)})
}

// A table's description can change mid-stream, even inside a transaction:
// each change is decoded with the description in force when it was made.
func TestRelationChangesMidStream(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	start := e.sync(t)
	tx, err := e.db.DB.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		`SET CONSTRAINTS ALL IMMEDIATE`, // Django's foreign keys are deferred, and ALTER refuses pending checks
		`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at) VALUES ($1, $2, 'before', 'text', false, now())`,
		`ALTER TABLE chat_message ADD COLUMN note text`,
		`INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at) VALUES ($1, $2, 'after', 'text', false, now())`,
	} {
		if !strings.HasPrefix(q, "INSERT") {
			_, err = tx.Exec(q)
		} else {
			_, err = tx.Exec(q, e.conv, e.talker)
		}
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	e.exec(t, `INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at, note)
		VALUES ($1, $2, 'noted', 'text', false, now(), 'n')`, e.conv, e.talker)
	e.sync(t)
	txs := e.rec.since(start)
	if len(txs) != 2 || len(txs[0].Changes) != 2 {
		t.Fatalf("%d transactions, want 2 (the first with 2 changes)", len(txs))
	}
	before, after, noted := txs[0].Changes[0], txs[0].Changes[1], txs[1].Changes[0]
	if _, ok := before.New["note"]; ok || len(before.Rel.Columns) != 7 {
		t.Errorf("before ALTER: %d columns %v", len(before.Rel.Columns), before.New)
	}
	if after.New["note"].Kind != pgfeed.Null || len(after.Rel.Columns) != 8 || after.Rel.ID != before.Rel.ID {
		t.Errorf("after ALTER: note %v, %d columns", after.New["note"], len(after.Rel.Columns))
	}
	if noted.New["note"] != text("n") {
		t.Errorf("next transaction: note %v", noted.New["note"])
	}
}

// A transaction heavier than MaxTxBytes comes without its changes, with
// Overflow and the tables it touched; the next one is whole again.
func TestOverflow(t *testing.T) {
	t.Parallel()
	e := setup(t, func(c *pgfeed.Config) { c.MaxTxBytes = 16 << 10 })
	start := e.sync(t)
	e.exec(t, `INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
		SELECT $1, $2, repeat('x', 4000), 'text', false, now() FROM generate_series(1, 10)`, e.conv, e.talker)
	small := e.insertMessage(t, "small")
	e.sync(t)
	txs := e.rec.since(start)
	if len(txs) != 2 {
		t.Fatalf("%d transactions, want 2", len(txs))
	}
	big := txs[0]
	if !big.Overflow || big.Changes != nil || len(big.Relations) != 1 || big.Relations[0].Table != "chat_message" || big.EndLSN == 0 {
		t.Errorf("big: overflow %v, %d changes, relations %v", big.Overflow, len(big.Changes), big.Relations)
	}
	if txs[1].Overflow || len(txs[1].Changes) != 1 || txs[1].Changes[0].New["id"] != id(small) {
		t.Errorf("next: overflow %v, changes %+v", txs[1].Overflow, txs[1].Changes)
	}
}

// WaitFor(CurrentLSN) right after a commit returns once the commit has been
// applied; the test logs how long that takes.
func TestWaitForAfterCommit(t *testing.T) {
	t.Parallel()
	e := setup(t, nil)
	const n = 100
	waits := make([]time.Duration, 0, n)
	for range n {
		msg := e.insertMessage(t, "ping")
		begin := time.Now()
		l := e.lsn(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := e.feed.WaitFor(ctx, l)
		cancel()
		waits = append(waits, time.Since(begin))
		if err != nil {
			t.Fatalf("WaitFor(%s): %v", l, err)
		}
		txs := e.rec.since(0)
		if c := txs[len(txs)-1].Changes[0]; c.New["id"] != id(msg) {
			t.Fatalf("WaitFor(%s) returned, but the last transaction applied is %s of %v, not message %d's insert", l, c.Op, c.New["id"], msg)
		}
	}
	logDurations(t, "commit → CurrentLSN → WaitFor returned", waits)
}

// WaitFor on an idle server returns promptly; a position nobody has
// written yet is not reached.
func TestWaitForIdle(t *testing.T) {
	// Not parallel: the other tests have not started, so the server is idle.
	e := setup(t, nil)
	e.sync(t)
	var waits []time.Duration
	for range 20 {
		l := e.lsn(t)
		begin := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := e.feed.WaitFor(ctx, l)
		cancel()
		waits = append(waits, time.Since(begin))
		if err != nil {
			t.Fatalf("WaitFor(%s) on an idle server: %v", l, err)
		}
	}
	logDurations(t, "idle server: WaitFor(CurrentLSN)", waits)

	// A commit that publishes nothing (chat_conversation is not in the
	// publication; PostgreSQL 15 does not even send its Begin and Commit):
	// only a keepalive can carry the feed past it.
	waits = waits[:0]
	for range 20 {
		e.db.SetConversationStatus(t, e.conv, "active")
		begin := time.Now()
		e.sync(t)
		waits = append(waits, time.Since(begin))
	}
	logDurations(t, "commit of an unpublished table: CurrentLSN + WaitFor", waits)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := e.feed.WaitFor(ctx, e.lsn(t)+1<<30); err != context.DeadlineExceeded {
		t.Fatalf("WaitFor a gigabyte ahead: %v, want the context's deadline", err)
	}
}

// Before Run, WaitFor fails at once.
func TestWaitForBeforeRun(t *testing.T) {
	t.Parallel()
	f, err := pgfeed.New(pgfeed.Config{DSN: "postgres://u@127.0.0.1:1/db", Publication: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Up() {
		t.Fatal("Up before Run")
	}
	if err := f.WaitFor(context.Background(), 1); !isDown(err) {
		t.Fatalf("WaitFor before Run: %v, want ErrDown", err)
	}
}

func logDurations(t *testing.T, what string, ds []time.Duration) {
	t.Helper()
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	t.Logf("%s, %d times: median %s, p90 %s, max %s", what, len(s), s[len(s)/2], s[len(s)*9/10], s[len(s)-1])
}
