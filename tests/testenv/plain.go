package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// PlainSidecar makes every StartSidecar of this test process run a sidecar
// built without the race detector, even under go test -race. The race
// detector multiplies a process's memory several times over, so tests that
// bound the sidecar's memory measure a plain build; the tests themselves
// still run under -race. Call it from TestMain before m.Run: it fails if a
// sidecar was built already.
func PlainSidecar() error {
	built := false
	buildOnce.Do(func() {
		built = true
		binPath, buildErr = buildSidecar(false)
	})
	if !built {
		return errors.New("testenv: PlainSidecar called after a sidecar was built")
	}
	return buildErr
}

// buildSidecar builds the sidecar (with -race when race is set) into a
// temporary directory that Run removes.
func buildSidecar(race bool) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "sidecar-bin-")
	if err != nil {
		return "", err
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "sidecar")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Pid is the sidecar process's id, e.g. to read /proc/<pid>/status.
func (s *Sidecar) Pid() int { return s.cmd.Process.Pid }
