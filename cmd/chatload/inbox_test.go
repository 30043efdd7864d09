package main

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// list writes a list frame as the servers do (Python's json.dumps layout),
// with only the keys the check reads.
func list(typ string, items ...string) []byte {
	return []byte(`{"type": "` + typ + `", "conversations": [` + strings.Join(items, ", ") + `], "count": ` +
		strconv.Itoa(len(items)) + `}`)
}

func item(id int64, total int, preview string) string {
	return `{"id": ` + strconv.FormatInt(id, 10) + `, "last_message_preview": "` + preview + `", "total_messages": ` + strconv.Itoa(total) + `}`
}

func TestStaleness(t *testing.T) {
	long := "1714000000000000000 c7-12 " + strings.Repeat("x", 60) // longer than a preview
	want := map[int64]convState{
		7: {total: 12, latest: long},
		8: {total: 0, latest: ""},
	}
	cases := []struct {
		name  string
		frame []byte
		convs []int64
		stale string // a part of the reason; "" for current
	}{
		{"current", list("conversation_list_updated", item(3, 3, "seed"), item(7, 12, preview(long))), []int64{7}, ""},
		{"current initial list", list("conversation_list", item(7, 12, preview(long))), []int64{7}, ""},
		{"empty conversation", list("conversation_list_updated", item(8, 0, "")), []int64{8}, ""},
		{"both of a user's", list("conversation_list_updated", item(8, 0, ""), item(7, 12, preview(long))), []int64{7, 8}, ""},
		{"count behind", list("conversation_list_updated", item(7, 11, preview(long))), []int64{7}, "total_messages 11, database 12"},
		{"preview of an older message", list("conversation_list_updated", item(7, 12, "1714000000000000000 c7-11")), []int64{7}, "last_message_preview"},
		{"preview not cut", list("conversation_list_updated", item(7, 12, long)), []int64{7}, "last_message_preview"},
		{"missing", list("conversation_list_updated", item(3, 3, "seed")), []int64{7}, "missing from the list"},
		{"one of two behind", list("conversation_list_updated", item(7, 12, preview(long)), item(8, 1, "x")), []int64{7, 8}, "conversation 8"},
		{"no frame", nil, []int64{7}, "no list frame"},
		{"not JSON", []byte(`{"type": "conversation_list_updated", "conv`), []int64{7}, "undecodable"},
		{"unknown conversation", list("conversation_list_updated"), []int64{9}, "not in the database"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := staleness(c.frame, c.convs, want)
			if c.stale == "" && got != "" {
				t.Fatalf("staleness = %q, want current", got)
			}
			if c.stale != "" && !strings.Contains(got, c.stale) {
				t.Fatalf("staleness = %q, want a reason containing %q", got, c.stale)
			}
		})
	}
}

