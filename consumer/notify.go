package consumer

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// notifyPath is Channels' route ws/notifications/?$.
var notifyPath = regexp.MustCompile(`^/ws/notifications/?$`)

// notifyRoute is ws/notifications/ (docs/PROTOCOL.md section 11): it relays
// the REST API's and the call service's events to the user.
func (s *Server) notifyRoute() *route {
	return &route{
		name:          "notifications",
		quiet:         true,
		match:         func(path string) (string, bool) { return "", notifyPath.MatchString(path) },
		admit:         s.admitToOwnGroup("notifications"),
		connectFrames: s.notifyConnectFrames,
		handle:        func(c *conn, typ int, data []byte) { c.ignore(typ, data) },
		events:        s.notifyEvents,
	}
}

// notifyConnectFrames are connection_established, then, for a listener
// with conversation requests waiting, the list of them.
func (s *Server) notifyConnectFrames(ctx context.Context, c *conn) ([]*frame, error) {
	frames := []*frame{newFrame(s.mem, "connection_established", mustMarshal(pyjson.Object{
		{Key: "type", Value: "connection_established"},
		{Key: "message", Value: "Connected to notifications"},
	}))}
	if c.user.UserType != "listener" {
		return frames, nil
	}
	dbctx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout)
	defer cancel()
	pending, err := s.store.PendingConversations(dbctx, c.user.ID)
	if err != nil {
		frames[0].release()
		return nil, err
	}
	if len(pending) == 0 {
		return frames, nil
	}
	list := make(pyjson.List, len(pending))
	for i, p := range pending {
		list[i] = pyjson.Object{
			{Key: "id", Value: p.ID},
			{Key: "talker_id", Value: p.Talker.ID},
			{Key: "talker_email", Value: p.Talker.Email},
			{Key: "talker_name", Value: p.Talker.DisplayName()},
			{Key: "initial_message", Value: p.InitialMessage},
			{Key: "created_at", Value: chat.ISOFormat(p.CreatedAt)},
		}
	}
	n := strconv.Itoa(len(pending))
	return append(frames, newFrame(s.mem, "pending_conversations_list", mustMarshal(pyjson.Object{
		{Key: "type", Value: "pending_conversations_list"},
		{Key: "conversations", Value: list},
		{Key: "count", Value: len(pending)},
		{Key: "message", Value: "You have " + n + " pending conversation(s)"},
	}))), nil
}

// notifyEvents relays each event as its frame, built once for every
// connection of the user.
func (s *Server) notifyEvents(group string, batch []delivery) {
	for _, d := range batch {
		kind, b, err := notificationFrame(d.event)
		if err != nil {
			// Divergence: Python raised, and the connection was closed with 1011.
			s.log.Warn("ignoring notification event", "group", group, "type", clip(pyjson.Str(get(d.event, "type"))), "err", err)
			continue
		}
		f := newFrame(s.mem, kind, b)
		for _, c := range d.conns {
			c.enqueue(f)
		}
		f.release()
		s.metrics.eventHandled("notifications", d.received)
	}
}

// notificationFrame is the frame of one event of section 11, keys in the
// order shown there, values passed through as received; an event of
// another type, or missing a key its frame reads, is an error.
func notificationFrame(event pyjson.Object) (kind string, frame []byte, err error) {
	var missing []string
	need := func(key string) pyjson.Value {
		v, ok := event.Get(key)
		if !ok {
			missing = append(missing, key)
		}
		return v
	}
	str := func(key string) string { return pyjson.Str(need(key)) }
	t, _ := event.Get("type")
	typ, _ := t.(string)
	var f pyjson.Object
	switch handlerName(typ) {
	case "conversation_request":
		kind = "conversation_request"
		f = pyjson.Object{
			{Key: "type", Value: kind},
			{Key: "conversation_id", Value: need("conversation_id")},
			{Key: "talker_id", Value: need("talker_id")},
			{Key: "talker_email", Value: need("talker_email")},
			{Key: "talker_name", Value: need("talker_name")},
			{Key: "initial_message", Value: need("initial_message")},
			{Key: "created_at", Value: need("created_at")},
			{Key: "message", Value: "New conversation request from " + str("talker_name")},
		}
	case "conversation_accepted", "conversation_rejected":
		kind = handlerName(typ)
		verb, at := "accepted", "accepted_at"
		if kind == "conversation_rejected" {
			verb, at = "rejected", "rejected_at"
		}
		f = pyjson.Object{
			{Key: "type", Value: kind},
			{Key: "conversation_id", Value: need("conversation_id")},
			{Key: "listener_id", Value: need("listener_id")},
			{Key: "listener_email", Value: need("listener_email")},
			{Key: "listener_name", Value: need("listener_name")},
			{Key: at, Value: need(at)},
			{Key: "message", Value: "Your conversation request was " + verb + " by " + str("listener_name")},
		}
	case "incoming_call":
		kind = "incoming_call"
		image, _ := event.Get("talker_image")
		f = pyjson.Object{
			{Key: "type", Value: kind},
			{Key: "message", Value: "Incoming call from " + str("talker_name")},
			{Key: "session_id", Value: need("session_id")},
			{Key: "call_package_id", Value: need("call_package_id")},
			{Key: "talker", Value: pyjson.Object{
				{Key: "id", Value: need("talker_id")},
				{Key: "email", Value: need("talker_email")},
				{Key: "full_name", Value: need("talker_name")},
				{Key: "profile_image", Value: image},
			}},
			{Key: "call_type", Value: need("call_type")},
			{Key: "total_minutes", Value: need("total_minutes")},
			{Key: "created_at", Value: need("created_at")},
		}
	case "call_ended_notification":
		kind = "call_ended"
		name, _ := event.Get("ended_by_name")
		f = pyjson.Object{
			{Key: "type", Value: kind},
			{Key: "message", Value: need("message")},
			{Key: "session_id", Value: need("session_id")},
			{Key: "duration_minutes", Value: need("duration_minutes")},
			{Key: "ended_by", Value: need("ended_by")},
			{Key: "ended_by_name", Value: name},
			{Key: "timestamp", Value: need("timestamp")},
		}
	case "call_ending_notification":
		data := need("data")
		if len(missing) > 0 {
			break
		}
		frame, err = pyjson.Marshal(data)
		return "call_ending", frame, err
	default:
		return "", nil, fmt.Errorf("no handler for event type %s", clip(pyjson.Str(t)))
	}
	if len(missing) > 0 {
		return "", nil, fmt.Errorf("event %s has no key %q", typ, missing[0])
	}
	frame, err = pyjson.Marshal(f)
	return kind, frame, err
}
