// Package memlayer is an in-memory Channels channel layer for one process:
// groups of channel names, and events delivered to the process once per
// group send with the channels they are for. It is the default when the
// sidecar runs alone; processes that share groups need the Redis layer.
package memlayer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"

	"github.com/chatsidecar/sidecar/pyjson"
)

// ErrChannelFull is returned by GroupSend when the process's queue is full,
// as Channels raises ChannelFull; the event is dropped.
var ErrChannelFull = errors.New("channel layer queue full")

// validName is Channels' group name rule (ASCII letters, digits, -_.; under
// 100 characters).
var validName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,99}$`)

type delivery struct {
	channels []string
	event    pyjson.Object
}

// Layer is safe for concurrent use. Events are shared, not copied: neither
// senders nor receivers may modify them.
type Layer struct {
	prefix string
	next   atomic.Uint64
	queue  chan delivery

	mu     sync.Mutex
	groups map[string]map[string]struct{}
}

// New returns a layer whose queue holds up to capacity undelivered events.
func New(capacity int) *Layer {
	if capacity <= 0 {
		capacity = 10000
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return &Layer{
		prefix: "specific." + hex.EncodeToString(b) + "!",
		queue:  make(chan delivery, capacity),
		groups: map[string]map[string]struct{}{},
	}
}

// NewChannel returns a new channel name, shaped as Channels names them.
func (l *Layer) NewChannel() string {
	return fmt.Sprintf("%s%d", l.prefix, l.next.Add(1))
}

// GroupAdd puts channel into group.
func (l *Layer) GroupAdd(_ context.Context, group, channel string) error {
	if !validName.MatchString(group) {
		return fmt.Errorf("group_add: invalid group name %q", group)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	members := l.groups[group]
	if members == nil {
		members = map[string]struct{}{}
		l.groups[group] = members
	}
	members[channel] = struct{}{}
	return nil
}

// GroupDiscard takes channel out of group; it is not an error if absent.
func (l *Layer) GroupDiscard(_ context.Context, group, channel string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if members := l.groups[group]; members != nil {
		delete(members, channel)
		if len(members) == 0 {
			delete(l.groups, group)
		}
	}
	return nil
}

// GroupSend queues event for every member of group, without waiting.
func (l *Layer) GroupSend(_ context.Context, group string, event pyjson.Object) error {
	if !validName.MatchString(group) {
		return fmt.Errorf("group_send: invalid group name %q", group)
	}
	l.mu.Lock()
	members := l.groups[group]
	channels := make([]string, 0, len(members))
	for ch := range members {
		channels = append(channels, ch)
	}
	l.mu.Unlock()
	if len(channels) == 0 {
		return nil
	}
	select {
	case l.queue <- delivery{channels: channels, event: event}:
		return nil
	default:
		return fmt.Errorf("group_send %s: %w", group, ErrChannelFull)
	}
}

// Receive returns the next event and the channels it is for.
func (l *Layer) Receive(ctx context.Context) ([]string, pyjson.Object, error) {
	select {
	case d := <-l.queue:
		return d.channels, d.event, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}
