package redislayer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatsidecar/sidecar/pyjson"
)

// The sidecar only sends to groups; the tests also send to one channel, as
// a Python process does, to check what the layer receives.

// errChannelFull is returned by Send when the channel's queue holds
// Capacity messages, as channels_redis raises ChannelFull.
var errChannelFull = errors.New("channel layer: channel full")

// sendNext is Send's round robin over hosts for plain channels.
var sendNext atomic.Uint64

// Send sends event to one channel, as channels_redis' send does: a
// specific channel's full name goes into "__asgi_channel__"; a full queue
// gives errChannelFull and nothing is written.
func (l *Layer) Send(ctx context.Context, channel string, event pyjson.Object) error {
	if l.closed.Load() {
		return ErrClosed
	}
	if !validChannelName(channel) {
		return fmt.Errorf("send %q: %w", channel, ErrInvalidName)
	}
	if _, ok := event.Get(channelKey); ok {
		return fmt.Errorf("send %s: event has the reserved key %s", channel, channelKey)
	}
	specific := strings.Contains(channel, "!")
	msg, err := l.encode(event, channel, specific)
	if err != nil {
		return fmt.Errorf("send %s: serialize: %w", channel, err)
	}
	nl := nonLocalName(channel)
	key := l.cfg.Prefix + nl
	var c *redis.Client
	if specific {
		c = l.clients[consistentHash(nl, len(l.clients))]
	} else {
		c = l.clients[int((sendNext.Add(1)-1)%uint64(len(l.clients)))]
	}
	var count *redis.IntCmd
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "0", strconv.FormatInt(time.Now().Unix()-l.expirySec, 10))
		count = p.ZCount(ctx, key, "-inf", "+inf")
		return nil
	})
	if err != nil {
		return fmt.Errorf("send %s: %w", channel, err)
	}
	if count.Val() >= int64(l.capacity(channel)) {
		return fmt.Errorf("send %s: %w", channel, errChannelFull)
	}
	_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: epoch(time.Now()), Member: msg})
		p.Expire(ctx, key, time.Duration(l.expirySec)*time.Second)
		return nil
	})
	if err != nil {
		return fmt.Errorf("send %s: %w", channel, err)
	}
	return nil
}
