package consumer

import (
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

func TestOriginAllowed(t *testing.T) {
	hosts := []string{"app.example.com", ".example.org", "10.0.0.5:8000", "[::1]", "https://secure.example.net"}
	for _, tc := range []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"http://app.example.com:9999", true},
		{"https://APP.example.com", true},
		{"https://example.org", true},
		{"https://a.b.example.org", true},
		{"https://badexample.org", false},
		{"https://example.com", false},
		{"http://10.0.0.5", true},
		{"http://[::1]:3000", true},
		{"https://secure.example.net", true},
		{"http://secure.example.net", false},
		{"null", false},
		{"", false},
		{"file://", false},
		{"%zz", false},
	} {
		if got := originAllowed([]string{tc.origin}, hosts); got != tc.want {
			t.Errorf("origin %q: %v, want %v", tc.origin, got, tc.want)
		}
	}
	if !originAllowed(nil, nil) {
		t.Error("no Origin header must be allowed (divergence)")
	}
	if originAllowed([]string{"https://x.com"}, nil) {
		t.Error("empty ALLOWED_HOSTS must refuse an Origin")
	}
	if !originAllowed([]string{"null"}, []string{"*"}) {
		t.Error("* must allow Origin: null")
	}
}

func TestOriginWellFormed(t *testing.T) {
	for _, tc := range []struct {
		header []string
		want   bool
	}{
		{nil, true}, {[]string{"https://a.com"}, true}, {[]string{"null"}, true}, {[]string{" NULL "}, true},
		{[]string{"file://"}, true}, {[]string{"http://a.com:8080"}, true},
		{[]string{"garbage"}, false}, {[]string{"http://"}, false}, {[]string{"%zz"}, false},
		{[]string{"http://a.com:99999"}, false}, {[]string{"http://a.com:x"}, false},
		{[]string{"https://a.com", "https://a.com"}, false},
	} {
		if got := originWellFormed(tc.header); got != tc.want {
			t.Errorf("originWellFormed(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{10 << 20: "10 MB", 1024: "1 KB", 1500: "1500 bytes", 3 << 19: "1536 KB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestChatPath(t *testing.T) {
	for path, want := range map[string]string{
		"/ws/chat/7/": "7", "/ws/chat/7": "7", "/ws/chat/007/": "007", "/ws/chat/abc_1/": "abc_1",
		"/ws/chat/é/": "é", "/ws/chat/": "", "/ws/chat/7//": "", "/ws/chat/a-b/": "", "/ws/chat/7/x/": "",
		"/ws/chat/%37/": "",
	} {
		m := chatPath.FindStringSubmatch(path)
		got := ""
		if m != nil {
			got = m[1]
		}
		if got != want {
			t.Errorf("%s: segment %q, want %q", path, got, want)
		}
	}
}

func TestSameID(t *testing.T) {
	big5, _ := new(big.Int).SetString("5", 10)
	huge, _ := new(big.Int).SetString("99999999999999999999", 10)
	for _, tc := range []struct {
		v    pyjson.Value
		id   int64
		want bool
	}{
		{int64(5), 5, true}, {int64(6), 5, false}, {5.0, 5, true}, {5.5, 5, false},
		{"5", 5, false}, {nil, 5, false}, {true, 1, true}, {false, 0, true}, {true, 5, false},
		{big5, 5, true}, {huge, 5, false},
	} {
		if got := sameID(tc.v, tc.id); got != tc.want {
			t.Errorf("sameID(%#v, %d) = %v", tc.v, tc.id, got)
		}
	}
}

// eventQueues keep order per group, run groups in parallel, batch what
// arrives while a batch runs, and bound what waits.
func TestEventQueues(t *testing.T) {
	var q eventQueues
	var mu sync.Mutex
	got := map[string][]int64{}
	var wg sync.WaitGroup
	run := func(group string, batch []delivery) {
		for _, d := range batch {
			mu.Lock()
			got[group] = append(got[group], get(d.event, "i").(int64))
			mu.Unlock()
			wg.Done()
		}
	}
	for i := 0; i < 200; i++ {
		for _, g := range []string{"a", "b", "c"} {
			wg.Add(1)
			if !q.add(g, delivery{event: pyjson.Object{{Key: "i", Value: int64(i)}}}, run) {
				t.Fatal("refused without a bound")
			}
		}
	}
	wg.Wait()
	for g, seq := range got {
		for i, v := range seq {
			if v != int64(i) {
				t.Fatalf("group %s ran out of order: %v", g, seq[:i+1])
			}
		}
	}
	bounded := eventQueues{max: 1}
	block := make(chan struct{})
	var batches [][]delivery
	hold := func(_ string, batch []delivery) {
		mu.Lock()
		batches = append(batches, batch)
		mu.Unlock()
		<-block
	}
	bounded.add("k", delivery{}, hold)
	waitFor(t, "the first batch to run", func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })
	if !bounded.add("k", delivery{}, hold) {
		t.Fatal("first waiting event refused")
	}
	if bounded.add("k", delivery{}, hold) {
		t.Fatal("second waiting event accepted past max 1")
	}
	if !bounded.add("other", delivery{}, hold) {
		t.Fatal("other group refused")
	}
	close(block)
}

type fakeMedia struct{ Media }

func (fakeMedia) URL(p string) string { return "https://x.test/media/" + p }

func TestMessageObject(t *testing.T) {
	m := chat.Message{
		ID: 42, ConversationID: 7, Content: "Hello", MessageType: "file",
		Sender:    chat.User{ID: 5, Email: "t@example.com", UserType: "talker"},
		CreatedAt: time.Date(2026, 1, 14, 10, 0, 0, 123456000, time.UTC),
		Attachment: &chat.Attachment{ID: 3, File: "chat_files/2026/01/14/a.png", Filename: "a.png",
			FileSize: 10, FileType: "image/png"},
	}
	got, err := pyjson.Marshal(messageObject(m, fakeMedia{}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id": 42, "conversation": 7, "sender": {"id": 5, "email": "t@example.com", "full_name": "t@example.com", "user_type": "talker"}, ` +
		`"content": "Hello", "message_type": "file", "created_at": "2026-01-14T10:00:00.123456+00:00", "is_read": false, ` +
		`"file_attachment": {"id": 3, "filename": "a.png", "file_url": "https://x.test/media/chat_files/2026/01/14/a.png", "file_size": 10, "file_type": "image/png"}}`
	if string(got) != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestHostAllowed(t *testing.T) {
	allowed := []string{"localhost", "127.0.0.1", "[::1]", ".example.org"}
	for host, want := range map[string]bool{
		"localhost:8001": true, "127.0.0.1:8001": true, "[::1]:8001": true, "LOCALHOST": true,
		"a.example.org": true, "example.org:80": true, "evil.com": false, "127.0.0.2:8001": false, "": false,
		"localhost.evil.com": false,
	} {
		if got := HostAllowed(host, allowed); got != want {
			t.Errorf("HostAllowed(%q) = %v, want %v", host, got, want)
		}
	}
	if !HostAllowed("anything:1", []string{"*"}) {
		t.Error("* must allow every host")
	}
}

// appendMessage writes exactly what pyjson writes of messageObject.
func TestAppendMessage(t *testing.T) {
	base := chat.Message{ID: 42, ConversationID: 7, Content: "Hello", MessageType: "text",
		Sender:    chat.User{ID: 5, Email: "t@example.com", FullName: "Tom", UserType: "talker"},
		CreatedAt: time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC)}
	withFile := base
	withFile.MessageType, withFile.IsRead = "file", true
	withFile.Attachment = &chat.Attachment{ID: 3, File: "chat_files/é \"q\".png", Filename: "é \"q\".png", FileSize: 1 << 40, FileType: "image/png"}
	odd := base
	odd.Content = "tab\t nl\n quote\" bs\\ nul\x00 del\x7f é 😀 \u2028 invalid\xff"
	odd.Sender.FullName = ""
	odd.CreatedAt = time.Date(1, 1, 1, 0, 0, 0, 1000, time.FixedZone("x", 3600))
	odd.ID, odd.ConversationID = -1, 0
	for _, m := range []chat.Message{base, withFile, odd} {
		want, err := pyjson.Marshal(messageObject(m, fakeMedia{}))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMessage([]byte("x"), m, fakeMedia{}); string(got) != "x"+string(want) {
			t.Errorf("\n got %s\nwant x%s", got, want)
		}
	}
}

func FuzzAppendMessage(f *testing.F) {
	f.Add(int64(1), "hi", "a@b.c", "", int64(0), "a.png", int64(1700000000123456))
	f.Add(int64(-9), "\x00\xff😀\"", "é", "Tom", int64(3), "\\", int64(0))
	f.Fuzz(func(t *testing.T, id int64, content, email, name string, att int64, filename string, micros int64) {
		m := chat.Message{ID: id, ConversationID: id / 3, Content: content, MessageType: "text",
			Sender:    chat.User{ID: id / 7, Email: email, FullName: name, UserType: "listener"},
			CreatedAt: time.UnixMicro(micros % (1 << 50))}
		if att != 0 {
			m.Attachment = &chat.Attachment{ID: att, File: filename, Filename: filename, FileSize: att, FileType: content}
		}
		want, err := pyjson.Marshal(messageObject(m, fakeMedia{}))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMessage(nil, m, fakeMedia{}); string(got) != string(want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	})
}
