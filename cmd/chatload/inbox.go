package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/lib/pq"

	"github.com/chatsidecar/sidecar/chat"
)

// maxStaleShown bounds the stale inboxes printed one by one.
const maxStaleShown = 5

// inbox is one participant's ws/conversations/ socket. Its reader owns
// the fields below ws until done is closed.
type inbox struct {
	user  int64
	convs []int64 // the load conversations the user is in
	ws    *websocket.Conn
	done  chan struct{}

	updates int       // conversation_list_updated frames
	last    []byte    // the last conversation_list or conversation_list_updated frame
	lastAt  time.Time // when last arrived
	early   error     // why reading stopped, when it stopped before the tool closed the socket
}

// inboxes are every participant's inbox socket.
type inboxes struct {
	all       []*inbox
	lastFrame atomic.Int64 // UnixNano of the latest list frame on any socket
	closing   atomic.Bool  // set before the tool closes the sockets
	closeOnce sync.Once
}

// connectInboxes connects the talker and the listener of every pair to
// base's ws/conversations/, reads each connect's two frames
// (connection_established, conversation_list), then starts the readers.
func connectInboxes(base, secret string, pairs []*pair) (*inboxes, error) {
	byUser := map[int64]*inbox{}
	ib := &inboxes{}
	for _, p := range pairs {
		for _, u := range []int64{p.listener, p.talker} {
			if in := byUser[u]; in != nil {
				in.convs = append(in.convs, p.conv)
				continue
			}
			in := &inbox{user: u, convs: []int64{p.conv}, done: make(chan struct{})}
			byUser[u] = in
			ib.all = append(ib.all, in)
		}
	}
	for i, in := range ib.all {
		ws, list, err := dialFrames(base, "/ws/conversations/?token="+token(secret, in.user), 2)
		if err != nil {
			for _, prev := range ib.all[:i] {
				prev.ws.Close()
			}
			return nil, fmt.Errorf("connect the inbox of user %d: %w", in.user, err)
		}
		if t := frameType(list); t != "conversation_list" {
			ws.Close()
			for _, prev := range ib.all[:i] {
				prev.ws.Close()
			}
			return nil, fmt.Errorf("inbox of user %d: second frame is %q, want conversation_list", in.user, t)
		}
		in.ws, in.last, in.lastAt = ws, list, time.Now()
	}
	for _, in := range ib.all {
		go in.read(ib)
	}
	return ib, nil
}

// read reads list frames until the socket fails or is closed.
func (in *inbox) read(ib *inboxes) {
	defer close(in.done)
	for {
		_, data, err := in.ws.ReadMessage()
		if err != nil {
			if !ib.closing.Load() {
				in.early = err
			}
			return
		}
		t := frameType(data)
		if t != "conversation_list" && t != "conversation_list_updated" {
			continue
		}
		now := time.Now()
		if t == "conversation_list_updated" {
			in.updates++
		}
		in.last, in.lastAt = data, now
		ib.lastFrame.Store(now.UnixNano())
	}
}

// frameType is a frame's "type". Both servers write it first, as Python's
// json.dumps does, so it is read without decoding the (large) list.
func frameType(data []byte) string {
	const head = `{"type": "`
	if rest, ok := bytes.CutPrefix(data, []byte(head)); ok {
		if end := bytes.IndexByte(rest, '"'); end >= 0 {
			return string(rest[:end])
		}
	}
	var f struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(data, &f)
	return f.Type
}

// waitQuiet waits until no list frame has arrived for quiet since the
// talkers stopped, or until limit has passed since. It returns how long
// it waited from stopped, and whether the limit ended the wait.
func (ib *inboxes) waitQuiet(stopped time.Time, quiet, limit time.Duration) (time.Duration, bool) {
	for {
		last := time.Unix(0, ib.lastFrame.Load())
		if last.Before(stopped) {
			last = stopped
		}
		now := time.Now()
		if now.Sub(last) >= quiet {
			return now.Sub(stopped), false
		}
		if now.Sub(stopped) >= limit {
			return now.Sub(stopped), true
		}
		time.Sleep(min(quiet-now.Sub(last), limit-now.Sub(stopped)))
	}
}

// close closes every socket and waits for the readers.
func (ib *inboxes) close() {
	ib.closeOnce.Do(func() {
		ib.closing.Store(true)
		for _, in := range ib.all {
			in.ws.Close()
		}
		for _, in := range ib.all {
			<-in.done
		}
	})
}

// convState is a conversation's final state in the database.
type convState struct {
	total  int
	latest string // content of the latest message ('' when none)
}

