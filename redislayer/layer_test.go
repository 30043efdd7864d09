package redislayer

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/chatsidecar/sidecar/pyjson"
)

// richEvent exercises key order, ints of every width, floats, None, bools,
// nested lists and dicts, and unicode (fixstr, str8 and str16 lengths).
var richEvent = `{"type": "chat_message", "message": {"id": 12, "zeta": 1, "alpha": 2, ` +
	`"text": "h\u00e9llo \ud83d\ude00 \u2028 \u4e2d\u6587", "neg": -5, "neg8": -100, "neg16": -30000, ` +
	`"neg64": -9223372036854775808, "u8": 200, "u16": 60000, "u32": 4000000000, "big": 1099511627776, ` +
	`"u64": 18446744073709551615, "f": 1.5, "f2": 1e+100, "z": 0.0, "negz": -0.0, "pi": 3.141592653589793, ` +
	`"none": null, "t": true, "f0": false, "list": [1, "two", [3.25, null], {"b": 1, "a": 2}], ` +
	`"empty": {}, "el": [], "s40": "` + strings.Repeat("x", 40) + `", "s300": "` + strings.Repeat("\u00e9", 150) + `"}, ` +
	`"count": 3, "latest_message": null}`

func TestNames(t *testing.T) {
	l := newLayer(t, Config{})
	ch := l.NewChannel()
	if !regexp.MustCompile(`^specific\.[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}![0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}$`).MatchString(ch) || len(ch) != 74 {
		t.Fatalf("NewChannel = %q", ch)
	}
	for _, g := range []string{"chat_1", "a.b-c_D9", strings.Repeat("g", 99)} {
		if !validGroupName(g) {
			t.Errorf("group %q rejected", g)
		}
	}
	for _, g := range []string{"", "a b", "a:b", "a/b", "é", "abc\n", "r\u0663", strings.Repeat("g", 100)} {
		if validGroupName(g) {
			t.Errorf("group %q accepted", g)
		}
	}
	for _, c := range []string{ch, "foo.bar", "x!caf\u00e9", "specific.abc!"} {
		if !validChannelName(c) {
			t.Errorf("channel %q rejected", c)
		}
	}
	for _, c := range []string{"", "a!b!c", "a b", "!x", strings.Repeat("c", 100)} {
		if validChannelName(c) {
			t.Errorf("channel %q accepted", c)
		}
	}
	ctx := context.Background()
	if err := l.GroupAdd(ctx, "bad group", ch); !errors.Is(err, ErrInvalidName) {
		t.Errorf("GroupAdd(bad group) = %v", err)
	}
	if err := l.GroupSend(ctx, "bad:group", pyjson.Object{}); !errors.Is(err, ErrInvalidName) {
		t.Errorf("GroupSend(bad group) = %v", err)
	}
}

func TestConsistentHashMatchesPython(t *testing.T) {
	requireRedis(t)
	py := startPython(t, map[string]any{"hosts": []string{sharedRedis}})
	values := []string{"chat_room1", "specific.abc!", "", "user_7_conversations", "x!café"}
	for i := range 50 {
		values = append(values, fmt.Sprintf("specific.%032x!", i*7919))
	}
	for _, ring := range []int{1, 2, 3, 5} {
		r := py.mustDo(map[string]any{"op": "hash", "values": values, "ring": ring})
		for i, v := range values {
			if got := consistentHash(v, ring); got != r.Hashes[i] {
				t.Errorf("consistentHash(%q, %d) = %d, Python %d", v, ring, got, r.Hashes[i])
			}
		}
	}
	if consistentHash("chat_room1", 2) != 0 || consistentHash("specific.abc!", 2) != 1 {
		t.Error("reference examples differ")
	}
}

