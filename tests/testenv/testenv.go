// Package testenv gives integration tests a real Django schema on a real
// PostgreSQL server or in a real SQLite file, fixtures written the way Django writes them, and tokens
// minted by SimpleJWT itself (through the reference project in tests/django).
//
// A test package that uses Postgres should run its tests through Run, so that
// the template database built by Django's migrations is dropped at the end:
//
//	func TestMain(m *testing.M) { testenv.Run(m) }
//
// SQLite databases are copies of one file migrated once per test process,
// opened with djangodb.OpenSQLite, the sidecar's own opener.
//
// The PostgreSQL server is taken from TEST_POSTGRES_URL (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable). Python is
// /usr/bin/python3 (override with TESTENV_PYTHON); it must have Debian's
// python3-django, djangorestframework(-simplejwt) and channels packages.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	_ "github.com/lib/pq" // PostgreSQL driver

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
)

// DefaultPostgresURL is the server used when TEST_POSTGRES_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// manageTimeout bounds one manage.py run (migrate takes a few seconds).
const manageTimeout = 3 * time.Minute

// Database is a fresh database holding the Django schema.
type Database struct {
	// DSN is the database's DATABASE_URL, which the sidecar and the Django
	// project both accept: a lib/pq URL (postgres://user@host:port/name?sslmode=...)
	// or sqlite:///abs/path/db.sqlite3.
	DSN string
	// DB is an open handle on DSN (lib/pq, or djangodb.OpenSQLite); it is
	// closed when the test ends.
	DB *sql.DB
	// Name is the database name (sidecar_test_<pid>_<random>) or the
	// SQLite file's path.
	Name string
	// Dialect is the engine: djangodb.Postgres or djangodb.SQLite.
	Dialect djangodb.Dialect
}

// Time is t as a query argument for a datetime column, written as Django
// writes it: a time.Time for PostgreSQL, Django's UTC text for SQLite.
func (d *Database) Time(t time.Time) any { return d.Fixture().Time(t) }

// Tokens are a SimpleJWT access/refresh pair for one user.
type Tokens struct {
	Access  string `json:"access"`
	Refresh string `json:"refresh"`
}

var (
	tmplOnce sync.Once
	tmplName string // set once the template exists
	tmplErr  error
	adminMu  sync.Mutex
	adminDB  *sql.DB
)

// Run runs the tests of a package (m.Run), drops the template database that
// Postgres built, if any, and exits with the tests' status. Call it from TestMain.
func Run(m *testing.M) {
	code := m.Run()
	for _, f := range cleanups {
		f()
	}
	if err := dropTemplate(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	}
	if sqliteTmpl != "" {
		os.RemoveAll(filepath.Dir(sqliteTmpl))
	}
	os.Exit(code)
}

// Main is the same as Run.
func Main(m *testing.M) { Run(m) }

func dropTemplate() error {
	adminMu.Lock()
	defer adminMu.Unlock()
	if adminDB == nil {
		return nil
	}
	defer func() { adminDB.Close(); adminDB = nil }()
	if tmplName == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(tmplName)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop template database %s: %w", tmplName, err)
	}
	return nil
}

// serverURL returns the admin URL of the PostgreSQL server.
func serverURL() string {
	if s := os.Getenv("TEST_POSTGRES_URL"); s != "" {
		return s
	}
	return DefaultPostgresURL
}

// dbURL returns the server URL pointed at database name.
func dbURL(server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("TEST_POSTGRES_URL %q: %w", server, err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// admin returns a connection pool on the server's admin database, failing the
// test with instructions when the server does not answer.
func admin(t testing.TB) *sql.DB {
	t.Helper()
	adminMu.Lock()
	defer adminMu.Unlock()
	if adminDB != nil {
		return adminDB
	}
	server := serverURL()
	db, err := sql.Open("postgres", server)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err != nil {
			db.Close()
		}
	}
	if err != nil {
		Unavailable(t, "PostgreSQL does not answer at %s (%v): start it (pg_ctlcluster 15 main start) or set TEST_POSTGRES_URL", redact(server), err)
	}
	adminDB = db
	return db
}

func randomSuffix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// buildTemplate creates sidecar_tmpl_<pid>_<random> on server (reached
// through adm) and runs Django's migrate into it.
func buildTemplate(adm *sql.DB, server string) (string, error) {
	name := fmt.Sprintf("sidecar_tmpl_%d_%s", os.Getpid(), randomSuffix())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := adm.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		return "", fmt.Errorf("create template database %s: %w", name, err)
	}
	dsn, err := dbURL(server, name)
	if err != nil {
		return "", err
	}
	if _, stderr, err := manage([]string{"DATABASE_URL=" + dsn}, "migrate", "--noinput", "-v", "0"); err != nil {
		adm.Exec("DROP DATABASE IF EXISTS " + quoteIdent(name) + " WITH (FORCE)")
		return "", fmt.Errorf("manage.py migrate into %s: %v\n%s", name, err, stderr)
	}
	return name, nil
}

