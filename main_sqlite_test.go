package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/app"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// DATABASE_URL=sqlite:///… serves Django's SQLite file: a message sent
// over the WebSocket is written there.
func TestRunSQLite(t *testing.T) {
	db := testenv.SQLite(t)
	listener := db.CreateUser(t, "l@example.com", "", "listener")
	talker := db.CreateUser(t, "t@example.com", "", "talker")
	conv := db.CreateConversation(t, listener, talker, "active")
	tok := testenv.Mint(secret, talker)[talker].Access
	s := start(t, testConfig(t, db.DSN))
	ws := dialChat(t, s.addr, conv, tok)
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
	if err := s.stop(); err != nil {
		t.Errorf("run returned %v", err)
	}
}

// A missing SQLite file stops start-up naming DATABASE_URL; the sidecar
// never creates Django's database.
func TestSQLiteMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "db.sqlite3")
	cfg := testConfig(t, "sqlite://"+missing)
	a, err := app.New(context.Background(), cfg, slog.New(slog.DiscardHandler), app.Options{})
	if err == nil {
		a.Close()
		t.Fatalf("app.New(%s) succeeded", cfg.DatabaseURL)
	}
	if !strings.HasPrefix(err.Error(), "DATABASE_URL:") {
		t.Errorf("app.New = %v; want an error naming DATABASE_URL", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("the missing file was created")
	}
}
