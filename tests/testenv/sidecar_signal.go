package testenv

import (
	"os"
	"time"
)

// Signal sends sig to the sidecar process.
func (s *Sidecar) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal killed it); ok is false when it still runs.
func (s *Sidecar) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}
