package conformance

import (
	"bufio"
	"context"
	"crypto/rand"
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

	"github.com/redis/go-redis/v9"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// sharedRedis is the Redis server of the files that need a shared channel
// layer; each side of each file gets its own CHANNEL_LAYER_PREFIX on it.
const sharedRedis = "redis://127.0.0.1:6379"

// sendWait bounds one group_send answer.
const sendWait = 10 * time.Second

// layerEnv is the environment that puts Daphne, the sidecar and manage.py
// on one channels_redis layer under a prefix of their own, and removes the
// prefix's keys when the test ends.
func layerEnv(t *testing.T, backend, file, side string) []string {
	t.Helper()
	opts, err := redis.ParseURL(sharedRedis)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		rc.Close()
		t.Fatalf("scenario file %s needs a shared channel layer: Redis does not answer at %s: %v", file, sharedRedis, err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	prefix := fmt.Sprintf("conformance.%s.%s.%s.%s.", hex.EncodeToString(b), backend, file, side)
	t.Cleanup(func() {
		defer rc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rc.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rc.Del(ctx, iter.Val())
		}
	})
	return []string{"CHANNEL_LAYER=redis", "REDIS_URL=" + sharedRedis, "CHANNEL_LAYER_PREFIX=" + prefix}
}

// injector is one `manage.py group_send --stdin` process: it sends the
// events of group_send steps and barriers, in order, through the layer the
// side's servers use.
type injector struct {
	mu      sync.Mutex
	in      io.WriteCloser
	answers chan string
	stderr  *strings.Builder
	n       int64 // last barrier marker
}

func startInjector(t *testing.T, env []string) *injector {
	t.Helper()
	dir := testenv.DjangoDir(t)
	cmd := exec.Command(testenv.Python(), filepath.Join(dir, "manage.py"), "group_send", "--stdin")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1"), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	inj := &injector{in: in, answers: make(chan string, 16), stderr: &strings.Builder{}}
	errOut := &lockedWriter{w: inj.stderr, mu: &inj.mu}
	cmd.Stderr = errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("start manage.py group_send --stdin: %v", err)
	}
	go func() {
		defer close(inj.answers)
		s := bufio.NewScanner(out)
		for s.Scan() {
			inj.answers <- s.Text()
		}
	}()
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return inj
}

// lockedWriter guards the injector's stderr buffer.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// send sends event (a JSON object) to group and waits until the layer has it.
func (inj *injector) send(group, event string) error {
	if strings.ContainsAny(group+event, "\r\n") {
		return fmt.Errorf("group_send: a line break in %q", group+" "+event)
	}
	if _, err := io.WriteString(inj.in, group+" "+event+"\n"); err != nil {
		return fmt.Errorf("group_send: write: %v (%s)", err, inj.errors())
	}
	select {
	case a, ok := <-inj.answers:
		switch {
		case !ok:
			return fmt.Errorf("group_send: manage.py ended: %s", inj.errors())
		case a != "ok":
			return fmt.Errorf("group_send: %s", a)
		}
		return nil
	case <-time.After(sendWait):
		return fmt.Errorf("group_send: no answer within %s: %s", sendWait, inj.errors())
	}
}

func (inj *injector) errors() string {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	return strings.TrimSpace(inj.stderr.String())
}

// marker numbers a barrier.
func (inj *injector) marker() int64 {
	inj.mu.Lock()
	defer inj.mu.Unlock()
	inj.n++
	return inj.n
}
