package consumer

import (
	"context"
	"sync"
	"time"

	"github.com/chatsidecar/sidecar/pyjson"
)

// route is one WebSocket endpoint: what it checks at connect once the token
// and the user are good, the frames it sends on connect, what it does with
// client frames and with the group events of its connections.
type route struct {
	name string // "chat", "conversations", "notifications": the metrics label
	// quiet routes ignore client frames: nothing is sent back, not even
	// the rate limit's error frame (the limit still closes with 1008).
	quiet bool
	// match reports whether path is the route's, and its parameter.
	match func(path string) (param string, ok bool)
	// admit loads the token's user, then refuses the connection or sets
	// what the route needs (the group).
	admit func(ctx context.Context, c *conn, userID int64, param string) error
	// connectFrames builds the frames sent after the upgrade, held for c.
	connectFrames func(ctx context.Context, c *conn) ([]*frame, error)
	// handle handles one client message (websocket.TextMessage or BinaryMessage).
	handle func(c *conn, typ int, data []byte)
	// events handles group events of one group, in arrival order.
	events func(group string, batch []delivery)
}

// delivery is one group event for the local connections it is for.
type delivery struct {
	conns    []*conn
	event    pyjson.Object
	received time.Time
}

func (d delivery) typ() string {
	t, _ := d.event.Get("type")
	s, _ := t.(string)
	return s
}

// deliver hands a group event to the local connections it is for. Events
// run in arrival order per group, as each Channels consumer handles its
// events in order; different groups run in parallel.
func (s *Server) deliver(channels []string, event pyjson.Object) {
	now := time.Now()
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
	rt, group := conns[0].route, conns[0].group
	d := delivery{conns: conns, event: event, received: now}
	s.metrics.events.WithLabelValues(rt.name, eventLabel(get(event, "type"))).Inc()
	if !s.events.add(group, d, rt.events) {
		s.metrics.eventsDropped.WithLabelValues("queue_full").Inc()
		s.log.Warn("group event dropped: too many waiting", "group", group)
	}
}

func get(o pyjson.Object, key string) pyjson.Value {
	v, _ := o.Get(key)
	return v
}

// eventQueues runs the events of each group one batch at a time, in order:
// a batch is every event that arrived while the previous one ran, so a
// handler can share work between them (one history for several messages).
// Groups run in parallel. A group with max events waiting refuses more.
type eventQueues struct {
	mu     sync.Mutex
	queues map[string][]delivery // present while a goroutine runs the group
	max    int
}

func (q *eventQueues) add(group string, d delivery, run func(group string, batch []delivery)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.queues == nil {
		q.queues = map[string][]delivery{}
	}
	pending, running := q.queues[group]
	if q.max > 0 && len(pending) >= q.max {
		return false
	}
	q.queues[group] = append(pending, d)
	if !running {
		go q.run(group, run)
	}
	return true
}

func (q *eventQueues) run(group string, run func(group string, batch []delivery)) {
	for {
		q.mu.Lock()
		batch := q.queues[group]
		if len(batch) == 0 {
			delete(q.queues, group)
			q.mu.Unlock()
			return
		}
		q.queues[group] = []delivery{}
		q.mu.Unlock()
		run(group, batch)
	}
}

// eventLabel is an event's type as a metrics label: one of the contract's,
// or "other", so producers cannot grow the series without bound.
func eventLabel(t pyjson.Value) string {
	s, _ := t.(string)
	switch name := handlerName(s); name {
	case "chat_message", "typing_indicator", "messages_read", "conversation_update", "conversation_request",
		"conversation_accepted", "conversation_rejected", "incoming_call", "call_ended_notification", "call_ending_notification":
		return name
	}
	return "other"
}
