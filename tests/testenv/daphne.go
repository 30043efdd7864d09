package testenv

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Daphne is the reference Django project (tests/django) served by Daphne:
// the Python ChatConsumer, ConversationListConsumer and the REST endpoints.
type Daphne struct {
	// Addr is host:port, e.g. "127.0.0.1:41234"; use ws://Addr/ws/chat/<id>/?token=...
	// and http://Addr/api/... .
	Addr string
	cmd  *exec.Cmd
	log  *syncBuffer
}

// Log returns everything Daphne has written so far (stdout and stderr).
func (d *Daphne) Log() string { return d.log.String() }

// StartDaphne runs `python3 -m daphne project.asgi:application` from
// tests/django on a free loopback port, with the current environment plus env
// (pass DATABASE_URL, and e.g. CHANNEL_LAYER=redis, CHANNEL_LAYER_PREFIX,
// PUBLIC_BASE_URL, MEDIA_ROOT, SECRET_KEY). It waits until the port accepts
// connections and stops the process when the test ends; on failure the test
// fails with Daphne's output.
func StartDaphne(t testing.TB, env []string) *Daphne {
	t.Helper()
	RequirePython(t)
	dir := DjangoDir(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: pick a port for Daphne: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	d := &Daphne{Addr: addr, log: &syncBuffer{}}
	d.cmd = exec.Command(Python(), "-m", "daphne", "-b", "127.0.0.1", "-p", strconv.Itoa(port),
		"project.asgi:application")
	d.cmd.Dir = dir
	d.cmd.Env = append(append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONPATH="+dir), env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("testenv: start daphne: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-exited
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return d
		}
		select {
		case err := <-exited:
			exited <- err // let the cleanup's receive finish
			t.Fatalf("testenv: daphne exited before listening (%v):\n%s", err, d.Log())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: daphne did not listen on %s within 30s:\n%s", addr, d.Log())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writers and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
