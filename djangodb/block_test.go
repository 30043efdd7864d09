package djangodb_test

import (
	"context"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Block and Unblock (the demo's buttons) leave the rows the REST endpoints
// leave: get_or_create writes one row with blocked_at, delete removes it.
func TestBlockUnblock(t *testing.T) {
	eachBackend(t, func(t *testing.T, be testenv.Backend) {
		ctx := context.Background()
		p := newPair(t, be, "active")
		at := time.Date(2026, 1, 14, 10, 0, 0, 123456789, time.UTC)
		for i, want := range []bool{true, false} {
			created, err := p.db.Block(ctx, p.listener.ID, p.talker.ID, at)
			if err != nil || created != want {
				t.Fatalf("Block #%d = %v, %v; want %v", i+1, created, err, want)
			}
		}
		var n int
		var blockedAt string
		q := `SELECT COUNT(*), MIN(CAST(blocked_at AS TEXT)) FROM listener_listenerblockedtalker WHERE listener_id = $1 AND talker_id = $2`
		if err := p.pg.DB.QueryRow(q, p.listener.ID, p.talker.ID).Scan(&n, &blockedAt); err != nil || n != 1 {
			t.Fatalf("block rows: %d, %v", n, err)
		}
		if be.Name == "sqlite" && blockedAt != djangodb.FormatTime(at) {
			t.Errorf("blocked_at stored as %q, want Django's %q", blockedAt, djangodb.FormatTime(at))
		}
		if _, blocked, err := p.db.Conversation(ctx, p.conv); err != nil || !blocked {
			t.Fatalf("after Block: blocked=%v, %v", blocked, err)
		}
		for i, want := range []bool{true, false} {
			deleted, err := p.db.Unblock(ctx, p.listener.ID, p.talker.ID)
			if err != nil || deleted != want {
				t.Fatalf("Unblock #%d = %v, %v; want %v", i+1, deleted, err, want)
			}
		}
		if _, blocked, err := p.db.Conversation(ctx, p.conv); err != nil || blocked {
			t.Fatalf("after Unblock: blocked=%v, %v", blocked, err)
		}
	})
}
