package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timing of a private cluster's server.
const (
	clusterInitTimeout  = 2 * time.Minute  // initdb (about a second)
	clusterStartTimeout = 60 * time.Second // until it answers (crash recovery included)
	clusterStopTimeout  = 30 * time.Second // a fast shutdown, before SIGKILL
)

// clusterSettings are the server settings of every private cluster: logical
// decoding, room for the parallel tests' slots and WAL senders, TCP only
// (no socket in the shared server's /var/run/postgresql), and no fsync,
// which tests do not need (the machine does not crash under them).
var clusterSettings = []string{
	"listen_addresses=127.0.0.1",
	"unix_socket_directories=",
	"wal_level=logical",
	"max_wal_senders=40",
	"max_replication_slots=40",
	"max_connections=200",
	"fsync=off",
	"shared_buffers=32MB",
	"log_min_messages=warning",
}

// Cluster is a PostgreSQL server of the tests' own: a new data directory
// (initdb, trust authentication, user postgres) in a temporary directory,
// listening on a free port of 127.0.0.1 with wal_level=logical, for tests
// that need settings the shared server lacks or that stop and restart the
// server. On root it runs as the postgres OS user, which initdb requires.
// The server process dies with the test process, should that be killed.
type Cluster struct {
	bin      string // directory holding initdb and postgres
	dir      string // temporary directory: data/ and server.log
	port     int
	settings []string
	cred     *syscall.Credential // nil when not root

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

var (
	logicalOnce sync.Once
	logical     *Cluster
	logicalErr  error
)

// LogicalCluster returns the test process's shared private cluster,
// starting it on first use; Run stops and removes it when the tests end.
// Tests that stop or restart it affect every test using it: such tests
// should not run in parallel with others, or should use NewCluster.
func LogicalCluster(t testing.TB) *Cluster {
	t.Helper()
	logicalOnce.Do(func() {
		logical, logicalErr = startCluster(nil)
		if logical != nil {
			c := logical
			addCleanup(func() {
				if err := c.remove(); err != nil {
					fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
				}
			})
		}
	})
	if logicalErr != nil {
		t.Fatalf("testenv: %v", logicalErr)
	}
	return logical
}

// NewCluster starts a private cluster for one test, with extra server
// settings ("name=value", after the defaults, so they win), and stops and
// removes it when the test ends.
func NewCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	c, err := startCluster(settings)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := c.remove(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return c
}

// URL is the admin URL of the server (database postgres, user postgres).
func (c *Cluster) URL() string { return c.DatabaseURL("postgres") }

// DatabaseURL is the URL of database name on the server, as user postgres.
func (c *Cluster) DatabaseURL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// Port is the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Postgres creates a fresh Django-migrated database on the cluster (a copy
// of a template migrated once per cluster) and drops it when the test ends.
func (c *Cluster) Postgres(t testing.TB) *Database {
	t.Helper()
	return PostgresOn(t, c.URL())
}

// Start starts the stopped server and waits until it answers.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Stop shuts the server down fast (SIGINT: sessions are ended, then a
// checkpoint) and waits until it has exited.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop(syscall.SIGINT); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Crash stops the server as a crash would (SIGQUIT, PostgreSQL's immediate
// shutdown: no checkpoint; the next Start runs crash recovery).
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if err := c.stop(syscall.SIGQUIT); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Restart is Stop then Start, on the same port and data.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	c.Stop(t)
	c.Start(t)
}

// ServerLog returns what the server has written to its log so far.
func (c *Cluster) ServerLog() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return string(b)
}

// startCluster runs initdb into a new temporary directory and starts the server.
func startCluster(settings []string) (*Cluster, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "testenv-pg-")
	if err != nil {
		return nil, fmt.Errorf("private cluster: %w", err)
	}
	c := &Cluster{bin: bin, dir: dir, port: port, settings: settings}
	if err := c.initdb(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	serverAt(c.URL(), true)
	return c, nil
}

