// Package redislayer is a Channels channel layer on Redis, wire-compatible
// with channels_redis 4.x RedisChannelLayer (the core layer, not pubsub), so
// that the sidecar and Python processes (the REST API, Daphne consumers)
// share groups and send each other events.
//
// Keys, commands, Lua scripts and message bytes are those of
// channels_redis 4.0.0 (see docs/channels_redis.md):
//
//	prefix:group:<g>          ZSET of channel names, scored by join time
//	prefix + "specific.<cp>!" ZSET of this process's messages (one per process)
//
// A message is 12 random bytes followed by msgpack of the event, with the
// channel name or names it is for under "__asgi_channel__".
//
// Differences from channels_redis, all deliberate:
//   - The shard of a channel's queue is always the hash of its non-local
//     name, also in Send (Python's send hashes the full name, a bug that
//     loses about half the messages with two or more hosts), and group_send's
//     expired-message cleanup runs on the shard that holds the queue.
//   - Memberships of this process's channels are refreshed every
//     GroupExpiry/2 (Python never refreshes, so a connection older than
//     group_expiry silently leaves its groups) and re-added by themselves
//     when a Redis server comes back empty after a restart.
//   - Receive never fails while Redis is unavailable: it logs, backs off and
//     retries. Messages that cannot be decoded are logged and dropped.
//   - Receive returns one message at a time with all the local channels it
//     is for; there is no per-channel in-memory buffer. It pops up to 64
//     messages per round trip under load, and keeps no "$inflight" backup
//     (see next): the process's queue drains three times as fast or more.
package redislayer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fernet/fernet-go"
	"github.com/redis/go-redis/v9"

	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/redact"
)

const (
	// popTimeout bounds each BZPOPMIN, so a cancelled Receive returns
	// within about this long (channels_redis uses 5 s).
	popTimeout = time.Second
	// recvBatch is the most messages one round trip pops.
	recvBatch = 64
	// backoffMin and backoffMax bound the waits between retries while
	// Redis is unavailable.
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
	// checkInterval is how often every server's run_id is compared with the
	// last one seen, to notice restarts on servers nothing else talks to.
	checkInterval = 5 * time.Second
)

var (
	// ErrClosed is returned by calls on a closed layer.
	ErrClosed = errors.New("channel layer: closed")
	// ErrInvalidName is returned for group or channel names Channels rejects.
	ErrInvalidName = errors.New("channel layer: invalid name")
)

// CapacityRule gives the capacity of channels whose full name matches
// Pattern, a glob as fnmatch reads it (channel_capacity; regexes are not
// supported). The first matching rule wins.
type CapacityRule struct {
	Pattern  string
	Capacity int
}

// Config is the layer's configuration, the arguments of
// RedisChannelLayer. Every field but the optional ones is required; the
// defaults are the configuration's (package config), Channels' own.
type Config struct {
	// Hosts are redis:// (or rediss://) URLs, database in the path. Their
	// order decides sharding and must be the Python processes' order.
	// Default: redis://localhost:6379.
	Hosts []string
	// Prefix starts every key. Default "asgi".
	Prefix string
	// Expiry is the message TTL (whole seconds). Default 60 s.
	Expiry time.Duration
	// GroupExpiry is how long a membership lasts without being refreshed
	// (whole seconds). Default 86400 s.
	GroupExpiry time.Duration
	// Capacity is the number of messages a queue holds. Default 100.
	Capacity int
	// ChannelCapacity overrides Capacity for matching channel names.
	ChannelCapacity []CapacityRule
	// SymmetricEncryptionKeys, when set, encrypt messages with Fernet as
	// symmetric_encryption_keys does: the first key encrypts, any
	// decrypts. Every process must use the same list.
	SymmetricEncryptionKeys []string
	// Timeout bounds connecting, and reading and writing one command
	// (a blocking pop waits its own time on top), so a frozen server turns
	// into errors, not waits. Zero: go-redis's defaults.
	Timeout time.Duration
}

func (c Config) validate() error {
	switch {
	case len(c.Hosts) == 0:
		return errors.New("redis layer: no hosts")
	case c.Prefix == "":
		return errors.New("redis layer: empty prefix")
	case c.Expiry < time.Second || c.GroupExpiry < time.Second:
		return errors.New("redis layer: expiry and group expiry must be at least a second")
	case c.Capacity <= 0:
		return errors.New("redis layer: capacity must be positive")
	}
	return nil
}

