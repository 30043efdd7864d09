package e2e

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// PROTOCOL.md section 5: frames that are not a valid request.
func TestBadFrames(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		c := w.connect(w.talker)
		l := w.connect(w.listener)
		for _, tc := range []struct{ frame, want string }{
			{`{`, "Invalid JSON"},
			{``, "Invalid JSON"},
			{`{"type": "chat_message"} x`, "Invalid JSON"},
			{`[1, 2]`, "Invalid message format"},
			{`"chat_message"`, "Invalid message format"},
			{`null`, "Invalid message format"},
			{`5`, "Invalid message format"},
			{`{}`, "Unknown message type: None"},
			{`{"type": null}`, "Unknown message type: None"},
			{`{"type": true}`, "Unknown message type: True"},
			{`{"type": false}`, "Unknown message type: False"},
			{`{"type": 5}`, "Unknown message type: 5"},
			{`{"type": 2.5}`, "Unknown message type: 2.5"},
			{`{"type": 1e16}`, "Unknown message type: 1e+16"},
			{`{"type": ""}`, "Unknown message type: "},
			{`{"type": "hello"}`, "Unknown message type: hello"},
			{`{"type": "CHAT_MESSAGE"}`, "Unknown message type: CHAT_MESSAGE"},
			{`{"type": ["a", 1, null]}`, "Unknown message type: ['a', 1, None]"},
			{`{"type": {"k": true}}`, "Unknown message type: {'k': True}"},
			{`{"type": "chat_message", "type": "nope"}`, "Unknown message type: nope"},
		} {
			c.send(tc.frame)
			c.expectError(tc.want)
		}
		// A binary frame is refused with an error frame; the connection stays.
		if err := c.ws.WriteMessage(websocket.BinaryMessage, []byte(`{"type": "chat_message", "message": "x"}`)); err != nil {
			t.Fatal(err)
		}
		c.expectError("Binary frames are not supported")
		// Server frames echoed back are ignored silently.
		for _, f := range []string{`{"type": "connection_established"}`, `{"type": "new_message"}`, `{"type": "read_receipt"}`} {
			c.send(f)
		}
		c.send(`{"type": "after"}`)
		c.expectError("Unknown message type: after")
		barrier(c, l)
		if n := w.messages(); n != 0 {
			t.Errorf("%d messages written, want 0", n)
		}
	})
}

// Section 5.1: chat_message, every error text, the rows written.
func TestChatMessage(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		for _, f := range []string{
			`{"type": "chat_message"}`, `{"type": "chat_message", "message": ""}`,
			`{"type": "chat_message", "message": null}`, `{"type": "chat_message", "message": 0}`,
			`{"type": "chat_message", "message": false}`, `{"type": "chat_message", "message": []}`,
			`{"type": "chat_message", "message": {}}`,
		} {
			tc.send(f)
			tc.expectError("Message content is required")
		}
		for _, f := range []string{
			`{"type": "chat_message", "message": 5}`, `{"type": "chat_message", "message": true}`,
			`{"type": "chat_message", "message": ["hi"]}`, `{"type": "chat_message", "message": {"a": 1}}`,
		} {
			tc.send(f)
			tc.expectError("Message content must be a string")
		}
		tc.send(`{"type": "chat_message", "message": "bad \u0000 byte"}`)
		tc.expectError("A string literal cannot contain NUL (0x00) characters.")
		if n := w.messages(); n != 0 {
			t.Fatalf("%d messages written by refused frames", n)
		}

		tc.send(`{"type": "chat_message", "message": "Hello \u00e9\u2603 \ud83d\ude00 </script>"}`)
		got := tc.expectType("new_message")
		other := lc.expectType("new_message")
		if mustJSON(got) != mustJSON(other) {
			t.Errorf("sender and listener got different frames:\n%s\n%s", mustJSON(got), mustJSON(other))
		}
		latest := get(got, "latest_message").(pyjson.Object)
		if get(latest, "content") != "Hello é☃ 😀 </script>" || get(latest, "message_type") != "text" || get(latest, "is_read") != false {
			t.Errorf("latest_message = %s", mustJSON(latest))
		}
		msgs := get(got, "messages").(pyjson.List)
		if len(msgs) != 1 || mustJSON(msgs[0]) != mustJSON(latest) || get(got, "count") != int64(1) {
			t.Errorf("messages = %s", mustJSON(msgs))
		}
		// The row is what the frame says, and last_message_at is its time.
		var content, created, lastAt string
		query := `SELECT m.content, to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
		to_char(c.last_message_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
		FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id WHERE m.id = $1`
		if w.db.Dialect == djangodb.SQLite {
			// The text as stored, which Django reads back.
			query = `SELECT m.content, CAST(m.created_at AS TEXT), CAST(c.last_message_at AS TEXT)
		FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id WHERE m.id = $1`
		}
		err := w.db.DB.QueryRow(query, get(latest, "id")).Scan(&content, &created, &lastAt)
		if err != nil {
			t.Fatal(err)
		}
		at := get(latest, "created_at").(string)
		if w.db.Dialect == djangodb.SQLite {
			// Django's text is the isoformat() of the frame, byte for byte:
			// a space for the "T", no offset.
			if want := strings.TrimSuffix(strings.Replace(at, "T", " ", 1), "+00:00"); created != want {
				t.Errorf("stored created_at %q, frame %q: want %q", created, at, want)
			}
		}
		if content != "Hello é☃ 😀 </script>" || created != lastAt || !strings.HasPrefix(at, strings.Replace(created[:19], " ", "T", 1)) || !strings.HasSuffix(at, "+00:00") {
			t.Errorf("row content=%q created=%s last_message_at=%s frame created_at=%s", content, created, lastAt, at)
		}
		// The frame as Python's json.dumps writes it: ASCII only, no HTML escapes.
		raw := mustJSON(latest)
		if !strings.Contains(raw, `"Hello \u00e9\u2603 \ud83d\ude00 </script>"`) {
			t.Errorf("content not encoded as json.dumps does: %s", raw)
		}
	})
}

