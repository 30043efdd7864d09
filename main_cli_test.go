package main

import (
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// runMain runs the binary under test as the sidecar with args and env
// added, and returns its output and exit code.
func runMain(t *testing.T, args string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SIDECAR_RUN_MAIN=1", "SIDECAR_ARGS="+args)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// `sidecar -h` lists the commands and every setting with its default,
// without needing any setting; an unknown command is an error.
func TestHelp(t *testing.T) {
	out, code := runMain(t, "-h", "DATABASE_URL=")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, cmd := range []string{"serve", "check", "demo", "version"} {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("-h does not list %s", cmd)
		}
	}
	typ := reflect.TypeOf(config.Config{})
	for i := 0; i < typ.NumField(); i++ {
		name, def := typ.Field(i).Tag.Get("envconfig"), typ.Field(i).Tag.Get("default")
		if def == "" {
			def = "(none)"
		}
		if !strings.Contains(out, name) || !strings.Contains(out, name+strings.Repeat(" ", max(1, 40-len(name)))+" default "+def) {
			t.Errorf("-h lacks %s with its default %s", name, def)
		}
	}
	if out, code := runMain(t, "bogus"); code != 2 || !strings.Contains(out, `unknown command "bogus"`) {
		t.Errorf("unknown command: exit %d:\n%s", code, out)
	}
}

func TestVersion(t *testing.T) {
	out, code := runMain(t, "version")
	if code != 0 || !strings.HasPrefix(out, "sidecar ") || !strings.Contains(out, "go1.") || !strings.Contains(out, "github.com/chatsidecar/sidecar") {
		t.Errorf("version: exit %d:\n%s", code, out)
	}
}

// `sidecar check` passes on a good deployment and names each failure:
// an unreachable database, a missing column, a token signed with another
// key, Redis down.
func TestCheck(t *testing.T) {
	db := testenv.Postgres(t)
	user := db.CreateUser(t, "check@example.com", "", "talker")
	good := auth.MintAccess(secret, user, time.Now(), time.Hour)
	bad := auth.MintAccess("another-key", user, time.Now(), time.Hour)
	redis := testenv.StartRedis(t)
	base := []string{"DATABASE_URL=" + db.DSN, "SECRET_KEY=" + secret, "MEDIA_ROOT=" + t.TempDir(),
		"CHANNEL_LAYER=redis", "REDIS_URL=" + redis.URL()}
	for _, tc := range []struct {
		name   string
		args   string
		env    []string
		failed string // "" means every check passes
	}{
		{name: "good, with a token", args: "check -token " + good},
		{name: "wrong database", env: []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2"}, failed: "database:"},
		{name: "missing column", env: []string{"DB_COLUMNS=message.sender_id:author_id"}, failed: "database:"},
		{name: "wrong key", args: "check -token " + bad, failed: "token:"},
		{name: "bad setting", env: []string{"MAX_FILE_BYTES=ten"}, failed: "config:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == "" {
				args = "check"
			}
			out, code := runMain(t, args, append(append([]string{}, base...), tc.env...)...)
			if tc.failed == "" {
				if code != 0 || strings.Contains(out, "FAILED") {
					t.Fatalf("exit %d:\n%s", code, out)
				}
				for _, line := range []string{"config:", "tokens:", "database:", "feed:", "channel layer:", "media:", "token:"} {
					if !strings.Contains(out, line) {
						t.Errorf("no %s line:\n%s", line, out)
					}
				}
				return
			}
			if code != 1 || !lineFailed(out, tc.failed) {
				t.Errorf("exit %d, want 1 with %s FAILED:\n%s", code, tc.failed, out)
			}
		})
	}
	redis.Stop()
	out, code := runMain(t, "check", base...)
	if code != 1 || !lineFailed(out, "channel layer:") {
		t.Errorf("Redis down: exit %d:\n%s", code, out)
	}
}

func lineFailed(out, prefix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, "FAILED") {
			return true
		}
	}
	return false
}