// Postgres creates a fresh database holding the Django schema (a copy of a
// template migrated once per test process by tests/django/manage.py migrate)
// and drops it when the test ends. It never skips: a server that does not
// answer fails the test.
func Postgres(t testing.TB) *Database {
	t.Helper()
	adm := admin(t)
	RequirePython(t)
	tmplOnce.Do(func() { tmplName, tmplErr = buildTemplate(adm, serverURL()) })
	if tmplErr != nil {
		t.Fatalf("testenv: %v", tmplErr)
	}
	return cloneTemplate(t, adm, serverURL(), tmplName)
}

// cloneTemplate creates sidecar_test_<pid>_<random> from tmpl on server
// (reached through adm), opens it, and drops it when the test ends.
func cloneTemplate(t testing.TB, adm *sql.DB, server, tmpl string) *Database {
	t.Helper()
	name := fmt.Sprintf("sidecar_test_%d_%s", os.Getpid(), randomSuffix())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := adm.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(name)+" TEMPLATE "+quoteIdent(tmpl)); err != nil {
		t.Fatalf("testenv: create database %s from template %s: %v", name, tmpl, err)
	}
	dsn, err := dbURL(server, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("testenv: open %s: %v", redact(dsn), err)
	}
	t.Cleanup(func() {
		db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A feed's temporary slot lives until the server's WAL sender
		// notices its client left, a moment after the sidecar stopped.
		for {
			_, err := adm.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(name)+" WITH (FORCE)")
			var pqErr *pq.Error
			if errors.As(err, &pqErr) && pqErr.Code == "55006" && strings.Contains(pqErr.Message, "replication slot") && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Errorf("testenv: drop database %s: %v", name, err)
			}
			break
		}
	})
	return &Database{DSN: dsn, DB: db, Name: name, Dialect: djangodb.Postgres}
}

var (
	sqliteOnce sync.Once
	sqliteTmpl string // the migrated template file, once built
	sqliteErr  error
)

// sqliteMaxConns is the pool size of a test's SQLite handle.
const sqliteMaxConns = 8

// SQLite creates a fresh SQLite file holding the Django schema (a copy of a
// file migrated once per test process by tests/django/manage.py migrate),
// opened through djangodb.OpenSQLite as the sidecar opens it. The file is
// removed when the test ends.
func SQLite(t testing.TB) *Database {
	t.Helper()
	RequirePython(t)
	sqliteOnce.Do(func() { sqliteTmpl, sqliteErr = buildSQLiteTemplate() })
	if sqliteErr != nil {
		t.Fatalf("testenv: %v", sqliteErr)
	}
	path := filepath.Join(t.TempDir(), "db.sqlite3")
	if err := copyFile(sqliteTmpl, path); err != nil {
		t.Fatalf("testenv: copy SQLite template: %v", err)
	}
	db, err := djangodb.OpenSQLite(path, sqliteMaxConns)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return &Database{DSN: "sqlite://" + path, DB: db, Name: path, Dialect: djangodb.SQLite}
}

// buildSQLiteTemplate runs Django's migrate into a new file in a temporary
// directory, which Run removes.
func buildSQLiteTemplate() (string, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("sidecar_sqlite_tmpl_%d_", os.Getpid()))
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "db.sqlite3")
	if _, stderr, err := manage([]string{"DATABASE_URL=sqlite://" + path}, "migrate", "--noinput", "-v", "0"); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("manage.py migrate into %s: %v\n%s", path, err, stderr)
	}
	return path, nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// Backend is a way to get a fresh database, for tests that run on each.
type Backend struct {
	Name string // "postgres" or "sqlite"
	New  func(t testing.TB) *Database
}

// Backends are PostgreSQL and SQLite, the engines the sidecar serves.
var Backends = []Backend{{"postgres", Postgres}, {"sqlite", SQLite}}

// Fixture writes rows into the database the way Django writes them.
func (d *Database) Fixture() *fixture.Writer { return fixture.New(d.DB, d.Dialect) }

// CreateUser inserts a users_user row the way UserManager.create_user would
// (active, not staff, not verified, language 'en', an unusable password) and
// returns its id. userType is 'talker', 'listener' or 'superadmin'.
func (d *Database) CreateUser(t testing.TB, email, fullName, userType string) int64 {
	t.Helper()
	id, err := d.Fixture().User(context.Background(), fixture.User{Email: email, FullName: fullName, Type: userType})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return id
}

