package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) {
	// Re-executed as the sidecar itself (runMain), with the arguments of
	// SIDECAR_ARGS.
	if os.Getenv("SIDECAR_RUN_MAIN") == "1" {
		os.Args = append(os.Args[:1], strings.Fields(os.Getenv("SIDECAR_ARGS"))...)
		main()
		return
	}
	testenv.Run(m)
}

const secret = "main-test-secret"

func testConfig(t *testing.T, dsn string) config.Config {
	t.Helper()
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("SECRET_KEY", secret)
	t.Setenv("LISTEN_ADDR", "127.0.0.1:0")
	t.Setenv("MEDIA_ROOT", t.TempDir())
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// started is the wired program running in the test.
type started struct {
	addr string
	stop func() error // cancels run (SIGTERM) and returns what it returned
}

// start runs the program with cfg until stop or the end of the test.
func start(t *testing.T, cfg config.Config) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ready) }()
	var once sync.Once
	var runErr error
	s := &started{stop: func() error {
		once.Do(func() { cancel(); runErr = <-errc })
		return runErr
	}}
	t.Cleanup(func() { _ = s.stop() })
	select {
	case s.addr = <-ready:
	case err := <-errc:
		once.Do(func() { cancel() })
		t.Fatalf("run: %v", err)
	}
	return s
}

// dialChat connects to a conversation and reads the three connect frames.
func dialChat(t *testing.T, addr string, conv int64, token string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws/chat/"+itoa(conv)+"/?token="+token, nil)
	if err != nil {
		t.Fatalf("connect to conversation %d: %v", conv, err)
	}
	t.Cleanup(func() { ws.Close() })
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := 0; i < 3; i++ {
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

// The wired program serves health, readiness and the chat route, and a
// cancelled context (SIGTERM) closes connections with 1001 and returns.
func TestRunServesAndShutsDown(t *testing.T) {
	db := testenv.Postgres(t)
	listener := db.CreateUser(t, "l@example.com", "", "listener")
	talker := db.CreateUser(t, "t@example.com", "", "talker")
	conv := db.CreateConversation(t, listener, talker, "active")
	tok := testenv.MintTokens(t, db.DSN, []string{"SECRET_KEY=" + secret}, talker)[talker].Access
	s := start(t, testConfig(t, db.DSN))
	addr := s.addr
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	ws := dialChat(t, addr, conv, tok)
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err := ws.ReadMessage()
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseGoingAway {
		t.Errorf("after shutdown: %v, want close 1001", err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("run returned %v", err)
	}
}

// /readyz says 503 when the database stops answering.
func TestReadyzWithoutDatabase(t *testing.T) {
	db := testenv.Postgres(t)
	addr := start(t, testConfig(t, db.DSN)).addr
	// Refuse new connections to the database and cut the open ones, from
	// the maintenance database.
	adm, err := sql.Open("postgres", strings.Replace(db.DSN, "/"+db.Name, "/postgres", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	for _, q := range []string{
		`ALTER DATABASE "` + db.Name + `" WITH ALLOW_CONNECTIONS false`,
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '` + db.Name + `'`,
	} {
		if _, err := adm.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	defer adm.Exec(`ALTER DATABASE "` + db.Name + `" WITH ALLOW_CONNECTIONS true`)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with the database refusing connections: %d, want 503", resp.StatusCode)
	}
}

// Start-up refuses bad settings and a schema it cannot use, with one line
// naming what to fix, and exits non-zero.
func TestStartupErrors(t *testing.T) {
	db := testenv.Postgres(t)
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"missing DATABASE_URL", []string{"DATABASE_URL="}, "DATABASE_URL"},
		{"bad number", []string{"MAX_FILE_BYTES=ten"}, "MAX_FILE_BYTES"},
		{"algorithm none", []string{"SIMPLE_JWT_ALGORITHM=none"}, "SIMPLE_JWT_ALGORITHM"},
		{"RS256 without key", []string{"SIMPLE_JWT_ALGORITHM=RS256"}, "SIMPLE_JWT_VERIFYING_KEY"},
		{"missing table", []string{"MESSAGE_TABLE=app_message"}, "MESSAGE_TABLE"},
		{"unknown column key", []string{"DB_COLUMNS=message.author:x"}, "DB_COLUMNS"},
		{"renamed column missing", []string{"DB_COLUMNS=message.sender_id:author_id"}, "author_id"},
		{"database unreachable", []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, "check schema"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SIDECAR_RUN_MAIN=1", "SIDECAR_ARGS=", "DATABASE_URL="+db.DSN, "SECRET_KEY=k",
				"LISTEN_ADDR=127.0.0.1:0", "MEDIA_ROOT="+t.TempDir(), "LOG_FORMAT=text")
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("started; output:\n%s", out)
			}
			last := lastLine(string(out))
			if !strings.Contains(last, tc.want) {
				t.Errorf("last line %q does not name %s", last, tc.want)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// With CHANNEL_LAYER=redis, /readyz also says 503 while Redis is down, and
// 200 again once it is back.
func TestReadyzWithoutRedis(t *testing.T) {
	db := testenv.Postgres(t)
	r := testenv.StartRedis(t)
	t.Setenv("CHANNEL_LAYER", "redis")
	t.Setenv("REDIS_URL", r.URL())
	addr := start(t, testConfig(t, db.DSN)).addr
	ready := func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ready(); code != http.StatusOK {
		t.Fatalf("/readyz with Redis up: %d", code)
	}
	r.Stop()
	if code := ready(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d, want 503", code)
	}
	r.Start()
	if code := ready(); code != http.StatusOK {
		t.Errorf("/readyz with Redis back: %d, want 200", code)
	}
}
