package redislayer

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatsidecar/sidecar/pyjson"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

const sharedRedis = testenv.DefaultRedisURL

// requireRedis stops the test, naming what is missing, when the shared
// Redis does not answer (a failure under the test command).
func requireRedis(t testing.TB) {
	t.Helper()
	if u := testenv.SharedRedis(t); u != sharedRedis {
		t.Fatalf("these tests use %s; TEST_REDIS_URL=%s is not supported here", sharedRedis, u)
	}
}

// testPrefix is a fresh key prefix, so tests never see each other's keys.
func testPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func newLayer(t testing.TB, cfg Config) *Layer {
	t.Helper()
	if len(cfg.Hosts) == 0 {
		requireRedis(t)
		cfg.Hosts = []string{sharedRedis}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = testPrefix()
	}
	// Channels' defaults, which the sidecar's configuration has too.
	if cfg.Expiry == 0 {
		cfg.Expiry = 60 * time.Second
	}
	if cfg.GroupExpiry == 0 {
		cfg.GroupExpiry = 86400 * time.Second
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = 100
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l, err := New(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func mustObject(t testing.TB, s string) pyjson.Object {
	t.Helper()
	v, err := pyjson.Decode([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return v.(pyjson.Object)
}

func dumps(t testing.TB, v any) string {
	t.Helper()
	b, err := pyjson.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func receiveWithin(t testing.TB, l *Layer, d time.Duration) ([]string, pyjson.Object) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	chs, ev, err := l.Receive(ctx)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	return chs, ev
}

// pyDriver runs channels_redis.core.RedisChannelLayer in /usr/bin/python3
// and executes one JSON command per line.
const pyDriver = `
import asyncio, binascii, json, sys
import msgpack
from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from channels_redis.utils import _consistent_hash

cfg = json.loads(sys.argv[1])
layer = RedisChannelLayer(**cfg)

async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        op = cmd["op"]
        res = {"ok": True}
        try:
            if op == "new_channel":
                res["channel"] = await layer.new_channel()
            elif op == "group_add":
                await layer.group_add(cmd["group"], cmd["channel"])
            elif op == "group_send":
                await layer.group_send(cmd["group"], cmd["event"])
            elif op == "send":
                await layer.send(cmd["channel"], cmd["event"])
            elif op == "receive":
                msg = await asyncio.wait_for(layer.receive(cmd["channel"]), cmd.get("timeout", 10))
                res["event_json"] = json.dumps(msg)
            elif op == "packb":
                ev = cmd["event"]
                if "channel" in cmd:
                    ev["__asgi_channel__"] = cmd["channel"]
                res["hex"] = msgpack.packb(ev, use_bin_type=True).hex()
            elif op == "unpack_repr":
                res["repr"] = repr(layer.deserialize(bytes.fromhex(cmd["hex"])))
            elif op == "hash":
                res["hashes"] = [_consistent_hash(v, cmd["ring"]) for v in cmd["values"]]
            else:
                res = {"ok": False, "error": "unknown op " + op}
        except ChannelFull:
            res = {"ok": False, "error": "ChannelFull"}
        except asyncio.TimeoutError:
            res = {"ok": False, "error": "timeout"}
        except Exception as e:
            res = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(res), flush=True)
    await layer.close_pools()

asyncio.run(main())
`

type pyLayer struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

type pyResult struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	Channel   string `json:"channel"`
	EventJSON string `json:"event_json"`
	Hex       string `json:"hex"`
	Repr      string `json:"repr"`
	Hashes    []int  `json:"hashes"`
}

// startPython starts the driver with RedisChannelLayer(**cfg).
func startPython(t testing.TB, cfg map[string]any) *pyLayer {
	t.Helper()
	arg, _ := json.Marshal(cfg)
	testenv.RequirePython(t)
	cmd := exec.Command(testenv.Python(), "-c", pyDriver, string(arg))
	cmd.Stderr = testWriter{t}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", testenv.Python(), err)
	}
	p := &pyLayer{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() {
		_ = in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return p
}

// do runs one command and returns its result; it fails the test when the
// driver dies or does not answer within 30 s.
func (p *pyLayer) do(cmd map[string]any) pyResult {
	p.t.Helper()
	line, _ := json.Marshal(cmd)
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		p.t.Fatalf("python driver: write: %v", err)
	}
	type lineErr struct {
		s   string
		err error
	}
	ch := make(chan lineErr, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		ch <- lineErr{s, err}
	}()
	select {
	case le := <-ch:
		if le.err != nil {
			p.t.Fatalf("python driver: read: %v", le.err)
		}
		var r pyResult
		if err := json.Unmarshal([]byte(le.s), &r); err != nil {
			p.t.Fatalf("python driver: %q: %v", le.s, err)
		}
		return r
	case <-time.After(30 * time.Second):
		p.t.Fatalf("python driver: no answer to %s", line)
	}
	return pyResult{}
}

// mustDo is do, failing the test on a Python exception.
func (p *pyLayer) mustDo(cmd map[string]any) pyResult {
	p.t.Helper()
	r := p.do(cmd)
	if !r.OK {
		p.t.Fatalf("python %v: %s", cmd["op"], r.Error)
	}
	return r
}

// redisServer is a private redis-server without persistence.
type redisServer struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startRedisServer(t testing.TB) *redisServer {
	t.Helper()
	s := &redisServer{t: t, port: freePort(t)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", os.TempDir())
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server (is it installed?): %v", err)
	}
	s.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("private redis-server on port %d does not answer: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *redisServer) client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}