// pgBinDir finds initdb and postgres: TESTENV_PG_BIN, else the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout), else PATH.
func pgBinDir() (string, error) {
	return findPGBin(os.Getenv("TESTENV_PG_BIN"), "/usr/lib/postgresql/*/bin", exec.LookPath)
}

// missingPG tells what to install when the server programs are missing.
const missingPG = "install the postgresql package (apt-get install postgresql), or set TESTENV_PG_BIN to the directory of initdb and postgres"

func findPGBin(envDir, pattern string, lookPath func(string) (string, error)) (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return false
			}
		}
		return true
	}
	if envDir != "" {
		if !has(envDir) {
			return "", fmt.Errorf("PostgreSQL server programs (initdb, postgres) not found in TESTENV_PG_BIN=%s: %s", envDir, missingPG)
		}
		return envDir, nil
	}
	dirs, _ := filepath.Glob(pattern)
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if p, err := lookPath("initdb"); err == nil && has(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("PostgreSQL server programs (initdb, postgres) not found in %s or PATH: %s", pattern, missingPG)
}

// pgVersion is the major version in /usr/lib/postgresql/<version>/bin.
func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("private cluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// initdb creates the data directory, as the postgres OS user when root.
func (c *Cluster) initdb() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("private cluster: initdb refuses to run as root and there is no postgres user to run it as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(c.dir, int(uid), int(gid)); err != nil {
			return fmt.Errorf("private cluster: chown %s: %w", c.dir, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterInitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "initdb"), "-D", filepath.Join(c.dir, "data"),
		"-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("private cluster: initdb: %v\n%s", err, out)
	}
	return nil
}

// start runs postgres and waits until it answers a query.
func (c *Cluster) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("private cluster: already running")
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("private cluster: %w", err)
	}
	defer logf.Close() // the child has its own copy
	args := []string{"-D", filepath.Join(c.dir, "data"), "-p", strconv.Itoa(c.port)}
	for _, s := range append(append([]string{}, clusterSettings...), c.settings...) {
		args = append(args, "-c", s)
	}
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), args...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGQUIT on our death is an immediate shutdown: no server outlives a
	// test process killed by a timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("private cluster: start postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c.cmd, c.exited = cmd, exited
	return c.waitReady(exited)
}

// waitReady polls the server with a query until it answers.
func (c *Cluster) waitReady(exited <-chan struct{}) error {
	db, err := sql.Open("postgres", c.URL())
	if err != nil {
		return fmt.Errorf("private cluster: %w", err)
	}
	defer db.Close()
	deadline := time.Now().Add(clusterStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.QueryRowContext(ctx, "SELECT 1").Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			c.cmd = nil
			return fmt.Errorf("private cluster: postgres on port %d exited at start:\n%s", c.port, c.ServerLog())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("private cluster: postgres on port %d does not answer after %s: %v\n%s", c.port, clusterStartTimeout, err, c.ServerLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop signals the postmaster and waits until it exits, killing it after
// clusterStopTimeout. A stopped server is left as it is.
func (c *Cluster) stop(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	cmd, exited := c.cmd, c.exited
	c.cmd, c.exited = nil, nil
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("private cluster: signal postgres: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(clusterStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("private cluster: postgres on port %d did not stop within %s; killed", c.port, clusterStopTimeout)
	}
}

// remove stops the server at once and deletes its directory.
func (c *Cluster) remove() error {
	forgetServer(c.URL())
	err := c.stop(syscall.SIGQUIT)
	if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
		err = fmt.Errorf("private cluster: remove %s: %w", c.dir, rmErr)
	}
	return err
}

// String names the cluster in messages.
func (c *Cluster) String() string {
	return "private PostgreSQL on 127.0.0.1:" + strconv.Itoa(c.port) + " (" + strings.TrimSuffix(c.dir, "/") + ")"
}