// groupSendScript adds one message per queue key, if under capacity, and
// returns how many keys were full (group_send's group_send_lua).
var groupSendScript = redis.NewScript(`
                local over_capacity = 0
                local current_time = ARGV[#ARGV - 1]
                local expiry = ARGV[#ARGV]
                for i=1,#KEYS do
                    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
                        redis.call('ZADD', KEYS[i], current_time, ARGV[i])
                        redis.call('EXPIRE', KEYS[i], expiry)
                    else
                        over_capacity = over_capacity + 1
                    end
                end
                return over_capacity
            `)

// Layer is safe for concurrent use, except that Receive calls are
// serialized (one reader of the process's queue at a time).
type Layer struct {
	cfg         Config
	log         *slog.Logger
	keys        []*fernet.Key
	clients     []*redis.Client
	expirySec   int64
	groupExpSec int64

	queueName  string // "specific.<client prefix>!", the prefix uuid4 hex, new for every layer
	queueKey   string // prefix + queueName
	queueShard int

	mu     sync.Mutex
	groups map[string]map[string]struct{} // memberships of local channels

	recvMu  sync.Mutex
	recvBuf [][]byte // messages popped, not yet returned; under recvMu

	metrics *metrics

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
}

// New connects to every host (each must answer PING) and starts the
// goroutine that keeps this process's group memberships alive.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Layer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cp := uuid4Hex()
	l := &Layer{
		cfg:         cfg,
		log:         log,
		expirySec:   max(1, int64(cfg.Expiry/time.Second)),
		groupExpSec: max(1, int64(cfg.GroupExpiry/time.Second)),
		queueName:   "specific." + cp + "!",
		groups:      map[string]map[string]struct{}{},
		kick:        make(chan struct{}, 1),
		keys:        fernetKeys(cfg.SymmetricEncryptionKeys),
		metrics:     newMetrics(),
	}
	l.queueKey = cfg.Prefix + l.queueName
	l.queueShard = consistentHash(l.queueName, len(cfg.Hosts))
	for _, h := range cfg.Hosts {
		opt, err := redis.ParseURL(h)
		if err != nil {
			l.closeClients()
			return nil, fmt.Errorf("redis layer: host %q: %w", h, err)
		}
		if cfg.Timeout > 0 {
			opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
		}
		// Every new connection may follow a server restart: have the
		// maintainer compare run_ids.
		opt.OnConnect = func(context.Context, *redis.Conn) error {
			l.kickMaintainer()
			return nil
		}
		l.clients = append(l.clients, redis.NewClient(opt))
	}
	runIDs := make([]string, len(l.clients))
	for i, c := range l.clients {
		if err := c.Ping(ctx).Err(); err != nil {
			l.closeClients()
			return nil, fmt.Errorf("redis layer: ping %s: %w", cfg.Hosts[i], err)
		}
		runIDs[i], _ = runID(ctx, c)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.maintain(runIDs)
	return l, nil
}

// Close stops the maintainer and closes the connections; a blocked
// Receive returns ErrClosed.
func (l *Layer) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.cancel()
	err := l.closeClients()
	l.wg.Wait()
	return err
}

func (l *Layer) closeClients() error {
	var errs []error
	for _, c := range l.clients {
		if err := c.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// NewChannel returns "specific.<client prefix>!<uuid4 hex>", as
// channels_redis' new_channel() does.
func (l *Layer) NewChannel() string {
	return l.queueName + uuid4Hex()
}

func (l *Layer) groupKey(group string) string {
	return l.cfg.Prefix + ":group:" + group
}

func (l *Layer) groupClient(group string) *redis.Client {
	return l.clients[consistentHash(group, len(l.clients))]
}

// capacity is get_capacity(channel).
func (l *Layer) capacity(channel string) int {
	for _, r := range l.cfg.ChannelCapacity {
		if ok, _ := path.Match(r.Pattern, channel); ok {
			return r.Capacity
		}
	}
	return l.cfg.Capacity
}

func (l *Layer) isLocal(channel string) bool {
	return strings.HasPrefix(channel, l.queueName)
}

func epoch(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// GroupAdd adds channel to group: ZADD with the current time, then EXPIRE
// the group key. Channels of this process are remembered and kept in the
// group until GroupDiscard.
func (l *Layer) GroupAdd(ctx context.Context, group, channel string) error {
	defer l.metrics.time("group_add")()
	if l.closed.Load() {
		return ErrClosed
	}
	if !validGroupName(group) {
		return fmt.Errorf("group_add %q: %w", group, ErrInvalidName)
	}
	if !validChannelName(channel) {
		return fmt.Errorf("group_add %q: channel %q: %w", group, channel, ErrInvalidName)
	}
	key := l.groupKey(group)
	_, err := l.groupClient(group).Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: epoch(time.Now()), Member: channel})
		p.Expire(ctx, key, time.Duration(l.groupExpSec)*time.Second)
		return nil
	})
	if err != nil {
		return fmt.Errorf("group_add %s: %w", group, err)
	}
	if l.isLocal(channel) {
		l.mu.Lock()
		m := l.groups[group]
		if m == nil {
			m = map[string]struct{}{}
			l.groups[group] = m
		}
		m[channel] = struct{}{}
		l.mu.Unlock()
	}
	return nil
}

