package testenv

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// freezeTimeout bounds the wait for a signalled redis-server to show the
// state it was sent to.
const freezeTimeout = 5 * time.Second

// Freeze stops the server with SIGSTOP and returns once the kernel reports
// it stopped: from then on its clients' connections stay open and their
// commands go unanswered, as with a server stuck in a long command or a
// host that stopped responding, until Thaw.
func (r *Redis) Freeze() {
	r.t.Helper()
	r.signalAndWait(syscall.SIGSTOP, true)
}

// Thaw resumes a frozen server with SIGCONT and returns once it runs again;
// it then answers what was sent to it meanwhile.
func (r *Redis) Thaw() {
	r.t.Helper()
	r.signalAndWait(syscall.SIGCONT, false)
}

func (r *Redis) signalAndWait(sig syscall.Signal, stopped bool) {
	r.t.Helper()
	if r.cmd == nil || r.cmd.Process == nil {
		r.t.Fatalf("testenv: redis-server on port %d is not running", r.port)
	}
	pid := r.cmd.Process.Pid
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("testenv: signal redis-server: %v", err)
	}
	deadline := time.Now().Add(freezeTimeout)
	for {
		state, err := procState(pid)
		if err != nil {
			r.t.Fatalf("testenv: redis-server: %v", err)
		}
		if (state == 'T') == stopped {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("testenv: redis-server (pid %d) in state %c %s after %v", pid, state, sig, freezeTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// procState is the state letter of /proc/<pid>/stat (R, S, T, Z...).
func procState(pid int) (byte, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, b)
	}
	return b[i+2], nil
}
