package consumer

import (
	"math"
	"math/big"
	"sync"

	"github.com/chatsidecar/sidecar/pyjson"
)

// deliver hands a group event to the local connections it is for. Events
// run one at a time per group, in arrival order, as each Channels consumer
// handles its events in order; different groups run in parallel.
func (s *Server) deliver(channels []string, event pyjson.Object) {
	s.mu.RLock()
	conns := make([]*conn, 0, len(channels))
	for _, ch := range channels {
		if c, ok := s.conns[ch]; ok {
			conns = append(conns, c)
		}
	}
	s.mu.RUnlock()
	if len(conns) == 0 {
		return
	}
	if !s.events.do(conns[0].group, func() { s.handleEvent(conns, event) }) {
		s.log.Warn("group event dropped: too many waiting", "group", conns[0].group)
	}
}

// handleEvent is PROTOCOL.md section 7 for the local members of one group:
// the work is done once and the same bytes are queued to each member.
func (s *Server) handleEvent(conns []*conn, event pyjson.Object) {
	typ, _ := event.Get("type")
	switch typ {
	case "chat_message", "chat.message":
		s.chatMessageEvent(conns, event)
	case "typing_indicator", "typing.indicator":
		s.relayToOthers(conns, event, pyjson.Object{
			{Key: "type", Value: "typing"},
			{Key: "user_id", Value: get(event, "user_id")},
			{Key: "user_email", Value: get(event, "user_email")},
			{Key: "is_typing", Value: get(event, "is_typing")},
		})
	case "messages_read", "messages.read":
		s.relayToOthers(conns, event, pyjson.Object{
			{Key: "type", Value: "read_receipt"},
			{Key: "user_id", Value: get(event, "user_id")},
		})
	default:
		// Divergence: Python closed every connection of the group with 1011.
		s.log.Warn("ignoring group event without handler", "type", pyjson.Str(typ), "group", conns[0].group)
	}
}

func get(o pyjson.Object, key string) pyjson.Value {
	v, _ := o.Get(key)
	return v
}

// chatMessageEvent sends new_message with the whole history, queried and
// encoded once for all local members, then conversation_update for each
// member as each Python consumer does.
func (s *Server) chatMessageEvent(conns []*conn, event pyjson.Object) {
	convID := conns[0].conv.ID // members of chat_<segment> share the conversation
	history, count, err := s.historyJSON(s.ctx, convID)
	if err != nil {
		s.log.Error("new_message: load history", "conversation", convID, "err", err)
		return
	}
	frame, err := newMessageFrame(history, count, get(event, "message"))
	if err != nil {
		s.log.Error("new_message: encode", "conversation", convID, "err", err)
		return
	}
	for _, c := range conns {
		c.enqueue(frame)
	}

	conv, blocked, err := s.store.Conversation(s.ctx, convID)
	if err != nil || blocked {
		return // gone or blocked: no update, as in Python
	}
	update := pyjson.Object{{Key: "type", Value: "conversation_update"}, {Key: "conversation_id", Value: conv.ID}}
	for _, c := range conns {
		if !conv.HasParticipant(c.user.ID) {
			continue
		}
		for _, uid := range []int64{conv.TalkerID, conv.ListenerID} {
			group := "user_" + itoa(uid) + "_conversations"
			if err := s.layer.GroupSend(s.ctx, group, update); err != nil {
				s.log.Error("conversation_update", "group", group, "err", err)
			}
		}
	}
}

// relayToOthers queues frame to every member whose user did not cause the
// event (Python compares event["user_id"] != self.user.id).
func (s *Server) relayToOthers(conns []*conn, event, frame pyjson.Object) {
	b, err := pyjson.Marshal(frame)
	if err != nil {
		s.log.Error("encode group frame", "err", err)
		return
	}
	from := get(event, "user_id")
	for _, c := range conns {
		if !sameID(from, c.user.ID) {
			c.enqueue(b)
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

// serial runs functions one at a time per key, in order; keys run in
// parallel. A key with max functions waiting refuses more.
type serial struct {
	mu     sync.Mutex
	queues map[string][]func() // present while a goroutine runs the key
	max    int
}

func (s *serial) do(key string, f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues == nil {
		s.queues = map[string][]func(){}
	}
	q, running := s.queues[key]
	if s.max > 0 && len(q) >= s.max {
		return false
	}
	s.queues[key] = append(q, f)
	if !running {
		go s.run(key)
	}
	return true
}

func (s *serial) run(key string) {
	for {
		s.mu.Lock()
		q := s.queues[key]
		if len(q) == 0 {
			delete(s.queues, key)
			s.mu.Unlock()
			return
		}
		f := q[0]
		q[0] = nil
		s.queues[key] = q[1:]
		s.mu.Unlock()
		f()
	}
}
