package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// pgServer is a PostgreSQL server other than TEST_POSTGRES_URL's, with the
// Django template built on it once per test process.
type pgServer struct {
	url   string
	owned bool // the server belongs to a Cluster, which removes it whole

	once sync.Once
	adm  *sql.DB
	tmpl string
	err  error
}

var (
	serversMu sync.Mutex
	servers   = map[string]*pgServer{}
	cleanupMu sync.Mutex // guards cleanups against parallel tests
)

// addCleanup has Run call f when the tests end.
func addCleanup(f func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, f)
}

// PostgresOn is Postgres on another server: server is an admin URL like
// TEST_POSTGRES_URL's (postgres://user@host:port/postgres?sslmode=disable).
// The Django template is migrated once per server and test process; a
// server that does not answer fails the test.
func PostgresOn(t testing.TB, server string) *Database {
	t.Helper()
	if server == serverURL() {
		return Postgres(t)
	}
	s := serverAt(server, false)
	s.once.Do(func() { s.err = s.open() })
	if s.err != nil {
		t.Fatalf("testenv: %v", s.err)
	}
	return cloneTemplate(t, s.adm, server, s.tmpl)
}

// serverAt returns the registry entry of url, creating it.
func serverAt(url string, owned bool) *pgServer {
	serversMu.Lock()
	defer serversMu.Unlock()
	s := servers[url]
	if s == nil {
		s = &pgServer{url: url, owned: owned}
		servers[url] = s
	}
	return s
}

// forgetServer closes url's admin pool and forgets its template, for a
// Cluster that is being removed (its port may be reused by the next one).
func forgetServer(url string) {
	serversMu.Lock()
	s := servers[url]
	delete(servers, url)
	serversMu.Unlock()
	if s != nil && s.adm != nil {
		s.adm.Close()
	}
}

// open connects to the server and builds its template; a server not owned
// by a Cluster gets its template dropped when Run ends.
func (s *pgServer) open() error {
	db, err := sql.Open("postgres", s.url)
	if err != nil {
		return fmt.Errorf("open %s: %w", redact(s.url), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = db.PingContext(ctx)
	cancel()
	if err != nil {
		db.Close()
		return fmt.Errorf("PostgreSQL does not answer at %s: %w", redact(s.url), err)
	}
	s.adm = db
	if s.tmpl, err = buildTemplate(db, s.url); err != nil {
		return err
	}
	if !s.owned {
		addCleanup(func() { s.dropTemplate() })
	}
	return nil
}

func (s *pgServer) dropTemplate() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.adm.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(s.tmpl)+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: drop template database %s on %s: %v\n", s.tmpl, redact(s.url), err)
	}
	s.adm.Close()
}
