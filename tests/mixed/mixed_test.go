package mixed

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// A file uploaded through the Python REST endpoint reaches the sidecar's
// clients as new_message, latest_message being DRF's output untouched.
func TestRESTUploadReachesSidecarClients(t *testing.T) {
	t.Parallel()
	s := newStack(t, redisURL(t))
	py, goAddr := s.daphne(), s.sidecar()
	talker := s.join(goAddr, s.talker)
	listener := s.join(goAddr, s.listener)

	body := s.upload(py, s.talker, "photo 1.png", []byte("\x89PNG\r\n\x1a\nabc"), "look")
	drf, err := pyjson.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{talker, listener} {
		f := c.expect("new_message")
		if got, want := dump(get(f, "latest_message")), dump(drf); got != want {
			t.Errorf("%s latest_message\n got %s\nwant %s", c.name, got, want)
		}
		msgs := get(f, "messages").(pyjson.List)
		if len(msgs) != 1 || get(msgs[0].(pyjson.Object), "message_type") != "file" {
			t.Errorf("history %s", dump(msgs))
		}
	}
}

// A message sent through the sidecar reaches a Python ws/conversations/
// client as its conversation-list update.
func TestSidecarMessageUpdatesPythonConversationList(t *testing.T) {
	t.Parallel()
	s := newStack(t, redisURL(t))
	py, goAddr := s.daphne(), s.sidecar()
	list := s.inbox(py, s.listener)
	talker := s.join(goAddr, s.talker)
	talker.send(`{"type": "chat_message", "message": "hi"}`)
	talker.expect("new_message")
	f := list.expect("conversation_list_updated")
	if get(f, "latest_conversation_id") != s.conv || !strings.Contains(dump(f), `"last_message_preview": "hi"`) {
		t.Errorf("Python's conversation list frame %s", dump(f))
	}
}

// The reverse: a message sent through Daphne's Python consumer updates the
// sidecar's conversation lists, with the message in them.
func TestPythonMessageUpdatesSidecarConversationList(t *testing.T) {
	t.Parallel()
	s := newStack(t, redisURL(t))
	py, goAddr := s.daphne(), s.sidecar()
	lists := []*client{s.inbox(goAddr, s.listener), s.inbox(goAddr, s.talker)}
	talker := s.join(py, s.talker)
	talker.send(`{"type": "chat_message", "message": "from Python"}`)
	talker.expect("new_message")
	for _, list := range lists {
		f := list.expect("conversation_list_updated")
		if get(f, "latest_conversation_id") != s.conv || !strings.Contains(dump(f), `"last_message_preview": "from Python"`) {
			t.Errorf("%s: frame %s", list.name, dump(f))
		}
	}
}

// Creating, accepting and rejecting conversations through the Python REST
// API reaches the sidecar's notification sockets, byte for byte as
// section 11 has them.
func TestRESTNotificationsReachSidecar(t *testing.T) {
	t.Parallel()
	s := newStack(t, redisURL(t))
	py, goAddr := s.daphne(), s.sidecar()
	other := s.db.CreateUser(t, "other@example.com", "Olga Other", "listener")
	s.tokens[other] = testenv.Mint(secretKey, other)[other]
	listenerNotes := s.notifications(goAddr, other)
	talkerNotes := s.notifications(goAddr, s.talker)

	for i, want := range []int{http.StatusCreated, http.StatusOK} {
		code, body := s.rest(py, "/api/chat/conversations/", s.talker, "application/json",
			strings.NewReader(`{"listener_id": `+itoa(other)+`, "initial_message": "Can we talk? #`+itoa(int64(i))+`"}`))
		if code != want {
			t.Fatalf("create #%d: %d %s, want %d", i, code, body, want)
		}
	}
	var conv int64
	if err := s.db.DB.QueryRow(`SELECT id FROM chat_conversation WHERE listener_id = $1`, other).Scan(&conv); err != nil {
		t.Fatal(err)
	}
	f := listenerNotes.expect("conversation_request") // only the creation notifies
	want := `{"type": "conversation_request", "conversation_id": ` + itoa(conv) + `, "talker_id": ` + itoa(s.talker) +
		`, "talker_email": "talker@example.com", "talker_name": "talker@example.com", "initial_message": "Can we talk? #0", "created_at": `
	if !strings.HasPrefix(dump(f), want) || !strings.HasSuffix(dump(f), `, "message": "New conversation request from talker@example.com"}`) {
		t.Errorf("request frame %s", dump(f))
	}
	code, body := s.rest(py, "/api/chat/conversations/"+itoa(conv)+"/accept/", other, "application/json", strings.NewReader(`{}`))
	if code != http.StatusOK {
		t.Fatalf("accept: %d %s", code, body)
	}
	f = talkerNotes.expect("conversation_accepted")
	if get(f, "conversation_id") != conv || get(f, "listener_name") != "Olga Other" ||
		get(f, "message") != "Your conversation request was accepted by Olga Other" {
		t.Errorf("accepted frame %s", dump(f))
	}
	code, body = s.rest(py, "/api/chat/conversations/"+itoa(conv)+"/reject/", other, "application/json", strings.NewReader(`{}`))
	if code != http.StatusBadRequest {
		t.Errorf("reject an active conversation: %d %s, want 400", code, body)
	}
	// The new listener's sidecar socket lists the request on connect.
	s.db.SetConversationStatus(t, conv, "pending")
	again, _, err := s.dial(goAddr, "/ws/notifications/", other)
	if err != nil {
		t.Fatal(err)
	}
	again.expect("connection_established")
	if f := again.expect("pending_conversations_list"); get(f, "count") != int64(1) {
		t.Errorf("pending list %s", dump(f))
	}
}