func TestPreview(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{strings.Repeat("a", 50), strings.Repeat("a", 50)},
		{strings.Repeat("a", 51), strings.Repeat("a", 50)},
		// Python counts code points, not bytes.
		{strings.Repeat("é", 60), strings.Repeat("é", 50)},
	} {
		if got := preview(c.in); got != c.want {
			t.Errorf("preview(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	sent := time.Unix(1000, 0)
	final := map[int64]convState{1: {total: 5, latest: "m5"}, 2: {total: 3, latest: "n3"}}
	lastSent := map[int64]time.Time{1: sent, 2: sent.Add(time.Second)}
	inboxes := []*inbox{
		// listener and talker of conversation 1: current, 40 ms and 90 ms after the final send
		{user: 10, convs: []int64{1}, updates: 4, last: list("conversation_list_updated", item(1, 5, "m5")), lastAt: sent.Add(40 * time.Millisecond)},
		{user: 11, convs: []int64{1}, updates: 5, last: list("conversation_list_updated", item(1, 5, "m5")), lastAt: sent.Add(90 * time.Millisecond)},
		// conversation 2's listener lost the last update; its talker's socket was closed by the server
		{user: 20, convs: []int64{2}, updates: 2, last: list("conversation_list_updated", item(2, 2, "n2")), lastAt: sent},
		{user: 21, convs: []int64{2}, updates: 1, last: list("conversation_list", item(2, 0, "")), lastAt: sent, early: errTest},
	}
	r := check(inboxes, final, lastSent)
	if r.sockets != 4 || r.frames != 12 {
		t.Errorf("sockets, frames = %d, %d; want 4, 12", r.sockets, r.frames)
	}
	if len(r.stale) != 2 || !strings.HasPrefix(r.stale[0], "user 20: ") || !strings.HasPrefix(r.stale[1], "user 21: ") {
		t.Errorf("stale = %q, want users 20 and 21", r.stale)
	}
	if r.closedEarly != 1 || !strings.HasPrefix(r.firstEarly, "user 21: ") {
		t.Errorf("closed early = %d (%q), want 1 (user 21)", r.closedEarly, r.firstEarly)
	}
	if len(r.lags) != 2 || r.lags[0] != 40*time.Millisecond || r.lags[1] != 90*time.Millisecond {
		t.Errorf("lags = %v, want [40ms 90ms] (current inboxes only)", r.lags)
	}
}

var errTest = testError("websocket: close 1011 (internal server error)")

type testError string

func (e testError) Error() string { return string(e) }

func TestFrameType(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"type": "conversation_list_updated", "conversations": []}`, "conversation_list_updated"},
		{`{"conversations": [], "type": "conversation_list"}`, "conversation_list"}, // not first: decoded
		{`{"type":"conversation_list"}`, "conversation_list"},
		{`not json`, ""},
	} {
		if got := frameType([]byte(c.in)); got != c.want {
			t.Errorf("frameType(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	p, err := parseMetrics(strings.NewReader(`# HELP sidecar_inbox_updates_total Conversation-list work.
# TYPE sidecar_inbox_updates_total counter
sidecar_inbox_updates_total{kind="computed"} 120
sidecar_inbox_updates_total{kind="merged"} 30
sidecar_group_events_total{route="chat",type="chat_message"} 5
sidecar_group_events_total{route="conversations",type="conversation_update"} 150
sidecar_redis_over_capacity_total 7
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sidecar_inbox_updates_total", []string{`kind="computed"`}, 120},
		{"sidecar_inbox_updates_total", nil, 150},
		{"sidecar_group_events_total", []string{`route="conversations"`, `type="conversation_update"`}, 150},
		{"sidecar_redis_over_capacity_total", nil, 7},
		{"sidecar_absent_total", nil, 0},
	} {
		if got := p.sum(c.name, c.labels...); got != c.want {
			t.Errorf("sum(%s, %v) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestAwait(t *testing.T) {
	reply := func(typ, text string) frame {
		var f frame
		f.Type = typ
		f.LatestMessage.Content = text
		return f
	}
	r := &result{}
	replies := make(chan frame, 4)
	never := make(chan time.Time)

	// A late reply to an earlier message is skipped; its own counts.
	replies <- reply("new_message", "1 c1-1")
	replies <- reply("new_message", "2 c1-2")
	if err := r.await(replies, never, "2 c1-2"); err != nil {
		t.Fatal(err)
	}
	// An error frame answers the message.
	replies <- reply("error", "")
	if err := r.await(replies, never, "3 c1-3"); err != nil {
		t.Fatal(err)
	}
	// No reply before the timeout: lost.
	expired := make(chan time.Time, 1)
	expired <- time.Now()
	if err := r.await(replies, expired, "4 c1-4"); err != nil {
		t.Fatal(err)
	}
	if r.sent != 1 || r.late != 1 || r.errors != 1 || r.lost != 1 {
		t.Errorf("sent, late, errors, lost = %d, %d, %d, %d; want 1 each", r.sent, r.late, r.errors, r.lost)
	}
	close(replies)
	if err := r.await(replies, never, "5 c1-5"); err == nil {
		t.Error("await on a closed connection: no error")
	}
}

func TestTopDeltas(t *testing.T) {
	calls := func(n int64) queryStats { return queryStats{calls: n, execMS: float64(n) / 10} }
	before := roleCounts{byQuery: map[string]queryStats{"SELECT a": calls(10), "INSERT b": calls(5), "SELECT old": calls(7)}}
	after := roleCounts{byQuery: map[string]queryStats{"SELECT a": calls(30), "INSERT b": calls(25), "SELECT old": calls(7), "SELECT new": calls(3)}}
	got := topDeltas(before, after, 2)
	want := []queryDelta{{"INSERT b", queryStats{20, 2, 0}}, {"SELECT a", queryStats{20, 2, 0}}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("topDeltas = %v, want %v (ties by text, unchanged statements left out)", got, want)
	}
	if got := topDeltas(roleCounts{}, after, 10); len(got) != 4 {
		t.Errorf("a role new in the run: %d statements, want 4", len(got))
	}
	if got := shortQuery("SELECT  a,\n\tb FROM t"); got != "SELECT a, b FROM t" {
		t.Errorf("shortQuery = %q", got)
	}
}

func TestParseFrame(t *testing.T) {
	latest := `{"id": 9, "content": "123 c1-2 \"latest_message\": x", "sender": {"id": 1}}`
	for _, c := range []struct {
		name, in     string
		typ, content string
		ok           bool
	}{
		{"new_message", `{"type": "new_message", "messages": [{"id": 8, "content": "\"latest_message\": {"}, ` + latest + `], "count": 2, "latest_message": ` + latest + `}`,
			"new_message", `123 c1-2 "latest_message": x`, true},
		{"compact layout: decoded whole", `{"type":"new_message","messages":[],"count":0,"latest_message":{"content":"a"}}`, "new_message", "a", true},
		{"error", `{"type": "error", "message": "Too many messages"}`, "error", "", true},
		{"other", `{"type": "read_receipt", "user_id": 3}`, "read_receipt", "", true},
		{"not JSON", `nope`, "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, ok := parseFrame([]byte(c.in))
			if ok != c.ok || f.Type != c.typ || f.LatestMessage.Content != c.content {
				t.Errorf("parseFrame = %+v, %t; want type %q content %q, %t", f, ok, c.typ, c.content, c.ok)
			}
		})
	}
}
