package consumer

import (
	"context"
	"errors"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// chatPath is Channels' route ws/chat/(?P<conversation_id>\w+)/ with the
// trailing slash optional; \w is Unicode, as in Python's re.
var chatPath = regexp.MustCompile(`^/ws/chat/([\p{L}\p{N}\p{Mn}\p{Pc}]+)/?$`)

// chatRoute is ws/chat/<conversation_id>/ (docs/PROTOCOL.md sections 4–7).
func (s *Server) chatRoute() *route {
	return &route{
		name: "chat",
		match: func(path string) (string, bool) {
			m := chatPath.FindStringSubmatch(path)
			if m == nil {
				return "", false
			}
			return m[1], true
		},
		admit:         s.admitChat,
		connectFrames: s.chatConnectFrames,
		handle:        func(c *conn, typ int, data []byte) { c.handleChat(typ, data) },
		events:        s.chatEvents,
	}
}

// admitChat checks the user, then the conversation, in the order of
// section 4, with one query for both. The segment is used as written
// everywhere but the database lookup.
func (s *Server) admitChat(ctx context.Context, c *conn, userID int64, segment string) error {
	convID, err := strconv.ParseInt(segment, 10, 64)
	if err != nil || convID < 1 || !isASCIIDigits(segment) {
		if err := s.admitUser(ctx, c, userID); err != nil {
			return err
		}
		return refuse("conversation", errors.New("conversation id is not a number in range"))
	}
	user, conv, blocked, err := s.store.UserConversation(ctx, userID, convID)
	if errors.Is(err, chat.ErrConversationGone) {
		err = nil // the user's checks come first
	}
	if err := s.checkUser(c, user, err); err != nil {
		return err
	}
	switch {
	case conv.ID == 0:
		return refuse("conversation", chat.ErrConversationGone)
	case blocked:
		return refuse("blocked", errors.New("conversation is blocked"))
	case !conv.HasParticipant(c.user.ID):
		return refuse("conversation", errors.New("user is not a participant"))
	}
	c.conv, c.segment, c.group = conv, segment, "chat_"+segment
	return nil
}

func isASCIIDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// chatConnectFrames are connection_established, api_info and the history.
func (s *Server) chatConnectFrames(ctx context.Context, c *conn) ([]*frame, error) {
	h, err := s.histories.get(ctx, c.conv.ID, nil)
	if err != nil {
		return nil, err
	}
	defer h.list.release()
	head, tail := historyFrameParts(h.count)
	return []*frame{
		newFrame(s.mem, "connection_established", connectedFrame()),
		newFrame(s.mem, "api_info", apiInfoFrame(s.cfg.PublicBaseURL, c.segment)),
		wrap("conversation_history", head, h.list, tail),
	}, nil
}

// chatEvents is section 7 for the local members of one chat group, one
// batch at a time: each run of chat_message events shares one history,
// loaded after all of them arrived, and each frame is built once for every
// member.
func (s *Server) chatEvents(group string, batch []delivery) {
	for i := 0; i < len(batch); {
		d := batch[i]
		switch d.typ() {
		case "chat_message", "chat.message":
			j := i + 1
			for j < len(batch) && (batch[j].typ() == "chat_message" || batch[j].typ() == "chat.message") {
				j++
			}
			s.newMessages(batch[i:j])
			i = j
			continue
		case "typing_indicator", "typing.indicator":
			s.relayToOthers(d, "typing", pyjson.Object{
				{Key: "type", Value: "typing"},
				{Key: "user_id", Value: get(d.event, "user_id")},
				{Key: "user_email", Value: get(d.event, "user_email")},
				{Key: "is_typing", Value: get(d.event, "is_typing")},
			})
		case "messages_read", "messages.read":
			s.relayToOthers(d, "read_receipt", pyjson.Object{
				{Key: "type", Value: "read_receipt"},
				{Key: "user_id", Value: get(d.event, "user_id")},
			})
		default:
			// Divergence: Python's consumer raised "No handler for message
			// type" and every connection of the group was closed with 1011.
			s.log.Warn("ignoring group event without handler", "type", clip(pyjson.Str(get(d.event, "type"))), "group", group)
		}
		s.metrics.eventHandled("chat", d.received)
		i++
	}
}

// newMessages sends new_message for each chat_message event of a run, then
// conversation_update to both participants' groups, once per event, as
// each Python consumer that handled it did for its own user.
func (s *Server) newMessages(run []delivery) {
	convID := run[0].conns[0].conv.ID // members of chat_<segment> share the conversation
	saved := s.saves.all(run)         // nil: not all saved here
	h, err := s.histories.get(s.ctx, convID, saved)
	if err != nil {
		// The members would miss messages: have them reconnect for a
		// fresh history, as Python's consumer crashed with 1011 here.
		s.log.Error("new_message: load history", "conversation", convID, "err", err)
		code, reason := websocket.CloseInternalServerErr, "server error"
		if errors.Is(err, errBusy) {
			code, reason = closeTryAgainLater, "server busy"
		}
		for _, d := range run {
			for _, c := range d.conns {
				c.end(code, reason)
			}
		}
		return
	}
	defer h.list.release()
	for _, d := range run {
		f := wrap("new_message", newMessageHead, h.list, newMessageTail(h.count, get(d.event, "message")))
		for _, c := range d.conns {
			c.enqueue(f)
		}
		f.release()
		s.metrics.eventHandled("chat", d.received)
	}
	// Python re-read the conversation to check it still exists, is not
	// blocked and has the member as a participant. A message this process
	// saved was checked so by its save, in the statement that wrote it.
	conv := run[0].conns[0].conv
	if saved == nil {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DBTimeout)
		c, blocked, err := s.store.Conversation(ctx, convID)
		cancel()
		if err != nil || blocked {
			return // gone or blocked: no update, as in Python
		}
		conv = c
	}
	for _, d := range run {
		if !anyParticipant(d.conns, conv) {
			continue
		}
		for _, uid := range []int64{conv.TalkerID, conv.ListenerID} {
			s.sendUpdate("user_"+itoa(uid)+"_conversations", conv.ID)
		}
	}
}