// One conversation split across Daphne's Python consumer and the sidecar,
// both ways round: messages, files, typing, read receipts, and the blocking
// timeline enforced on both sides.
func TestMixedConversation(t *testing.T) {
	t.Parallel()
	s := newStack(t, redisURL(t))
	py, goAddr := s.daphne(), s.sidecar()
	for _, tc := range []struct {
		name                 string
		talkerAt, listenerAt string
	}{
		{"talker on Daphne, listener on the sidecar", py, goAddr},
		{"talker on the sidecar, listener on Daphne", goAddr, py},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			talker := s.join(tc.talkerAt, s.talker)
			listener := s.join(tc.listenerAt, s.listener)
			both := []*client{talker, listener}

			// Messages both ways: both sides see the same frame.
			for _, from := range both {
				from.send(`{"type": "chat_message", "message": "from ` + from.name + `"}`)
				a, b := talker.expect("new_message"), listener.expect("new_message")
				if dump(get(a, "latest_message")) != dump(get(b, "latest_message")) {
					t.Errorf("latest_message differs:\n%s\n%s", dump(a), dump(b))
				}
				if c := get(get(a, "latest_message").(pyjson.Object), "content"); c != "from "+from.name {
					t.Errorf("content %v", c)
				}
			}
			// Files both ways.
			for _, from := range both {
				from.send(`{"type": "file_message", "file": "aGVsbG8=", "filename": "hello.txt", "message": "f"}`)
				for _, c := range both {
					f := c.expect("new_message")
					att := get(get(f, "latest_message").(pyjson.Object), "file_attachment")
					if att == nil || get(att.(pyjson.Object), "filename") != "hello.txt" {
						t.Errorf("%s: file frame %s", c.name, dump(f))
					}
				}
			}
			// Typing and read receipts reach the other side only.
			talker.send(`{"type": "typing", "is_typing": true}`)
			if f := listener.expect("typing"); get(f, "user_id") != s.talker {
				t.Errorf("typing %s", dump(f))
			}
			listener.send(`{"type": "typing", "is_typing": false}`)
			talker.expect("typing")
			listener.send(`{"type": "mark_read"}`)
			if f := talker.expect("read_receipt"); get(f, "user_id") != s.listener {
				t.Errorf("read_receipt %s", dump(f))
			}
			talker.send(`{"type": "mark_read"}`)
			listener.expect("read_receipt")

			// T1: block through the REST API.
			s.block(py, true)
			before := s.messages()
			// T2, T3, T4: refused on whichever server the talker is.
			talker.send(`{"type": "chat_message", "message": "Hello listener!"}`)
			talker.expectError("You cannot message this user because they have blocked you or you have blocked them")
			talker.send(`{"type": "file_message", "file": "aGVsbG8=", "filename": "image.jpg"}`)
			talker.expectError("You cannot send files to this user because they have blocked you or you have blocked them")
			talker.send(`{"type": "typing", "is_typing": true}`)
			talker.send(`{"type": "mark_read"}`) // barrier: not subject to blocking
			listener.expect("read_receipt")
			if n := s.messages(); n != before {
				t.Errorf("blocked sends wrote %d messages", n-before)
			}
			// T4': both servers refuse new connections of either user.
			for _, addr := range []string{py, goAddr} {
				s.refused(addr, s.talker)
				s.refused(addr, s.listener)
			}
			// T5, T6.
			s.block(py, false)
			talker.send(`{"type": "chat_message", "message": "Are you there?"}`)
			talker.expect("new_message")
			if c := get(get(listener.expect("new_message"), "latest_message").(pyjson.Object), "content"); c != "Are you there?" {
				t.Errorf("T6 content %v", c)
			}
			talker.ws.Close()
			listener.ws.Close()
		})
	}
}

