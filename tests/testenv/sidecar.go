package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Sidecar is the sidecar binary, built from the repository and running.
type Sidecar struct {
	// Addr is host:port, e.g. "127.0.0.1:41235"; use ws://Addr/ws/chat/<id>/?token=...
	Addr string
	// AdminAddr is the admin listener's host:port when ADMIN_ADDR was given.
	AdminAddr string
	cmd       *exec.Cmd
	log       *syncBuffer
	exited    chan struct{}
}

// Log returns everything the sidecar has logged so far.
func (s *Sidecar) Log() string { return s.log.String() }

// Metric reads one series (a name with its labels, as /metrics prints it)
// from the admin listener, which ADMIN_ADDR must have opened.
func (s *Sidecar) Metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.AdminAddr + "/metrics")
	if err != nil {
		t.Fatalf("testenv: metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == series {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("testenv: metrics: %q: %v", sc.Text(), err)
			}
			return v
		}
	}
	t.Fatalf("testenv: no series %s in the metrics", series)
	return 0
}

// Stop sends SIGTERM and waits for the process to exit (the graceful
// shutdown), killing it after 30 s.
func (s *Sidecar) Stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// SidecarBinary builds the sidecar once per test process (with -race when
// the tests run with it) and returns its path.
func SidecarBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "sidecar-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cleanups = append(cleanups, func() { os.RemoveAll(dir) })
		binPath = filepath.Join(dir, "sidecar")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("testenv: build sidecar: %v", buildErr)
	}
	return binPath
}

// StartSidecar runs the sidecar binary on a free loopback port with the
// current environment plus env (DATABASE_URL, SECRET_KEY, CHANNEL_LAYER, ...),
// waits until it listens, and stops it when the test ends. On failure the
// test fails with the sidecar's log.
func StartSidecar(t testing.TB, env []string) *Sidecar {
	t.Helper()
	bin := SidecarBinary(t)
	s := &Sidecar{log: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin)
	s.cmd.Env = append(append(os.Environ(), "LISTEN_ADDR=127.0.0.1:0", "LOG_LEVEL=debug"), env...)
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stdout = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testenv: start sidecar: %v", err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.log.Write([]byte(line + "\n"))
			if i := strings.Index(line, `msg="admin listening" addr=`); !sent && i >= 0 {
				s.AdminAddr = strings.Fields(line[i+len(`msg="admin listening" addr=`):])[0]
			}
			if i := strings.Index(line, "msg=listening addr="); !sent && i >= 0 {
				addrc <- strings.Fields(line[i+len("msg=listening addr="):])[0]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(s.Stop)
	select {
	case s.Addr = <-addrc:
		return s
	case <-s.exited:
		t.Fatalf("testenv: sidecar exited before listening:\n%s", s.Log())
	case <-time.After(60 * time.Second):
		t.Fatalf("testenv: sidecar did not listen within 60s:\n%s", s.Log())
	}
	return nil
}

// cleanups run when Run ends (the built binary's directory).
var cleanups []func()