// GroupDiscard removes channel from group (ZREM); it is not an error if
// the channel is not a member.
func (l *Layer) GroupDiscard(ctx context.Context, group, channel string) error {
	defer l.metrics.time("group_discard")()
	if !validGroupName(group) {
		return fmt.Errorf("group_discard %q: %w", group, ErrInvalidName)
	}
	if !validChannelName(channel) {
		return fmt.Errorf("group_discard %q: channel %q: %w", group, channel, ErrInvalidName)
	}
	l.forget(group, channel)
	if l.closed.Load() {
		return ErrClosed
	}
	if err := l.groupClient(group).ZRem(ctx, l.groupKey(group), channel).Err(); err != nil {
		return fmt.Errorf("group_discard %s: %w", group, err)
	}
	return nil
}

func (l *Layer) forget(group, channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if m := l.groups[group]; m != nil {
		delete(m, channel)
		if len(m) == 0 {
			delete(l.groups, group)
		}
	}
}

// queueBucket is one queue key's share of a group send.
type queueBucket struct {
	key      string
	channels []string
	capacity int
}

// GroupSend sends event to every member of group, as group_send does:
// expired members are trimmed, members are bucketed by queue key, each key
// gets one message listing its channels, and full keys are counted and
// logged, not reported as errors. Redis errors are returned.
func (l *Layer) GroupSend(ctx context.Context, group string, event pyjson.Object) error {
	defer l.metrics.time("group_send")()
	if l.closed.Load() {
		return ErrClosed
	}
	if !validGroupName(group) {
		return fmt.Errorf("group_send %q: %w", group, ErrInvalidName)
	}
	key := l.groupKey(group)
	gc := l.groupClient(group)
	var members *redis.StringSliceCmd
	_, err := gc.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRemRangeByScore(ctx, key, "0", strconv.FormatInt(time.Now().Unix()-l.groupExpSec, 10))
		members = p.ZRange(ctx, key, 0, -1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("group_send %s: %w", group, err)
	}
	names := members.Val()
	if len(names) == 0 {
		return nil
	}

	byShard := map[int][]*queueBucket{}
	var shards []int
	byKey := map[string]*queueBucket{}
	for _, ch := range names {
		nl := nonLocalName(ch)
		qk := l.cfg.Prefix + nl
		if b := byKey[qk]; b != nil {
			b.channels = append(b.channels, ch)
			continue
		}
		b := &queueBucket{key: qk, channels: []string{ch}, capacity: l.capacity(ch)}
		byKey[qk] = b
		s := consistentHash(nl, len(l.clients))
		if _, ok := byShard[s]; !ok {
			shards = append(shards, s)
		}
		byShard[s] = append(byShard[s], b)
	}

	var errs []error
	for _, s := range shards {
		buckets := byShard[s]
		keys := make([]string, len(buckets))
		args := make([]any, 0, 2*len(buckets)+2)
		for i, b := range buckets {
			keys[i] = b.key
			msg, err := l.encode(event, b.channels, true)
			if err != nil {
				return fmt.Errorf("group_send %s: serialize: %w", group, err)
			}
			args = append(args, msg)
		}
		for _, b := range buckets {
			args = append(args, b.capacity)
		}
		c := l.clients[s]
		now := time.Now()
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.ZRemRangeByScore(ctx, k, "0", strconv.FormatInt(now.Unix()-l.expirySec, 10))
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		args = append(args, epoch(time.Now()), l.expirySec)
		over, err := groupSendScript.Run(ctx, c, keys, args...).Int64()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if over > 0 {
			l.metrics.overCapacity.Add(float64(over))
			l.log.Info(fmt.Sprintf("%d of %d channels over capacity in group %s", over, len(names), group),
				"group", group, "over_capacity", over)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("group_send %s: %w", group, errors.Join(errs...))
	}
	return nil
}

// Receive blocks until the next message for this process's channels and
// returns it without "__asgi_channel__", with the channels it is for. It
// pops as receive_single does (cleanup script, BZPOPMIN, in-flight backup,
// acknowledgement). While Redis is unavailable it logs, backs off and
// retries; it returns only ctx's error or ErrClosed.
func (l *Layer) Receive(ctx context.Context) ([]string, pyjson.Object, error) {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	backoff := time.Duration(0)
	for {
		if l.closed.Load() {
			return nil, nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		member, err := l.next(ctx)
		if err != nil {
			if l.closed.Load() {
				return nil, nil, ErrClosed
			}
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			if backoff == 0 {
				l.log.Warn("channel layer receive: redis unavailable, retrying", "key", l.queueKey, "err", err)
				backoff = backoffMin
			} else {
				backoff = min(2*backoff, backoffMax)
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, nil, ctx.Err()
			case <-l.ctx.Done():
				t.Stop()
				return nil, nil, ErrClosed
			}
			continue
		}
		if backoff != 0 {
			l.log.Info("channel layer receive: redis available again", "key", l.queueKey)
			backoff = 0
			l.kickMaintainer()
		}
		if member == nil {
			continue
		}
		event, err := l.decode(member)
		if err != nil {
			l.metrics.undecodable.Inc()
			l.log.Error("channel layer receive: dropping undecodable message", "key", l.queueKey, "err", err)
			continue
		}
		channels, event := l.demultiplex(event)
		if len(channels) == 0 {
			// channels_redis files it under the process's queue name,
			// which no consumer reads: it is lost either way.
			l.log.Warn("channel layer receive: dropping message without channel", "key", l.queueKey)
			continue
		}
		return channels, event, nil
	}
}

// next returns the next message of the process's queue: from what the
// last pop brought, or from one round trip that pops up to recvBatch at
// once (ZPOPMIN with a count), or, when the queue is empty, a BZPOPMIN that
// waits popTimeout for one (nil, nil when it timed out). Under load that is
// one round trip per batch where channels_redis makes three per message
// (cleanup script, BZPOPMIN, in-flight backup): a process queue of
// CHANNEL_LAYER_CAPACITY then drains before it overflows. The backup
// protected a message popped by a process that died before handling it;
// a sidecar's queue key is its own and dies with it, so there is nothing
// to restore.
func (l *Layer) next(ctx context.Context) ([]byte, error) {
	if len(l.recvBuf) > 0 {
		m := l.recvBuf[0]
		l.recvBuf[0] = nil
		l.recvBuf = l.recvBuf[1:]
		return m, nil
	}
	defer l.metrics.time("receive")()
	c := l.clients[l.queueShard]
	zs, err := c.ZPopMin(ctx, l.queueKey, recvBatch).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	if len(zs) == 0 {
		res, err := c.BZPopMin(ctx, popTimeout, l.queueKey).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		zs = []redis.Z{res.Z}
	}
	for _, z := range zs {
		if m, ok := z.Member.(string); ok {
			l.recvBuf = append(l.recvBuf, []byte(m))
		}
	}
	return l.next(ctx)
}

// demultiplex removes "__asgi_channel__" from event and returns the
// channels it named (a str or a list of str).
func (l *Layer) demultiplex(event pyjson.Object) ([]string, pyjson.Object) {
	var channels []string
	out := event[:0]
	for _, m := range event {
		if m.Key != channelKey {
			out = append(out, m)
			continue
		}
		switch v := m.Value.(type) {
		case string:
			channels = []string{v}
		case pyjson.List:
			channels = make([]string, 0, len(v))
			for _, e := range v {
				if s, ok := e.(string); ok {
					channels = append(channels, s)
				}
			}
		}
	}
	return channels, out
}

// Ping reports whether every Redis host answers, for readiness checks.
func (l *Layer) Ping(ctx context.Context) error {
	for i, c := range l.clients {
		if err := c.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis %s: %w", redact.URL(l.cfg.Hosts[i]), err)
		}
	}
	return nil
}
