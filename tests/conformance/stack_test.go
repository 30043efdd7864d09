package conformance

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

const (
	secretKey  = "conformance-secret-key-not-for-production"
	publicBase = "https://chat.example.com"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// sidecarBinary builds the sidecar from the repository root once per process.
func sidecarBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root := testenv.RepoRoot(t)
		buildDir, buildErr = os.MkdirTemp("", "conformance-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "sidecar")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build sidecar: %v", buildErr)
	}
	return binPath
}

// syncBuf collects a process's output.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Sidecar is a running sidecar binary.
type Sidecar struct {
	Addr string
	log  *syncBuf
}

// startSidecar runs the sidecar binary with env and waits for its
// "msg=listening addr=..." line.
func startSidecar(t testing.TB, env []string) *Sidecar {
	t.Helper()
	bin := sidecarBinary(t)
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), "LISTEN_ADDR=127.0.0.1:0", "LOG_LEVEL=debug"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &Sidecar{log: &syncBuf{}}
	cmd.Stdout = s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sidecar: %v", err)
	}
	exited := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<22)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			s.log.Write([]byte(line + "\n"))
			if !sent && strings.Contains(line, "msg=listening") {
				if i := strings.Index(line, "addr="); i >= 0 {
					addrc <- strings.Fields(line[i+len("addr="):])[0]
					sent = true
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case s.Addr = <-addrc:
		return s
	case <-exited:
		t.Fatalf("sidecar exited before listening:\n%s", s.log.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("sidecar did not listen within 30s:\n%s", s.log.String())
	}
	return nil
}

// signToken makes an HS256 JWT with SECRET_KEY for the odd-token cases that
// SimpleJWT will not mint (no user id claim, a missing user, expired, bad
// signature). claims are added to token_type/exp/iat/jti.
func signToken(claims map[string]any, key string) string {
	now := time.Now().Unix()
	jti := make([]byte, 16)
	rand.Read(jti)
	full := map[string]any{"token_type": "access", "exp": now + 3600, "iat": now, "jti": hex.EncodeToString(jti)}
	for k, v := range claims {
		if v == nil {
			delete(full, k)
		} else {
			full[k] = v
		}
	}
	var parts []string
	for _, k := range []string{"token_type", "exp", "iat", "jti", "user_id"} {
		if v, ok := full[k]; ok {
			switch x := v.(type) {
			case string:
				parts = append(parts, fmt.Sprintf("%q:%q", k, x))
			default:
				parts = append(parts, fmt.Sprintf("%q:%v", k, x))
			}
		}
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc.EncodeToString([]byte("{"+strings.Join(parts, ",")+"}"))
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}