// finalStates reads the count and latest message of every load
// conversation, the latest as the list picks it (created_at, then id).
func finalStates(db *sql.DB, pairs []*pair) (map[int64]convState, error) {
	ids := make([]int64, len(pairs))
	for i, p := range pairs {
		ids[i] = p.conv
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT c.id,
		(SELECT count(*) FROM chat_message m WHERE m.conversation_id = c.id),
		COALESCE((SELECT m.content FROM chat_message m WHERE m.conversation_id = c.id
			ORDER BY m.created_at DESC, m.id DESC LIMIT 1), '')
		FROM chat_conversation c WHERE c.id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, fmt.Errorf("read the final state of the conversations: %w", err)
	}
	defer rows.Close()
	out := make(map[int64]convState, len(ids))
	for rows.Next() {
		var id int64
		var s convState
		if err := rows.Scan(&id, &s.total, &s.latest); err != nil {
			return nil, fmt.Errorf("read the final state of the conversations: %w", err)
		}
		out[id] = s
	}
	return out, rows.Err()
}

// listFrame is what the check reads of a list frame.
type listFrame struct {
	Type          string `json:"type"`
	Conversations []struct {
		ID            int64  `json:"id"`
		TotalMessages int    `json:"total_messages"`
		Preview       string `json:"last_message_preview"`
	} `json:"conversations"`
}

// staleness says why a list frame does not show the final state of
// convs, or "" when it does: for each, total_messages must be the final
// count and last_message_preview the latest message's first
// chat.PreviewChars characters.
func staleness(frame []byte, convs []int64, want map[int64]convState) string {
	if len(frame) == 0 {
		return "no list frame"
	}
	var f listFrame
	if err := json.Unmarshal(frame, &f); err != nil {
		return "undecodable list frame: " + err.Error()
	}
	for _, id := range convs {
		w, ok := want[id]
		if !ok {
			return fmt.Sprintf("conversation %d: not in the database", id)
		}
		found := false
		for _, it := range f.Conversations {
			if it.ID != id {
				continue
			}
			found = true
			if it.TotalMessages != w.total {
				return fmt.Sprintf("conversation %d: total_messages %d, database %d", id, it.TotalMessages, w.total)
			}
			if p := preview(w.latest); it.Preview != p {
				return fmt.Sprintf("conversation %d: last_message_preview %q, database %q", id, it.Preview, p)
			}
		}
		if !found {
			return fmt.Sprintf("conversation %d: missing from the list", id)
		}
	}
	return ""
}

// preview is s cut to its first chat.PreviewChars code points, as Python's
// content[:50].
func preview(s string) string {
	n := 0
	for i := range s {
		if n == chat.PreviewChars {
			return s[:i]
		}
		n++
	}
	return s
}

// inboxReport is what the inbox check found.
type inboxReport struct {
	sockets     int
	frames      int             // conversation_list_updated frames received
	stale       []string        // why each stale inbox is stale
	closedEarly int             // sockets the server ended before the tool closed them
	firstEarly  string          // why the first of them ended
	lags        []time.Duration // final message sent → last list frame, for inboxes that are current
	waited      time.Duration
	timedOut    bool
}

// check checks every inbox's last list frame against final, the
// database's state of each conversation; lastSent maps a conversation to
// the send time of its final message. Call it after the readers are done.
func check(all []*inbox, final map[int64]convState, lastSent map[int64]time.Time) *inboxReport {
	r := &inboxReport{sockets: len(all)}
	for _, in := range all {
		r.frames += in.updates
		if in.early != nil {
			if r.closedEarly == 0 {
				r.firstEarly = fmt.Sprintf("user %d: %v", in.user, in.early)
			}
			r.closedEarly++
		}
		if why := staleness(in.last, in.convs, final); why != "" {
			r.stale = append(r.stale, fmt.Sprintf("user %d: %s", in.user, why))
			continue
		}
		var sent time.Time
		for _, c := range in.convs {
			if t := lastSent[c]; t.After(sent) {
				sent = t
			}
		}
		if !sent.IsZero() {
			r.lags = append(r.lags, in.lastAt.Sub(sent))
		}
	}
	sort.Slice(r.lags, func(i, j int) bool { return r.lags[i] < r.lags[j] })
	return r
}

func (r *inboxReport) print(messages int) {
	perMessage := 0.0
	if messages > 0 {
		perMessage = float64(r.frames) / float64(messages)
	}
	var lagMax time.Duration
	if len(r.lags) > 0 {
		lagMax = r.lags[len(r.lags)-1]
	}
	fmt.Printf("inboxes=%d inbox_frames=%d frames_per_message=%.2f stale=%d closed_early=%d lag_p50=%s lag_max=%s quiet_after=%s timed_out=%s\n",
		r.sockets, r.frames, perMessage, len(r.stale), r.closedEarly,
		quantile(r.lags, 0.5).Round(time.Millisecond), lagMax.Round(time.Millisecond),
		r.waited.Round(time.Millisecond), strconv.FormatBool(r.timedOut))
	if r.firstEarly != "" {
		fmt.Printf("  closed early: %s\n", r.firstEarly)
	}
	for i, s := range r.stale {
		if i == maxStaleShown {
			fmt.Printf("  stale: ... %d more\n", len(r.stale)-maxStaleShown)
			break
		}
		fmt.Printf("  stale: %s\n", s)
	}
}
