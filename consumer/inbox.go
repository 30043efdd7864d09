package consumer

import (
	"context"
	"regexp"
	"strconv"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// inboxPath is Channels' route ws/conversations/?$.
var inboxPath = regexp.MustCompile(`^/ws/conversations/?$`)

// inboxRoute is ws/conversations/, the live conversation list
// (docs/PROTOCOL.md section 10).
func (s *Server) inboxRoute() *route {
	return &route{
		name:          "conversations",
		quiet:         true,
		match:         func(path string) (string, bool) { return "", inboxPath.MatchString(path) },
		admit:         s.admitToOwnGroup("conversations"),
		connectFrames: s.inboxConnectFrames,
		handle:        func(c *conn, typ int, data []byte) { c.ignore(typ, data) },
		events:        s.inboxEvents,
	}
}

func (s *Server) inboxConnectFrames(ctx context.Context, c *conn) ([]*frame, error) {
	items, err := s.inbox(ctx, c.user.ID)
	if err != nil {
		return nil, err
	}
	list := inboxList(items, c.user.ID)
	n := strconv.Itoa(len(items))
	return []*frame{
		newFrame(s.mem, "connection_established", mustMarshal(pyjson.Object{
			{Key: "type", Value: "connection_established"},
			{Key: "message", Value: "Connected to conversation list updates"},
		})),
		newFrame(s.mem, "conversation_list", mustMarshal(pyjson.Object{
			{Key: "type", Value: "conversation_list"},
			{Key: "conversations", Value: list},
			{Key: "count", Value: len(items)},
			{Key: "message", Value: "You have " + n + " conversation(s)"},
		})),
	}, nil
}

// inbox computes a user's conversation list in one query, at most
// InboxConcurrency at a time in the process, so a burst of updates can
// neither exhaust the database pool nor starve the chat.
func (s *Server) inbox(ctx context.Context, userID int64) ([]chat.InboxItem, error) {
	select {
	case s.inboxSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.inboxSlots }()
	s.metrics.inbox.WithLabelValues("computed").Inc()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DBTimeout)
	defer cancel()
	return s.store.Inbox(ctx, userID)
}

// inboxEvents handles the events of one user's conversation-list group.
// The batch is every event that arrived while the previous list was being
// computed: all its updates are merged into one computation, sent once,
// whose latest_conversation_id is the last update's (section 10).
func (s *Server) inboxEvents(group string, batch []delivery) {
	var last *delivery
	updates := 0
	for i := range batch {
		d := &batch[i]
		if handlerName(d.typ()) != "conversation_update" {
			// Divergence: Python closed the connection with 1011.
			s.log.Warn("ignoring group event without handler", "type", clip(pyjson.Str(get(d.event, "type"))), "group", group)
			continue
		}
		last = d
		updates++
	}
	if last == nil {
		return
	}
	if updates > 1 {
		s.metrics.inbox.WithLabelValues("merged").Add(float64(updates - 1))
	}
	userID := last.conns[0].user.ID // the group is one user's
	items, err := s.inbox(s.ctx, userID)
	if err != nil {
		s.log.Error("conversation list", "group", group, "err", err)
		return
	}
	id, _ := last.event.Get("conversation_id")
	b := mustMarshal(pyjson.Object{
		{Key: "type", Value: "conversation_list_updated"},
		{Key: "conversations", Value: inboxList(items, userID)},
		{Key: "count", Value: len(items)},
		{Key: "latest_conversation_id", Value: id},
		{Key: "message", Value: "Conversation " + pyjson.Str(id) + " updated with new message"},
	})
	f := newFrame(s.mem, "conversation_list_updated", b)
	defer f.release()
	for _, c := range last.conns {
		c.enqueue(f)
	}
	for _, d := range batch {
		s.metrics.eventHandled("conversations", d.received)
	}
}

// handlerName is Channels' get_handler_name: the consumer method an event
// type names ("" when it names none).
func handlerName(typ string) string {
	if strings.HasPrefix(typ, "_") {
		return ""
	}
	return strings.ReplaceAll(typ, ".", "_")
}

// inboxList is the list of items of section 10, for user.
func inboxList(items []chat.InboxItem, user int64) pyjson.List {
	list := make(pyjson.List, len(items))
	for i, it := range items {
		other := it.Talker
		if it.Listener.ID != user {
			other = it.Listener
		}
		var sender pyjson.Value
		switch {
		case it.HasLatest:
			sender = it.LatestSenderID
		case it.InitialMessage != "":
			sender = it.Talker.ID
		}
		last := it.LastMessageAt
		if last.IsZero() {
			last = it.CreatedAt
		}
		list[i] = pyjson.Object{
			{Key: "id", Value: it.ID},
			{Key: "listener_id", Value: it.Listener.ID},
			{Key: "listener_email", Value: it.Listener.Email},
			{Key: "listener_name", Value: it.Listener.DisplayName()},
			{Key: "talker_id", Value: it.Talker.ID},
			{Key: "talker_email", Value: it.Talker.Email},
			{Key: "talker_name", Value: it.Talker.DisplayName()},
			{Key: "other_user_id", Value: other.ID},
			{Key: "other_user_email", Value: other.Email},
			{Key: "other_user_name", Value: other.DisplayName()},
			{Key: "status", Value: it.Status},
			{Key: "initial_message", Value: it.InitialMessage},
			{Key: "last_message_preview", Value: it.Preview},
			{Key: "last_message_sender_id", Value: sender},
			{Key: "last_message_at", Value: chat.ISOFormat(last)},
			{Key: "total_messages", Value: it.TotalMessages},
			{Key: "created_at", Value: chat.ISOFormat(it.CreatedAt)},
		}
	}
	return list
}

// ignore handles a client message of a route that ignores them (the
// conversation list, notifications): nothing is sent back, but the size
// limit holds (no file_message here).
func (c *conn) ignore(typ int, data []byte) {
	kind := "text"
	if typ == websocket.BinaryMessage {
		kind = "binary" // Divergence: Python's handler crashed on binary frames.
	}
	c.srv.metrics.framesIn.WithLabelValues(c.route.name, kind).Inc()
	if int64(len(data)) > c.srv.cfg.MaxTextFrameBytes {
		c.srv.metrics.closed("frame_too_big")
		c.end(websocket.CloseMessageTooBig, "message too big")
	}
}