// TestBytesMatchPython compares Go's msgpack bytes with msgpack.packb's.
func TestBytesMatchPython(t *testing.T) {
	requireRedis(t)
	py := startPython(t, map[string]any{"hosts": []string{sharedRedis}})
	ev := mustObject(t, richEvent)
	for _, channel := range []any{nil, "specific.abc!def", []string{"specific.abc!1", "specific.abc!2"}} {
		cmd := map[string]any{"op": "packb", "event": jsonValue(t, ev)}
		if channel != nil {
			cmd["channel"] = channel
		}
		want := py.mustDo(cmd).Hex
		got, err := serialize(ev, channel, channel != nil)
		if err != nil {
			t.Fatal(err)
		}
		if h := fmt.Sprintf("%x", got[prefixLen:]); h != want {
			t.Errorf("channel %v:\n Go     %s\n Python %s", channel, h, want)
		}
		back, err := deserialize(got)
		if err != nil {
			t.Fatal(err)
		}
		chs, back := (&Layer{}).demultiplex(back)
		if dumps(t, back) != dumps(t, ev) {
			t.Errorf("round trip: %s", dumps(t, back))
		}
		_ = chs
	}
	// bytes become bin, which Python reads as bytes.
	msg, err := serialize(pyjson.Object{{Key: "type", Value: "x"}, {Key: "b", Value: []byte{0, 0xff}},
		{Key: "n", Value: new(big.Int).SetUint64(1 << 63)}}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := py.mustDo(map[string]any{"op": "unpack_repr", "hex": fmt.Sprintf("%x", msg)}); r.Repr != `{'type': 'x', 'b': b'\x00\xff', 'n': 9223372036854775808}` {
		t.Errorf("Python reads %s", r.Repr)
	}
}

// jsonValue turns an Object into something encoding/json writes with the
// same meaning (key order does not survive, the driver's json.loads of
// the pyjson text does).
func jsonValue(t testing.TB, o pyjson.Object) rawJSON {
	return rawJSON(dumps(t, o))
}

type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func TestGoRoundTrip(t *testing.T) {
	a := newLayer(t, Config{})
	b := newLayer(t, Config{Hosts: []string{sharedRedis}, Prefix: a.cfg.Prefix})
	ctx := context.Background()
	a1, a2, b1 := a.NewChannel(), a.NewChannel(), b.NewChannel()
	for _, ch := range []string{a1, a2, b1} {
		l := a
		if ch == b1 {
			l = b
		}
		if err := l.GroupAdd(ctx, "room", ch); err != nil {
			t.Fatal(err)
		}
	}
	ev := mustObject(t, richEvent)
	if err := b.GroupSend(ctx, "room", ev); err != nil {
		t.Fatal(err)
	}
	chs, got := receiveWithin(t, a, 5*time.Second)
	slices.Sort(chs)
	want := []string{a1, a2}
	slices.Sort(want)
	if !slices.Equal(chs, want) || dumps(t, got) != dumps(t, ev) {
		t.Fatalf("a got %v %s", chs, dumps(t, got))
	}
	chs, got = receiveWithin(t, b, 5*time.Second)
	if !slices.Equal(chs, []string{b1}) || dumps(t, got) != dumps(t, ev) {
		t.Fatalf("b got %v %s", chs, dumps(t, got))
	}
	// Send to one channel; discard; a cancelled Receive returns ctx's error.
	if err := b.Send(ctx, a2, pyjson.Object{{Key: "type", Value: "direct"}}); err != nil {
		t.Fatal(err)
	}
	chs, got = receiveWithin(t, a, 5*time.Second)
	if !slices.Equal(chs, []string{a2}) || dumps(t, got) != `{"type": "direct"}` {
		t.Fatalf("direct: %v %s", chs, dumps(t, got))
	}
	if err := a.GroupDiscard(ctx, "room", a1); err != nil {
		t.Fatal(err)
	}
	if err := b.GroupSend(ctx, "room", pyjson.Object{{Key: "type", Value: "after"}}); err != nil {
		t.Fatal(err)
	}
	chs, _ = receiveWithin(t, a, 5*time.Second)
	if !slices.Equal(chs, []string{a2}) {
		t.Fatalf("after discard: %v", chs)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := a.Receive(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Receive on an empty queue = %v", err)
	}
	if d := time.Since(start); d > popTimeout+time.Second {
		t.Errorf("cancelled Receive took %v", d)
	}
	// Close unblocks a waiting Receive.
	errc := make(chan error, 1)
	go func() { _, _, err := a.Receive(ctx); errc <- err }()
	time.Sleep(200 * time.Millisecond)
	_ = a.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Receive after Close = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Error("Receive still blocked after Close")
	}
}

// TestPythonCompatibility: both directions with one Redis.
func TestPythonCompatibility(t *testing.T) {
	g := newLayer(t, Config{})
	py := startPython(t, map[string]any{"hosts": []string{sharedRedis}, "prefix": g.cfg.Prefix})
	ctx := context.Background()
	ev := mustObject(t, richEvent)

	t.Run("GoGroupSendToPython", func(t *testing.T) {
		pch := py.mustDo(map[string]any{"op": "new_channel"}).Channel
		pch2 := py.mustDo(map[string]any{"op": "new_channel"}).Channel
		py.mustDo(map[string]any{"op": "group_add", "group": "chat_1", "channel": pch})
		py.mustDo(map[string]any{"op": "group_add", "group": "chat_1", "channel": pch2})
		if err := g.GroupSend(ctx, "chat_1", ev); err != nil {
			t.Fatal(err)
		}
		for _, ch := range []string{pch, pch2} {
			r := py.mustDo(map[string]any{"op": "receive", "channel": ch, "timeout": 5})
			if r.EventJSON != dumps(t, ev) {
				t.Errorf("Python %s received\n %s\nwant\n %s", ch, r.EventJSON, dumps(t, ev))
			}
		}
	})
	t.Run("PythonGroupSendToGo", func(t *testing.T) {
		c1, c2 := g.NewChannel(), g.NewChannel()
		for _, c := range []string{c1, c2} {
			if err := g.GroupAdd(ctx, "chat_2", c); err != nil {
				t.Fatal(err)
			}
		}
		pch := py.mustDo(map[string]any{"op": "new_channel"}).Channel
		py.mustDo(map[string]any{"op": "group_add", "group": "chat_2", "channel": pch})
		py.mustDo(map[string]any{"op": "group_send", "group": "chat_2", "event": jsonValue(t, ev)})
		chs, got := receiveWithin(t, g, 5*time.Second)
		slices.Sort(chs)
		want := []string{c1, c2}
		slices.Sort(want)
		if !slices.Equal(chs, want) {
			t.Errorf("channels %v, want %v", chs, want)
		}
		if dumps(t, got) != dumps(t, ev) {
			t.Errorf("Go received\n %s\nwant\n %s", dumps(t, got), dumps(t, ev))
		}
		if r := py.mustDo(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.EventJSON != dumps(t, ev) {
			t.Errorf("Python member received %s", r.EventJSON)
		}
	})
	t.Run("PythonSendToGo", func(t *testing.T) {
		c := g.NewChannel()
		py.mustDo(map[string]any{"op": "send", "channel": c, "event": jsonValue(t, ev)})
		chs, got := receiveWithin(t, g, 5*time.Second)
		if !slices.Equal(chs, []string{c}) || dumps(t, got) != dumps(t, ev) {
			t.Errorf("Go received %v %s", chs, dumps(t, got))
		}
	})
	t.Run("GoSendToPython", func(t *testing.T) {
		pch := py.mustDo(map[string]any{"op": "new_channel"}).Channel
		if err := g.Send(ctx, pch, ev); err != nil {
			t.Fatal(err)
		}
		if r := py.mustDo(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.EventJSON != dumps(t, ev) {
			t.Errorf("Python received %s", r.EventJSON)
		}
	})
}

// TestCapacity: a full Go queue drops group messages as Python does,
// without errors on either side; Send reports ChannelFull.
func TestCapacity(t *testing.T) {
	g := newLayer(t, Config{Capacity: 3})
	py := startPython(t, map[string]any{"hosts": []string{sharedRedis}, "prefix": g.cfg.Prefix, "capacity": 3})
	ctx := context.Background()
	c := g.NewChannel()
	if err := g.GroupAdd(ctx, "full", c); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		py.mustDo(map[string]any{"op": "group_send", "group": "full", "event": rawJSON(fmt.Sprintf(`{"type": "m", "i": %d}`, i))})
	}
	// Python's send to the full queue raises ChannelFull; Go's Send says so.
	if r := py.do(map[string]any{"op": "send", "channel": c, "event": map[string]any{"type": "m"}}); r.Error != "ChannelFull" {
		t.Errorf("Python send to a full queue: %+v", r)
	}
	if err := g.Send(ctx, c, pyjson.Object{{Key: "type", Value: "m"}}); !errors.Is(err, errChannelFull) {
		t.Errorf("Go Send to a full queue = %v", err)
	}
	// Go's group send to a full queue: counted, no error.
	if err := g.GroupSend(ctx, "full", pyjson.Object{{Key: "type", Value: "m"}, {Key: "i", Value: int64(99)}}); err != nil {
		t.Errorf("GroupSend to a full queue = %v", err)
	}
	if n := testutil.ToFloat64(g.metrics.overCapacity); n != 1 {
		t.Errorf("over capacity = %v", n)
	}
	for i := range 3 {
		chs, ev := receiveWithin(t, g, 5*time.Second)
		if !slices.Equal(chs, []string{c}) || dumps(t, ev) != fmt.Sprintf(`{"type": "m", "i": %d}`, i) {
			t.Fatalf("message %d: %v %s", i, chs, dumps(t, ev))
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if chs, ev, err := g.Receive(cctx); err == nil {
		t.Fatalf("a dropped message arrived: %v %s", chs, dumps(t, ev))
	}
}

// TestGroupExpiryRefresh: Go's memberships outlive group_expiry; a
// membership nobody refreshes does not.
func TestGroupExpiryRefresh(t *testing.T) {
	g := newLayer(t, Config{GroupExpiry: 2 * time.Second})
	py := startPython(t, map[string]any{"hosts": []string{sharedRedis}, "prefix": g.cfg.Prefix, "group_expiry": 2})
	ctx := context.Background()
	c := g.NewChannel()
	if err := g.GroupAdd(ctx, "exp", c); err != nil {
		t.Fatal(err)
	}
	stale := py.mustDo(map[string]any{"op": "new_channel"}).Channel
	py.mustDo(map[string]any{"op": "group_add", "group": "exp", "channel": stale})
	time.Sleep(5 * time.Second)
	py.mustDo(map[string]any{"op": "group_send", "group": "exp", "event": map[string]any{"type": "late"}})
	chs, ev := receiveWithin(t, g, 5*time.Second)
	if !slices.Equal(chs, []string{c}) || dumps(t, ev) != `{"type": "late"}` {
		t.Fatalf("got %v %s", chs, dumps(t, ev))
	}
	members, err := g.clients[0].ZRange(ctx, g.groupKey("exp"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(members, []string{c}) {
		t.Errorf("members %v, want only the Go channel (the Python one expired)", members)
	}
	if ttl := g.clients[0].TTL(ctx, g.groupKey("exp")).Val(); ttl <= 0 || ttl > 2*time.Second {
		t.Errorf("group TTL %v", ttl)
	}
}

// TestRedisRestart: Receive rides out a Redis restart, GroupSend fails
// while Redis is down, and memberships come back by themselves.
func TestRedisRestart(t *testing.T) {
	srv := startRedisServer(t)
	g := newLayer(t, Config{Hosts: []string{srv.url()}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := g.NewChannel()
	if err := g.GroupAdd(ctx, "r", c); err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		chs []string
		ev  pyjson.Object
		err error
	}
	got := make(chan delivery, 10)
	go func() {
		for {
			chs, ev, err := g.Receive(ctx)
			got <- delivery{chs, ev, err}
			if err != nil {
				return
			}
		}
	}()
	if err := g.GroupSend(ctx, "r", pyjson.Object{{Key: "type", Value: "before"}}); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d.err != nil || dumps(t, d.ev) != `{"type": "before"}` {
		t.Fatalf("before: %+v", d)
	}

	if err := g.Ping(ctx); err != nil {
		t.Errorf("Ping with Redis up: %v", err)
	}
	srv.stop()
	time.Sleep(500 * time.Millisecond)
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	if err := g.Ping(pctx); err == nil {
		t.Error("Ping with Redis down returned no error")
	}
	pcancel()
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	if err := g.GroupSend(sctx, "r", pyjson.Object{{Key: "type", Value: "down"}}); err == nil {
		t.Error("GroupSend with Redis down returned no error")
	}
	scancel()
	time.Sleep(1500 * time.Millisecond)
	select {
	case d := <-got:
		t.Fatalf("Receive returned while Redis was down: %+v", d)
	default:
	}

	srv.start() // same port, empty
	rc := srv.client()
	deadline := time.Now().Add(15 * time.Second)
	for rc.ZScore(ctx, g.groupKey("r"), c).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("membership not restored after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ttl := rc.TTL(ctx, g.groupKey("r")).Val(); ttl <= 0 {
		t.Errorf("restored group has TTL %v", ttl)
	}
	py := startPython(t, map[string]any{"hosts": []string{srv.url()}, "prefix": g.cfg.Prefix})
	py.mustDo(map[string]any{"op": "group_send", "group": "r", "event": map[string]any{"type": "after"}})
	select {
	case d := <-got:
		if d.err != nil || !slices.Equal(d.chs, []string{c}) || dumps(t, d.ev) != `{"type": "after"}` {
			t.Fatalf("after: %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Receive did not resume after the restart")
	}
}

// TestSharding: Go and Python with the same two hosts deliver to each
// other, with groups and queues on both shards.
func TestSharding(t *testing.T) {
	a, b := startRedisServer(t), startRedisServer(t)
	hosts := []string{a.url(), b.url()}
	prefix := testPrefix()
	// Two Go processes whose queues are on different shards.
	g := newLayer(t, Config{Hosts: hosts, Prefix: prefix})
	g2 := newLayer(t, Config{Hosts: hosts, Prefix: prefix})
	for g2.queueShard == g.queueShard {
		_ = g2.Close()
		g2 = newLayer(t, Config{Hosts: hosts, Prefix: prefix})
	}
	py := startPython(t, map[string]any{"hosts": hosts, "prefix": prefix})
	ctx := context.Background()

	// Groups on each shard.
	var groups []string
	for i := 0; len(groups) < 2; i++ {
		name := fmt.Sprintf("chat_%d", i)
		if consistentHash(name, 2) == len(groups) {
			groups = append(groups, name)
		}
	}
	pch := py.mustDo(map[string]any{"op": "new_channel"}).Channel
	t.Logf("Go queue shard %d and %d, Python queue shard %d", g.queueShard, g2.queueShard,
		consistentHash(nonLocalName(pch), 2))

	c, c2 := g.NewChannel(), g2.NewChannel()
	for _, grp := range groups {
		if err := g.GroupAdd(ctx, grp, c); err != nil {
			t.Fatal(err)
		}
		if err := g2.GroupAdd(ctx, grp, c2); err != nil {
			t.Fatal(err)
		}
		py.mustDo(map[string]any{"op": "group_add", "group": grp, "channel": pch})
	}
	for _, grp := range groups {
		// Python → Go (and itself).
		py.mustDo(map[string]any{"op": "group_send", "group": grp, "event": rawJSON(fmt.Sprintf(`{"type": "py", "g": "%s"}`, grp))})
		for _, l := range []*Layer{g, g2} {
			chs, ev := receiveWithin(t, l, 5*time.Second)
			if len(chs) != 1 || dumps(t, ev) != fmt.Sprintf(`{"type": "py", "g": "%s"}`, grp) {
				t.Errorf("Go received %v %s", chs, dumps(t, ev))
			}
		}
		if r := py.mustDo(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.EventJSON != fmt.Sprintf(`{"type": "py", "g": "%s"}`, grp) {
			t.Errorf("Python received %s", r.EventJSON)
		}
		// Go → Python and Go.
		if err := g.GroupSend(ctx, grp, pyjson.Object{{Key: "type", Value: "go"}, {Key: "g", Value: grp}}); err != nil {
			t.Fatal(err)
		}
		if r := py.mustDo(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.EventJSON != fmt.Sprintf(`{"type": "go", "g": "%s"}`, grp) {
			t.Errorf("Python received %s", r.EventJSON)
		}
		for _, l := range []*Layer{g, g2} {
			if _, ev := receiveWithin(t, l, 5*time.Second); dumps(t, ev) != fmt.Sprintf(`{"type": "go", "g": "%s"}`, grp) {
				t.Errorf("Go received %s", dumps(t, ev))
			}
		}
	}
	// Go Send to a Python channel lands on the shard Python reads.
	for i := range 10 {
		if err := g.Send(ctx, pch, pyjson.Object{{Key: "type", Value: "direct"}, {Key: "i", Value: int64(i)}}); err != nil {
			t.Fatal(err)
		}
		if r := py.mustDo(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.EventJSON != fmt.Sprintf(`{"type": "direct", "i": %d}`, i) {
			t.Fatalf("Python received %s", r.EventJSON)
		}
	}
	// The keys really are spread over both servers.
	for i, s := range []*redisServer{a, b} {
		keys, err := s.client().Keys(ctx, prefix+"*").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			t.Errorf("server %d holds no keys", i)
		}
	}
}

func BenchmarkGroupSendReceive(b *testing.B) {
	l := newLayer(b, Config{})
	ctx := context.Background()
	c := l.NewChannel()
	if err := l.GroupAdd(ctx, "bench", c); err != nil {
		b.Fatal(err)
	}
	ev := mustObject(b, `{"type": "chat_message", "message": {"id": 1, "text": "hello", "sender": 7}}`)
	b.ResetTimer()
	for b.Loop() {
		if err := l.GroupSend(ctx, "bench", ev); err != nil {
			b.Fatal(err)
		}
		if _, _, err := l.Receive(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
