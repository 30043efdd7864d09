package redislayer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/pyjson"
)

func TestEncryptionWithPython(t *testing.T) {
	g := newLayer(t, Config{SymmetricEncryptionKeys: []string{"other-key", "s3cret"}})
	py := startPython(t, map[string]any{"hosts": []string{sharedRedis}, "prefix": g.cfg.Prefix,
		"symmetric_encryption_keys": []string{"s3cret"}})
	ctx := context.Background()
	ev := mustObject(t, richEvent)

	// Python encrypts with "s3cret"; Go decrypts with its second key.
	c := g.NewChannel()
	if err := g.GroupAdd(ctx, "enc", c); err != nil {
		t.Fatal(err)
	}
	py.mustDo(map[string]any{"op": "group_send", "group": "enc", "event": jsonValue(t, ev)})
	chs, got := receiveWithin(t, g, 5*time.Second)
	if !slices.Equal(chs, []string{c}) || dumps(t, got) != dumps(t, ev) {
		t.Fatalf("Go received %v %s", chs, dumps(t, got))
	}

	// Go encrypts with its first key, which Python does not have: dropped
	// by Python (InvalidToken); with a Go layer whose first key is
	// "s3cret" Python reads it.
	g2 := newLayer(t, Config{Hosts: []string{sharedRedis}, Prefix: g.cfg.Prefix, SymmetricEncryptionKeys: []string{"s3cret"}})
	pch := py.mustDo(map[string]any{"op": "new_channel"}).Channel
	if err := g2.Send(ctx, pch, ev); err != nil {
		t.Fatal(err)
	}
	members := g2.clients[0].ZRange(ctx, g2.cfg.Prefix+nonLocalName(pch), 0, -1).Val()
	if len(members) != 1 || len(members[0]) < prefixLen+6 || members[0][prefixLen:prefixLen+6] != "gAAAAA" {
		t.Fatalf("stored member is not prefix + Fernet token: %q", members)
	}
	if r := py.mustDo(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.EventJSON != dumps(t, ev) {
		t.Errorf("Python received %s", r.EventJSON)
	}
	if err := g.Send(ctx, pch, pyjson.Object{{Key: "type", Value: "wrong-key"}}); err != nil {
		t.Fatal(err)
	}
	if r := py.do(map[string]any{"op": "receive", "channel": pch, "timeout": 5}); r.OK || r.Error == "timeout" {
		t.Errorf("Python decrypted a message made with another key: %+v", r)
	}
}

func TestChannelCapacityRules(t *testing.T) {
	l := &Layer{metrics: newMetrics(), cfg: Config{Capacity: 100, ChannelCapacity: []CapacityRule{
		{Pattern: "http.request", Capacity: 200}, {Pattern: "specific.*", Capacity: 10}, {Pattern: "spec*", Capacity: 5},
	}}}
	for ch, want := range map[string]int{"http.request": 200, "specific.ab!cd": 10, "spec.x": 5, "other": 100} {
		if got := l.capacity(ch); got != want {
			t.Errorf("capacity(%q) = %d, want %d", ch, got, want)
		}
	}
}