// SetUserActive sets users_user.is_active (and updated_at) for user id.
func (d *Database) SetUserActive(t testing.TB, id int64, active bool) {
	t.Helper()
	if err := d.Fixture().SetUserActive(context.Background(), id, active); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// CreateConversation inserts a chat_conversation row between listenerID and
// talkerID with the given status ('pending', 'active', 'rejected', 'closed')
// and returns its id. accepted_at is set for 'active' and 'closed', rejected_at for
// 'rejected'; last_message_at is NULL and initial_message is empty.
func (d *Database) CreateConversation(t testing.TB, listenerID, talkerID int64, status string) int64 {
	t.Helper()
	id, err := d.Fixture().Conversation(context.Background(), fixture.Conversation{
		ListenerID: listenerID, TalkerID: talkerID, Status: status})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return id
}

// SetConversationStatus sets chat_conversation.status (and updated_at).
func (d *Database) SetConversationStatus(t testing.TB, id int64, status string) {
	t.Helper()
	if err := d.Fixture().SetConversationStatus(context.Background(), id, status); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Block makes listenerID block talkerID (a listener_listenerblockedtalker row,
// as the REST block_talker endpoint's get_or_create leaves it). Blocking twice is harmless.
func (d *Database) Block(t testing.TB, listenerID, talkerID int64) {
	t.Helper()
	if _, err := d.Fixture().Block(context.Background(), listenerID, talkerID); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Unblock deletes the block row of (listenerID, talkerID), if any.
func (d *Database) Unblock(t testing.TB, listenerID, talkerID int64) {
	t.Helper()
	if _, err := d.Fixture().Unblock(context.Background(), listenerID, talkerID); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Mint returns access and refresh tokens for userIDs, signed with secret
// (HS256) in SimpleJWT's exact shape by auth.Mint, valid for an hour. It
// needs no Python; MintTokens has SimpleJWT itself mint them.
func Mint(secret string, userIDs ...int64) map[int64]Tokens {
	now := time.Now()
	out := make(map[int64]Tokens, len(userIDs))
	for _, id := range userIDs {
		out[id] = Tokens{
			Access:  auth.MintAccess(secret, id, now, time.Hour),
			Refresh: auth.Mint(secret, auth.Token{Type: "refresh", UserID: id, IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour)}),
		}
	}
	return out
}

// MintTokens mints SimpleJWT tokens for userIDs with `manage.py mint_tokens`,
// run against database dsn (as DATABASE_URL) with the extra environment env
// (e.g. "SECRET_KEY=...", "SIMPLE_JWT_ALGORITHM=RS256", "SIMPLE_JWT_SIGNING_KEY=<PEM>").
// The users must exist. A failure fails the test with the command's stderr.
func MintTokens(t testing.TB, dsn string, env []string, userIDs ...int64) map[int64]Tokens {
	t.Helper()
	RequirePython(t)
	args := []string{"mint_tokens"}
	for _, id := range userIDs {
		args = append(args, strconv.FormatInt(id, 10))
	}
	fullEnv := append(append([]string{}, env...), "DATABASE_URL="+dsn)
	stdout, stderr, err := manage(fullEnv, args...)
	if err != nil {
		t.Fatalf("testenv: manage.py %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	var raw map[string]Tokens
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatalf("testenv: mint_tokens output %q: %v\nstderr: %s", stdout, err, stderr)
	}
	out := make(map[int64]Tokens, len(raw))
	for k, v := range raw {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			t.Fatalf("testenv: mint_tokens output key %q: %v", k, err)
		}
		out[id] = v
	}
	for _, id := range userIDs {
		if _, ok := out[id]; !ok {
			t.Fatalf("testenv: mint_tokens gave no token for user %d", id)
		}
	}
	return out
}

// RunManage runs `python3 tests/django/manage.py args...` with the current
// environment plus env (later entries win), and returns its stdout. A failure
// fails the test with the command's stderr. Pass DATABASE_URL in env unless
// the command needs no database.
func RunManage(t testing.TB, env []string, args ...string) string {
	t.Helper()
	RequirePython(t)
	stdout, stderr, err := manage(env, args...)
	if err != nil {
		t.Fatalf("testenv: manage.py %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return stdout
}

// Python returns the interpreter used for the Django project:
// TESTENV_PYTHON, or /usr/bin/python3.
func Python() string {
	if p := os.Getenv("TESTENV_PYTHON"); p != "" {
		return p
	}
	return "/usr/bin/python3"
}

// manage runs manage.py; it does not touch t, so it is safe inside sync.Once.
func manage(env []string, args ...string) (stdout, stderr string, err error) {
	root, err := repoRoot()
	if err != nil {
		return "", err.Error(), err
	}
	dir := filepath.Join(root, "tests", "django")
	ctx, cancel := context.WithTimeout(context.Background(), manageTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Python(), append([]string{filepath.Join(dir, "manage.py")}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// RepoRoot returns the directory holding go.mod, found by walking up from the
// working directory (falling back to this source file's location).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return root
}

func repoRoot() (string, error) {
	starts := []string{}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if _, err := os.Stat(filepath.Join(dir, "tests", "django", "manage.py")); err == nil {
					return dir, nil
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("cannot find the repository root (a directory with go.mod and tests/django/manage.py) above the working directory")
}

// DjangoDir returns the absolute path of tests/django (the reference Django project).
func DjangoDir(t testing.TB) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "tests", "django")
}
