package testenv

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Redis is a redis-server of the test's own on a free loopback port, to
// stop and restart (the shared server at 127.0.0.1:6379 is never touched).
// It keeps nothing on disk: a restart comes back empty, as after a crash.
type Redis struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Redis{t: t, port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is redis://127.0.0.1:<port>.
func (r *Redis) URL() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) }

// Start (re)starts the server on its port and waits until it accepts connections.
func (r *Redis) Start() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Unavailable(r.t, "redis-server is not installed (apt-get install redis-server): %v", err)
	}
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("testenv: start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(r.port))
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("testenv: redis-server on port %d did not start", r.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server at once, as a crash would.
func (r *Redis) Stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}