// Section 5.1 step 3: the status rules and a conversation that is gone.
func TestChatMessageStatusRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "pending")
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		lc.send(`{"type": "chat_message", "message": "listener first"}`)
		lc.expectError("Only the talker can send messages in a pending conversation")
		tc.send(`{"type": "chat_message", "message": "talker first"}`)
		tc.expectType("new_message")
		lc.expectType("new_message")

		for status, display := range map[string]string{"rejected": "Rejected", "closed": "Closed"} {
			w.db.SetConversationStatus(t, w.conv, status)
			for _, c := range []*client{tc, lc} {
				c.send(`{"type": "chat_message", "message": "late"}`)
				c.expectError("Cannot send messages in a " + display + " conversation")
				c.send(`{"type": "file_message", "file": "aGk=", "filename": "a.txt"}`)
				c.expectError("Cannot send messages in a " + display + " conversation")
			}
		}
		if n := w.messages(); n != 1 {
			t.Errorf("%d messages, want 1", n)
		}
		if f := w.files(); len(f) != 0 {
			t.Errorf("files written: %v", f)
		}
		w.db.SetConversationStatus(t, w.conv, "active")
		lc.send(`{"type": "chat_message", "message": "now active"}`)
		lc.expectType("new_message")
		tc.expectType("new_message")

		// Gone: delete the conversation (and its messages) under the open connections.
		if _, err := w.db.DB.Exec(`DELETE FROM chat_message WHERE conversation_id = $1`, w.conv); err != nil {
			t.Fatal(err)
		}
		if _, err := w.db.DB.Exec(`DELETE FROM chat_conversation WHERE id = $1`, w.conv); err != nil {
			t.Fatal(err)
		}
		tc.send(`{"type": "chat_message", "message": "anyone?"}`)
		tc.expectError("Conversation matching query does not exist.")
		tc.send(`{"type": "file_message", "file": "aGk=", "filename": "a.txt"}`)
		tc.expectError("Conversation matching query does not exist.")
		tc.send(`{"type": "file_message", "file": "a", "filename": "a.txt"}`)
		tc.expectError("Conversation matching query does not exist.")
		if f := w.files(); len(f) != 0 {
			t.Errorf("files written: %v", f)
		}
	})
}