func anyParticipant(conns []*conn, conv chat.Conversation) bool {
	for _, c := range conns {
		if conv.HasParticipant(c.user.ID) {
			return true
		}
	}
	return false
}

// relayToOthers queues frame to every member whose user did not cause the
// event (Python compares event["user_id"] != self.user.id).
func (s *Server) relayToOthers(d delivery, kind string, frame pyjson.Object) {
	b, err := pyjson.Marshal(frame)
	if err != nil {
		s.log.Error("encode group frame", "err", err)
		return
	}
	f := newFrame(s.mem, kind, b)
	defer f.release()
	from := get(d.event, "user_id")
	for _, c := range d.conns {
		if !sameID(from, c.user.ID) {
			c.enqueue(f)
		}
	}
}

// sameID is Python's == between a JSON value and an int user id.
func sameID(v pyjson.Value, id int64) bool {
	switch x := v.(type) {
	case int64:
		return x == id
	case float64:
		return x == float64(id) && !math.IsInf(x, 0)
	case *big.Int:
		return x.IsInt64() && x.Int64() == id
	case bool:
		// In Python True == 1 and False == 0.
		return (x && id == 1) || (!x && id == 0)
	}
	return false
}

// recentSaves remembers the messages this process saved lately, so the
// events they cause need not read the conversation again.
type recentSaves struct {
	mu   sync.Mutex
	ids  map[int64]struct{}
	ring [recentSavesMax]int64
	next int
}

// recentSavesMax bounds what is remembered: enough for every event in
// flight.
const recentSavesMax = 4096

func (r *recentSaves) add(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids == nil {
		r.ids = make(map[int64]struct{}, recentSavesMax)
	}
	delete(r.ids, r.ring[r.next])
	r.ring[r.next] = id
	r.next = (r.next + 1) % recentSavesMax
	r.ids[id] = struct{}{}
}

// all returns the ids of run's messages when every event of run is about
// a message saved here, else nil.
func (r *recentSaves) all(run []delivery) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]int64, 0, len(run))
	for _, d := range run {
		msg, _ := get(d.event, "message").(pyjson.Object)
		id, ok := get(msg, "id").(int64)
		if !ok {
			return nil
		}
		if _, saved := r.ids[id]; !saved {
			return nil
		}
		ids = append(ids, id)
	}
	return ids
}
