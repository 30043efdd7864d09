package demo

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// TestSchemaIsCurrent regenerates the schema from the Django fixture's
// migrations and fails when the embedded schema.sql differs.
func TestSchemaIsCurrent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "schema.sql")
	cmd := exec.Command("sh", "gen_schema.sh", out)
	cmd.Env = append(os.Environ(), "TESTENV_PYTHON="+testenv.Python())
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen_schema.sh: %v\n%s", err, b)
	}
	now, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, []byte(schemaSQL)) {
		t.Fatalf("demo/schema.sql is not what the migrations of tests/django make now; run `go generate ./demo`.\nnow:\n%s", now)
	}
}

// TestPrepare: the demo database passes the sidecar's schema check, Django's
// ORM reads its users (SimpleJWT mints tokens for them), and the demo's own
// tokens have SimpleJWT's header and claims in SimpleJWT's order and are
// accepted by the sidecar's verifier.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	d, err := Prepare(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	db, err := djangodb.OpenSQLite(d.DBPath, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := djangodb.New(db, djangodb.SQLite, djangodb.Schema{}, djangodb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema: %v", err)
	}
	conv, blocked, err := store.Conversation(ctx, d.ConversationID)
	if err != nil || blocked || conv.Status != "active" || conv.ListenerID != d.Listener.ID || conv.TalkerID != d.Talker.ID {
		t.Fatalf("conversation %+v blocked=%v err=%v", conv, blocked, err)
	}

	v, err := auth.NewVerifier(auth.Config{Algorithm: "HS256", SigningKey: d.SecretKey, UserIDClaim: "user_id", TokenTypeClaim: "token_type"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Participant{d.Listener, d.Talker} {
		if id, err := v.Verify(p.Token); err != nil || id != p.ID {
			t.Fatalf("Verify(%s token) = %d, %v", p.Role, id, err)
		}
	}

	py := testenv.MintTokens(t, "sqlite://"+d.DBPath, []string{"SECRET_KEY=" + d.SecretKey}, d.Talker.ID)[d.Talker.ID].Access
	ourHeader, ourClaims := tokenParts(t, d.Talker.Token)
	pyHeader, pyClaims := tokenParts(t, py)
	if ourHeader != pyHeader {
		t.Errorf("header %s, SimpleJWT's %s", ourHeader, pyHeader)
	}
	if !reflect.DeepEqual(claimKinds(t, ourClaims), claimKinds(t, pyClaims)) {
		t.Errorf("claims %s, SimpleJWT's %s", ourClaims, pyClaims)
	}
	if id, err := v.Verify(py); err != nil || id != d.Talker.ID {
		t.Errorf("SimpleJWT's token: %d, %v", id, err)
	}
}

func tokenParts(t *testing.T, tok string) (header, claims string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: want 3 parts", tok)
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	c, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("token %q: %v %v", tok, err1, err2)
	}
	return string(h), string(c)
}

// claimKinds is the claims' names in order, each with the JSON type and,
// for strings, the length of its value (jti is 32 hex digits).
func claimKinds(t *testing.T, claims string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(claims))
	dec.UseNumber()
	var out []string
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	for dec.More() {
		k, _ := dec.Token()
		v, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		kind := reflect.TypeOf(v).String()
		if s, ok := v.(string); ok && k != "token_type" {
			kind += ":" + strconv.Itoa(len(s))
		} else if ok {
			kind += ":" + s
		}
		out = append(out, k.(string)+"="+kind)
	}
	return out
}

func TestPrepareRefusesExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "db.sqlite3")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Prepare(context.Background(), Options{Dir: dir, DBPath: path})
	if err == nil || !strings.Contains(err.Error(), "-force") {
		t.Fatalf("Prepare over an existing file: %v, want a refusal naming -force", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatalf("the existing file was changed: %q", b)
	}
	if _, err := Prepare(context.Background(), Options{Dir: dir, DBPath: path, Overwrite: true}); err != nil {
		t.Fatalf("Prepare with Overwrite: %v", err)
	}
}

func TestMintAccessExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	_, claims := tokenParts(t, auth.MintAccess("k", 7, now, time.Hour))
	var c map[string]any
	if err := json.Unmarshal([]byte(claims), &c); err != nil {
		t.Fatal(err)
	}
	if c["exp"] != float64(1_700_003_600) || c["iat"] != float64(1_700_000_000) || c["user_id"] != float64(7) {
		t.Fatalf("claims %s", claims)
	}
}

// A database kept with -db keeps its media beside it, and Close removes
// neither; without -db both go with the temporary directory.
func TestKeptDatabaseKeepsMedia(t *testing.T) {
	dir := t.TempDir()
	d, err := Prepare(context.Background(), Options{DBPath: filepath.Join(dir, "chat.sqlite3")})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "media"); d.MediaRoot != want {
		t.Errorf("media %s, want %s beside the database", d.MediaRoot, want)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{d.DBPath, d.MediaRoot} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s gone after Close: %v", p, err)
		}
	}
	tmp, err := Prepare(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	if _, err := os.Stat(tmp.MediaRoot); err == nil {
		t.Errorf("temporary media %s left after Close", tmp.MediaRoot)
	}
}
