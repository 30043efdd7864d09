package testenv_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// jwtPayload decodes the middle segment of a JWT without verifying it.
func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments, want 3", tok, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("decode payload of %q: %v", tok, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	return m
}

func countBlocks(t *testing.T, db *testenv.Database, listener, talker int64) int {
	t.Helper()
	var n int
	if err := db.DB.QueryRow(`SELECT count(*) FROM listener_listenerblockedtalker
		WHERE listener_id = $1 AND talker_id = $2`, listener, talker).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFixturesAndTokens(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)

	listener := db.CreateUser(t, "l@example.com", "Lena Listener", "listener")
	talker := db.CreateUser(t, "t@example.com", "", "talker")
	conv := db.CreateConversation(t, listener, talker, "active")

	var status, initial string
	var lid, tid int64
	if err := db.DB.QueryRow(`SELECT listener_id, talker_id, status, initial_message
		FROM chat_conversation WHERE id = $1`, conv).Scan(&lid, &tid, &status, &initial); err != nil {
		t.Fatal(err)
	}
	if lid != listener || tid != talker || status != "active" || initial != "" {
		t.Fatalf("conversation row = (%d, %d, %q, %q)", lid, tid, status, initial)
	}

	db.Block(t, listener, talker)
	db.Block(t, listener, talker) // idempotent, like get_or_create
	if n := countBlocks(t, db, listener, talker); n != 1 {
		t.Fatalf("after Block: %d rows, want 1", n)
	}
	db.Unblock(t, listener, talker)
	if n := countBlocks(t, db, listener, talker); n != 0 {
		t.Fatalf("after Unblock: %d rows, want 0", n)
	}

	db.SetUserActive(t, talker, false)
	var active bool
	if err := db.DB.QueryRow(`SELECT is_active FROM users_user WHERE id = $1`, talker).Scan(&active); err != nil {
		t.Fatal(err)
	}
	if active {
		t.Fatal("SetUserActive(false) left is_active true")
	}

	toks := testenv.MintTokens(t, db.DSN, nil, listener, talker)
	for _, id := range []int64{listener, talker} {
		access := jwtPayload(t, toks[id].Access)
		if access["token_type"] != "access" || access["user_id"] != float64(id) {
			t.Errorf("access payload of %d = %v", id, access)
		}
		if jti, _ := access["jti"].(string); len(jti) != 32 {
			t.Errorf("access jti = %v, want 32 hex chars", access["jti"])
		}
		if exp, iat := access["exp"].(float64), access["iat"].(float64); exp-iat != 3600 {
			t.Errorf("access exp-iat = %v, want 3600 (ACCESS_TOKEN_LIFETIME_SECONDS default)", exp-iat)
		}
		refresh := jwtPayload(t, toks[id].Refresh)
		if refresh["token_type"] != "refresh" || refresh["user_id"] != float64(id) {
			t.Errorf("refresh payload of %d = %v", id, refresh)
		}
	}
}

func TestDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := testenv.Postgres(t), testenv.Postgres(t)
	if a.Name == b.Name {
		t.Fatalf("two Postgres calls gave the same database %s", a.Name)
	}
	a.CreateUser(t, "same@example.com", "", "talker")
	b.CreateUser(t, "same@example.com", "", "talker") // unique email: would fail if shared
	var n int
	if err := b.DB.QueryRow(`SELECT count(*) FROM users_user`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("second database has %d users, want 1", n)
	}
}

func TestMintTokensSettingsFromEnv(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	u := db.CreateUser(t, "x@example.com", "X", "talker")
	toks := testenv.MintTokens(t, db.DSN, []string{"ACCESS_TOKEN_LIFETIME_SECONDS=60", "SIMPLE_JWT_ALGORITHM=HS512"}, u)
	p := jwtPayload(t, toks[u].Access)
	if exp, iat := p["exp"].(float64), p["iat"].(float64); exp-iat != 60 {
		t.Errorf("exp-iat = %v, want 60", exp-iat)
	}
	hdr, err := base64.RawURLEncoding.DecodeString(strings.Split(toks[u].Access, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	if string(hdr) != `{"alg":"HS512","typ":"JWT"}` {
		t.Errorf("header = %s", hdr)
	}
}

func TestDjangoDir(t *testing.T) {
	out := testenv.RunManage(t, nil, "check")
	if !strings.Contains(out, "no issues") {
		t.Errorf("manage.py check said %q", out)
	}
}

func TestStartDaphne(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	db.CreateUser(t, "d@example.com", "", "talker")
	start := time.Now()
	d := testenv.StartDaphne(t, []string{"DATABASE_URL=" + db.DSN, "MEDIA_ROOT=" + t.TempDir()})
	t.Logf("daphne listening after %v", time.Since(start))
	resp, err := http.Post("http://"+d.Addr+"/api/token/", "application/json",
		strings.NewReader(`{"email": "d@example.com", "password": "wrong"}`))
	if err != nil {
		t.Fatalf("POST /api/token/: %v\n%s", err, d.Log())
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /api/token/ = %d %s, want 401", resp.StatusCode, body)
	}
}

// fixture.Pair, what the load tools seed per conversation: two new users
// of the right types and an active conversation between them.
func TestFixturePair(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	l, tk, conv, err := db.Fixture().Pair(context.Background(), "pair-1")
	if err != nil {
		t.Fatal(err)
	}
	var lid, tid int64
	var status, lemail, ltype, temail, ttype string
	if err := db.DB.QueryRow(`SELECT c.listener_id, c.talker_id, c.status, l.email, l.user_type, t.email, t.user_type
		FROM chat_conversation c JOIN users_user l ON l.id = c.listener_id JOIN users_user t ON t.id = c.talker_id
		WHERE c.id = $1`, conv).Scan(&lid, &tid, &status, &lemail, &ltype, &temail, &ttype); err != nil {
		t.Fatal(err)
	}
	if lid != l || tid != tk || status != "active" || lemail != "pair-1-listener@example.com" || ltype != "listener" ||
		temail != "pair-1-talker@example.com" || ttype != "talker" {
		t.Errorf("Pair wrote (%d, %d, %s, %s %s, %s %s), returned (%d, %d)", lid, tid, status, lemail, ltype, temail, ttype, l, tk)
	}
	if _, _, _, err := db.Fixture().Pair(context.Background(), "pair-1"); err == nil {
		t.Error("a second Pair with the same prefix: no error, want the email's unique constraint")
	}
}
