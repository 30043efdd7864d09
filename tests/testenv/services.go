package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// StrictEnv is the variable the test command (scripts/test.sh) sets: under
// it a missing service fails the test instead of skipping it.
const StrictEnv = "SIDECAR_TEST_STRICT"

// Unavailable reports a service a test needs and did not find, in one line
// naming it. Under the test command (StrictEnv=1) the test fails; run by
// hand (go test ./...) it is skipped, so the packages that need nothing
// outside still run on a bare machine.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := "testenv: " + fmt.Sprintf(format, args...)
	if os.Getenv(StrictEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg + " (skipped; the test command fails instead)")
}

// DefaultRedisURL is the shared Redis used when TEST_REDIS_URL is not set.
const DefaultRedisURL = "redis://127.0.0.1:6379"

// SharedRedis returns the URL of the shared Redis server (TEST_REDIS_URL,
// default 127.0.0.1:6379) once it accepts connections. Tests that share it
// use their own key prefixes; tests that stop Redis start their own
// (StartRedis).
func SharedRedis(t testing.TB) string {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		u = DefaultRedisURL
	}
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("testenv: TEST_REDIS_URL %q: %v", u, err)
	}
	c, err := net.DialTimeout("tcp", pu.Host, 2*time.Second)
	if err != nil {
		Unavailable(t, "Redis does not answer at %s (%v): start it with redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no, or set TEST_REDIS_URL", pu.Host, err)
	}
	c.Close()
	return u
}

var (
	pythonOnce sync.Once
	pythonErr  error
)

// RequirePython checks once that the interpreter has the Django fixture's
// Debian packages (Django, DRF, SimpleJWT, Channels, channels_redis,
// Daphne, psycopg2).
func RequirePython(t testing.TB) {
	t.Helper()
	pythonOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, Python(), "-c",
			"import django, rest_framework, rest_framework_simplejwt, channels, channels_redis, daphne, psycopg2")
		if out, err := cmd.CombinedOutput(); err != nil {
			pythonErr = fmt.Errorf("%v: %s", err, lastLine(out))
		}
	})
	if pythonErr != nil {
		Unavailable(t, "%s lacks the Django fixture's packages (%v): apt-get install python3-django python3-djangorestframework python3-djangorestframework-simplejwt python3-django-channels python3-daphne python3-channels-redis python3-psycopg2", Python(), pythonErr)
	}
}

func lastLine(b []byte) string {
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}
