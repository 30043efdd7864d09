package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// DATABASE_URL=sqlite:///… serves Django's SQLite file: a message sent
// over the WebSocket is written there.
func TestRunSQLite(t *testing.T) {
	db := testenv.SQLite(t)
	listener := db.CreateUser(t, "l@example.com", "", "listener")
	talker := db.CreateUser(t, "t@example.com", "", "talker")
	conv := db.CreateConversation(t, listener, talker, "active")
	tok := testenv.MintTokens(t, db.DSN, []string{"SECRET_KEY=" + secret}, talker)[talker].Access
	cfg := testConfig(t, db.DSN)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("run: %v", err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws/chat/"+itoa(conv)+"/?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < 3; i++ {
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type": "chat_message", "message": "on sqlite"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.ReadMessage(); err != nil || !strings.Contains(string(b), `"new_message"`) {
		t.Fatalf("reply %s, %v", b, err)
	}
	var content string
	if err := db.DB.QueryRow(`SELECT content FROM chat_message WHERE conversation_id = $1`, conv).Scan(&content); err != nil || content != "on sqlite" {
		t.Errorf("row content %q, %v", content, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("run returned %v", err)
	}
}

// A missing SQLite file stops start-up naming DATABASE_URL; the sidecar
// never creates Django's database.
func TestOpenDatabaseSQLiteMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "db.sqlite3")
	cfg := testConfig(t, "sqlite://"+missing)
	db, dialect, err := openDatabase(cfg)
	if err == nil {
		db.Close()
		t.Fatalf("openDatabase(%s) succeeded", cfg.DatabaseURL)
	}
	if dialect != djangodb.SQLite || !strings.HasPrefix(err.Error(), "DATABASE_URL:") {
		t.Errorf("openDatabase = %v, %v; want SQLite and an error naming DATABASE_URL", dialect, err)
	}
}