// Section 5.2: file messages, names, base64, rows and files.
func TestFileMessage(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active", func(c *config.Config) { c.MaxFileBytes = 1 << 20 })
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 100)...)
		b64 := base64.StdEncoding.EncodeToString(png)

		for _, f := range []string{
			`{"type": "file_message"}`, `{"type": "file_message", "file": "aGk="}`,
			`{"type": "file_message", "filename": "a.txt"}`, `{"type": "file_message", "file": "", "filename": "a.txt"}`,
			`{"type": "file_message", "file": "aGk=", "filename": ""}`, `{"type": "file_message", "file": null, "filename": "a"}`,
		} {
			tc.send(f)
			tc.expectError("File data and filename are required")
		}
		for _, file := range []string{"a", "aGk", "====", "!!!!", "QQ=Q", "é", `\u00e9QQ==`} {
			tc.send(`{"type": "file_message", "file": "` + file + `", "filename": "a.txt"}`)
			tc.expectError("Invalid file data")
		}
		for _, name := range []string{"..", ".", "/", "a/", "..\\\\", "$$$", "   "} {
			tc.send(`{"type": "file_message", "file": "aGk=", "filename": "` + name + `"}`)
			tc.expectError("Invalid file name")
		}
		tc.send(`{"type": "file_message", "file": "aGk=", "filename": "a\u0000.txt"}`)
		tc.expectError("A string literal cannot contain NUL (0x00) characters.")
		big := base64.StdEncoding.EncodeToString(make([]byte, 1<<20+1))
		tc.send(`{"type": "file_message", "file": "` + big + `", "filename": "big.bin"}`)
		tc.expectError("File is too large (max 1 MB)")
		tc.send(`{"type": "file_message", "file": "aGk=", "filename": "a.txt", "message": 5}`)
		tc.expectError("Message content must be a string")
		if n, f := w.messages(), w.files(); n != 0 || len(f) != 0 {
			t.Fatalf("refused frames wrote %d messages and files %v", n, f)
		}

		tc.send(`{"type": "file_message", "file": "aGk=", "filename": "` + strings.Repeat("x", 296) + `.png"}`) // 300 characters
		tc.expectError("Invalid file name")
		long := strings.Repeat("x", 251) + ".png"
		cases := []struct{ sent, stored string }{
			{"../../etc/passwd", "passwd"},
			{"a/b.png", "b.png"},
			{`..\\..\\win.ini`, "win.ini"},
			{"photo 1.png", "photo_1.png"},
			{long, ""},          // trimmed to fit varchar(100)
			{"photo 1.png", ""}, // second time: a random suffix
		}
		var stored []string
		for _, tcase := range cases {
			tc.sendJSON(pyjson.Object{{Key: "type", Value: "file_message"}, {Key: "file", Value: b64},
				{Key: "filename", Value: strings.ReplaceAll(tcase.sent, `\\`, `\`)}, {Key: "message", Value: "caption"}})
			f := tc.expectType("new_message")
			lc.expectType("new_message")
			latest := get(f, "latest_message").(pyjson.Object)
			att := get(latest, "file_attachment").(pyjson.Object)
			if get(latest, "content") != "caption" || get(latest, "message_type") != "file" {
				t.Errorf("message %s", mustJSON(latest))
			}
			if get(att, "filename") != strings.ReplaceAll(tcase.sent, `\\`, `\`) || get(att, "file_size") != int64(len(png)) || get(att, "file_type") != "image/png" {
				t.Errorf("attachment %s", mustJSON(att))
			}
			var file string
			if err := w.db.DB.QueryRow(`SELECT file FROM chat_fileattachment WHERE id = $1`, get(att, "id")).Scan(&file); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(file, "chat_files/") || len(file) > 100 {
				t.Errorf("stored path %q", file)
			}
			if tcase.stored != "" && filepath.Base(file) != tcase.stored {
				t.Errorf("sent %q stored as %q, want %q", tcase.sent, file, tcase.stored)
			}
			if want := publicBase + "/media/" + file; get(att, "file_url") != want {
				t.Errorf("file_url %v, want %s", get(att, "file_url"), want)
			}
			data, err := os.ReadFile(filepath.Join(w.media, filepath.FromSlash(file)))
			if err != nil || string(data) != string(png) {
				t.Errorf("file %s on disk: %v", file, err)
			}
			stored = append(stored, file)
		}
		if stored[3] == stored[5] || !strings.HasPrefix(filepath.Base(stored[5]), "photo_1_") {
			t.Errorf("second photo 1.png stored as %q (first %q)", stored[5], stored[3])
		}
		if got := len(w.files()); got != len(cases) {
			t.Errorf("%d files under MEDIA_ROOT, want %d", got, len(cases))
		}
		if got := w.count(`SELECT count(*) FROM chat_fileattachment`); got != len(cases) {
			t.Errorf("%d attachment rows, want %d", got, len(cases))
		}
	})
}

// Section 5.3 and 5.4: typing and read receipts reach the others only.
func TestTypingAndMarkRead(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		w := newWorld(t, be, "active")
		tc := w.connect(w.talker)
		lc := w.connect(w.listener)
		for _, tcase := range []struct{ sent, shown string }{
			{`{"type": "typing", "is_typing": true}`, "true"},
			{`{"type": "typing"}`, "false"},
			{`{"type": "typing", "is_typing": null}`, "null"},
			{`{"type": "typing", "is_typing": {"a": [1, 2.5, "\u00e9"]}}`, `{"a": [1, 2.5, "\u00e9"]}`},
		} {
			tc.send(tcase.sent)
			want := `{"type": "typing", "user_id": ` + itoa(w.talker) + `, "user_email": "talker@example.com", "is_typing": ` + tcase.shown + `}`
			if got := lc.raw(); got != want {
				t.Errorf("typing frame\n got %s\nwant %s", got, want)
			}
		}
		// The talker sees none of its own typing: its next frame is the reply to this.
		tc.send(`{"type": "ping"}`)
		tc.expectError("Unknown message type: ping")

		tc.send(`{"type": "chat_message", "message": "one"}`)
		tc.send(`{"type": "chat_message", "message": "two"}`)
		lc.send(`{"type": "chat_message", "message": "mine"}`)
		for i := 0; i < 3; i++ {
			tc.expectType("new_message")
			lc.expectType("new_message")
		}
		lc.send(`{"type": "mark_read"}`)
		if got, want := tc.raw(), `{"type": "read_receipt", "user_id": `+itoa(w.listener)+`}`; got != want {
			t.Errorf("read receipt\n got %s\nwant %s", got, want)
		}
		if got := w.count(`SELECT count(*) FROM chat_message WHERE is_read`); got != 2 {
			t.Errorf("%d messages read, want the talker's 2", got)
		}
		if got := w.count(`SELECT count(*) FROM chat_message WHERE is_read AND sender_id = $1`, w.listener); got != 0 {
			t.Errorf("the reader's own message was marked read")
		}
		lc.send(`{"type": "ping"}`)
		lc.expectError("Unknown message type: ping")
	})
}

var _ = http.StatusOK