// Two sidecars and Daphne, clients spread over them: every frame reaches
// every connection exactly once.
func TestTwoSidecarsAndDaphneExactlyOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, redisURL(t))
	servers := []string{s.daphne(), s.sidecar(), s.sidecar()}
	var talkers, listeners []*client
	for _, addr := range servers {
		for i := 0; i < 2; i++ {
			talkers = append(talkers, s.join(addr, s.talker))
			listeners = append(listeners, s.join(addr, s.listener))
		}
	}
	all := append(append([]*client{}, talkers...), listeners...)
	const rounds = 5
	var sent []string
	for r := 0; r < rounds; r++ {
		for i, c := range all {
			content := "m" + itoa(int64(r)) + "-" + itoa(int64(i))
			c.send(`{"type": "chat_message", "message": "` + content + `"}`)
			sent = append(sent, content)
		}
	}
	for _, c := range all {
		seen := map[string]int{}
		for range sent {
			f := c.expect("new_message")
			seen[get(get(f, "latest_message").(pyjson.Object), "content").(string)]++
		}
		for _, content := range sent {
			if seen[content] != 1 {
				t.Errorf("%s got %q %d times", c.name, content, seen[content])
			}
		}
	}
	// Typing from one talker: each listener connection gets it once, and
	// nothing else is pending (the read receipt comes next).
	talkers[0].send(`{"type": "typing", "is_typing": true}`)
	talkers[0].send(`{"type": "mark_read"}`)
	for _, c := range listeners {
		c.expect("typing")
		c.expect("read_receipt")
	}
	if n := s.messages(); n != len(sent) {
		t.Errorf("%d messages saved, want %d", n, len(sent))
	}
}

// Redis stopped and restarted during traffic: a message saved while the
// layer is down stays in the history and its sender gets an error frame;
// the sidecars reconnect and re-join their groups by themselves.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	s := newStack(t, r.URL())
	sa, sb := testenv.StartSidecar(t, s.env), testenv.StartSidecar(t, s.env)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sidecar A:\n%s\nsidecar B:\n%s", sa.Log(), sb.Log())
		}
	})
	talker := s.join(sa.Addr, s.talker)
	listener := s.join(sb.Addr, s.listener)
	talker.send(`{"type": "chat_message", "message": "before"}`)
	talker.expect("new_message")
	listener.expect("new_message")

	r.Stop()
	talker.send(`{"type": "chat_message", "message": "while down"}`)
	talker.expectError("Message saved but could not be delivered to the conversation, please reconnect")
	if n := s.messages(); n != 2 {
		t.Fatalf("%d messages, want 2: the message sent while Redis was down must be saved", n)
	}
	r.Start()

	// Delivery resumes without restarting anything. A message broadcast
	// before both layers have re-joined reaches only some (it is saved), so
	// keep sending until the listener, on the other sidecar, gets one.
	tframes, lframes := talker.frames(), listener.frames()
	go func() {
		for range tframes {
		}
	}()
	deadline := time.After(frameWait)
	var got pyjson.Object
	for i := 0; got == nil; i++ {
		talker.send(`{"type": "chat_message", "message": "after ` + itoa(int64(i)) + `"}`)
		retry := time.After(time.Second)
		for waiting := true; waiting && got == nil; {
			select {
			case f := <-lframes:
				if get(f, "type") == "new_message" {
					got = f
				}
			case <-retry:
				waiting = false
			case <-deadline:
				t.Fatal("delivery did not resume after Redis came back")
			}
		}
	}
	// Its history holds the message sent while Redis was down.
	var contents []string
	for _, m := range get(got, "messages").(pyjson.List) {
		contents = append(contents, get(m.(pyjson.Object), "content").(string))
	}
	if !strings.Contains(strings.Join(contents, "|"), "while down") {
		t.Errorf("history after the restart lacks the message sent while down: %v", contents)
	}
	// Both connections still work the other way too.
	talker.send(`{"type": "typing", "is_typing": true}`)
	for f := range lframes {
		if get(f, "type") == "typing" {
			break
		}
	}
}
