//go:build linux

// Package container proves the repository's Dockerfile with Debian's
// podman: it builds the image offline, runs it on a Django-migrated SQLite
// file and talks to it as a client and as the container runtime would.
//
// No container registry is needed. The build stage's image is a local
// stand-in for docker.io/library/golang:<go>-bookworm: Debian's static
// busybox with the host's Go toolchain and CA bundle, imported once and
// kept under its tag (podman rmi it to rebuild it). Modules come from the
// host's module cache, mounted read-only, and compiled packages from the
// host's build cache, which the host warms with the same flags first.
//
// It needs root, podman, runc and busybox-static; without them it is
// skipped (failed under the test command, scripts/test.sh).
package container_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) { testenv.Run(m) }

const (
	// imageUser is the Dockerfile's USER, uid and gid.
	imageUser = 65532
	// baseTimeout bounds building the base image (copies and an import);
	// buildTimeout the image's build.
	baseTimeout  = 15 * time.Minute
	buildTimeout = 15 * time.Minute
	// startTimeout bounds the container's start until /healthz answers.
	startTimeout = time.Minute
	// stopSeconds is what podman stop gives the sidecar before SIGKILL: more
	// than SHUTDOWN_TIMEOUT's default of 25 s, as a deployment should.
	stopSeconds = 30
	// commandTimeout bounds every other podman command.
	commandTimeout = 2 * time.Minute
	secret         = "container-test-secret"
)

func TestImage(t *testing.T) {
	p := requirePodman(t)
	root := testenv.RepoRoot(t)
	base := baseImage(t, p)
	image := buildImage(t, p, root, base)

	// The image: only the binary, the CA bundle, the user and two
	// directories, configured to run as that user with the health check.
	var cfg struct {
		Size   int64
		Config struct {
			User         string
			ExposedPorts map[string]any
			Entrypoint   []string
		}
		HealthCheck struct{ Test []string }
	}
	p.inspect(t, "image", image, &cfg)
	t.Logf("image %s: %.1f MB", image, float64(cfg.Size)/1e6)
	if want := fmt.Sprint(imageUser, ":", imageUser); cfg.Config.User != want {
		t.Errorf("image User %q; want %q", cfg.Config.User, want)
	}
	if _, ok := cfg.Config.ExposedPorts["8001/tcp"]; !ok || fmt.Sprint(cfg.Config.Entrypoint) != "[/sidecar]" {
		t.Errorf("image exposes %v with entrypoint %q; want 8001/tcp and /sidecar", cfg.Config.ExposedPorts, cfg.Config.Entrypoint)
	}
	if got := strings.Join(cfg.HealthCheck.Test, " "); got != "CMD /sidecar healthcheck" {
		t.Errorf("image HEALTHCHECK %q; want CMD /sidecar healthcheck (built with --format docker?)", got)
	}

	// Django's database and MEDIA_ROOT on the host, owned by the image's
	// user as a deployment's volumes would be: the SQLite file's directory
	// with the file and its WAL files, which the test's handle made.
	db := testenv.SQLite(t)
	listener := db.CreateUser(t, "l@example.com", "", "listener")
	talker := db.CreateUser(t, "t@example.com", "", "talker")
	conv := db.CreateConversation(t, listener, talker, "active")
	dbDir := filepath.Dir(db.Name)
	media := t.TempDir()
	chownAll(t, dbDir, imageUser)
	chownAll(t, media, imageUser)

	ctr := p.start(t, image,
		"-v", dbDir+":/data", "-v", media+":/media",
		"-e", "DATABASE_URL=sqlite:////data/"+filepath.Base(db.Name),
		"-e", "SECRET_KEY="+secret, "-e", "LOG_LEVEL=debug")
	addr := strings.TrimSpace(p.run(t, commandTimeout, "port", ctr, "8001/tcp"))
	waitHealthy(t, p, ctr, addr)

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, "http://"+addr+path); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}

	// A client's WebSocket: the three connect frames, then a file written
	// to the mounted MEDIA_ROOT and a message to the mounted database.
	ws, _, err := websocket.DefaultDialer.Dial(
		"ws://"+addr+"/ws/chat/"+strconv.FormatInt(conv, 10)+"/?token="+testenv.Mint(secret, talker)[talker].Access, nil)
	if err != nil {
		t.Fatalf("WebSocket handshake: %v\n%s", err, p.logs(ctr))
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	var types []string
	for range 3 {
		types = append(types, readType(t, ws))
	}
	if got := strings.Join(types, " "); got != "connection_established api_info conversation_history" {
		t.Errorf("connect frames %s; want connection_established api_info conversation_history", got)
	}
	content := []byte("written by the sidecar's container\n")
	if err := ws.WriteJSON(map[string]string{"type": "file_message", "filename": "note.txt",
		"file": base64.StdEncoding.EncodeToString(content)}); err != nil {
		t.Fatal(err)
	}
	if typ := readType(t, ws); typ != "new_message" {
		t.Fatalf("after a file_message: %s; want new_message\n%s", typ, p.logs(ctr))
	}
	checkMediaFile(t, media, content)
	var n int
	if err := db.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1`, conv).Scan(&n); err != nil || n != 1 {
		t.Errorf("messages in the mounted database: %d, %v; want 1", n, err)
	}

	// The runtime's view: the HEALTHCHECK passes and the server runs as
	// the image's user.
	p.run(t, commandTimeout, "healthcheck", "run", ctr)
	var state struct {
		State struct {
			Pid    int
			Health struct{ Status string }
		}
	}
	p.inspect(t, "container", ctr, &state)
	if state.State.Health.Status != "healthy" {
		t.Errorf("health %q after podman healthcheck run; want healthy", state.State.Health.Status)
	}
	checkUser(t, state.State.Pid)

	// podman stop sends SIGTERM: the sidecar closes the connection with
	// 1001 and exits 0 well before the stop timeout would SIGKILL it.
	began := time.Now()
	p.run(t, (stopSeconds+30)*time.Second, "stop", "-t", strconv.Itoa(stopSeconds), ctr)
	took := time.Since(began)
	var exit struct{ State struct{ ExitCode int } }
	p.inspect(t, "container", ctr, &exit)
	t.Logf("podman stop took %s", took.Round(time.Millisecond))
	if exit.State.ExitCode != 0 || took >= stopSeconds*time.Second {
		t.Errorf("podman stop: exit code %d after %s; want 0 within %d s\n%s", exit.State.ExitCode, took, stopSeconds, p.logs(ctr))
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	if ce := (*websocket.CloseError)(nil); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("the open WebSocket on stop: %v; want close 1001", err)
	}
}

// podman runs Debian's podman with the test's containers.conf.
type podman struct{ conf string }

// requirePodman finds what the test needs, or skips it (fails it under
// the test command) naming the package to install.
func requirePodman(t *testing.T) podman {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "the container test needs root (rootful podman)")
	}
	for _, bin := range []string{"podman", "runc"} {
		if _, err := lookPath(bin); err != nil {
			testenv.Unavailable(t, "%s not found: apt-get install %s", bin, bin)
		}
	}
	conf, err := filepath.Abs("containers.conf")
	if err != nil {
		t.Fatal(err)
	}
	return podman{conf: conf}
}

// lookPath finds a command on PATH or in the sbin directories, where
// Debian installs runc.
func lookPath(bin string) (string, error) {
	if path, err := exec.LookPath(bin); err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if path, err := exec.LookPath(filepath.Join(dir, bin)); err == nil {
			return path, nil
		}
	}
	return "", fmt.Errorf("%s: not found", bin)
}

func (p podman) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// output runs podman and returns its standard output; an error carries
// its standard error.
func (p podman) output(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := p.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// run is output failing the test on an error.
func (p podman) run(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := p.output(timeout, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// inspect decodes podman inspect of an image or a container into v.
func (p podman) inspect(t *testing.T, kind, name string, v any) {
	t.Helper()
	out := p.run(t, commandTimeout, kind, "inspect", name)
	var all []json.RawMessage
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 1 {
		t.Fatalf("podman %s inspect %s: %v\n%s", kind, name, err, out)
	}
	if err := json.Unmarshal(all[0], v); err != nil {
		t.Fatalf("podman %s inspect %s: %v", kind, name, err)
	}
}

// logs returns what the container has logged, for failure messages.
func (p podman) logs(ctr string) string {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := p.command(ctx, "logs", ctr).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("podman logs %s: %v\n%s", ctr, err, out)
	}
	return "the container's log:\n" + string(out)
}

// exists reports whether an image is stored locally.
func (p podman) exists(image string) bool {
	_, err := p.output(commandTimeout, "image", "exists", image)
	return err == nil
}

// baseImage returns the build stage's image, a local stand-in for
// docker.io/library/golang:<go>-bookworm built on first use from what the
// host has (no registry is reachable here): Debian's static busybox as the
// shell the Dockerfile's RUN lines need, the host's Go toolchain at
// /usr/local/go, and its CA bundle. It takes seconds and is kept for later
// runs; a lock keeps concurrent runs from building it twice.
func baseImage(t *testing.T, p podman) string {
	t.Helper()
	env := goEnv(t, "GOROOT", "GOVERSION")
	goroot, version := env[0], strings.TrimPrefix(env[1], "go")
	tag := "localhost/golang:" + version + "-busybox"
	if p.exists(tag) {
		t.Logf("base image %s: present", tag)
		return tag
	}
	unlock := lockFile(t, filepath.Join(os.TempDir(), "sidecar-container-base.lock"))
	defer unlock()
	if p.exists(tag) {
		return tag
	}
	const busybox = "/bin/busybox"
	if _, err := os.Stat(busybox); err != nil {
		testenv.Unavailable(t, "no static busybox at %s (it is the base image's shell): apt-get install busybox-static", busybox)
	}
	const caBundle = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(caBundle); err != nil {
		testenv.Unavailable(t, "no CA bundle at %s: apt-get install ca-certificates", caBundle)
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), baseTimeout)
	defer cancel()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	for _, dir := range []string{"bin", "tmp", "root", "etc/ssl/certs", "usr/local", "go"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{
		{"cp", busybox, filepath.Join(rootfs, "bin/busybox")},
		{filepath.Join(rootfs, "bin/busybox"), "--install", "-s", filepath.Join(rootfs, "bin")},
		{"cp", "-a", goroot, filepath.Join(rootfs, "usr/local/go")},
		{"cp", caBundle, filepath.Join(rootfs, caBundle)},
	} {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("base image %s: %s: %v\n%s", tag, strings.Join(argv, " "), err, lastLines(out, 20))
		}
	}
	// busybox --install links to where it was run from: make the links
	// point at the image's own /bin/busybox.
	links, err := os.ReadDir(filepath.Join(rootfs, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if l.Name() == "busybox" {
			continue
		}
		p := filepath.Join(rootfs, "bin", l.Name())
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("busybox", p); err != nil {
			t.Fatal(err)
		}
	}
	tar := exec.CommandContext(ctx, "tar", "-C", rootfs, "-c", ".")
	imp := p.command(ctx, "import",
		"--change", "ENV PATH=/go/bin:/usr/local/go/bin:/bin",
		"--change", "ENV GOPATH=/go", "--change", "ENV GOTOOLCHAIN=local", "--change", "ENV HOME=/root",
		"--change", "WORKDIR /go", "--change", `CMD ["sh"]`, "-", tag)
	var tarErr, impOut bytes.Buffer
	tar.Stderr = &tarErr
	imp.Stdout, imp.Stderr = &impOut, &impOut
	pipe, err := tar.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	impErr := imp.Run()
	if err := tar.Wait(); err != nil || impErr != nil {
		t.Fatalf("base image %s: tar | podman import: %v, %v\n%s%s", tag, err, impErr, tarErr.String(), impOut.String())
	}
	t.Logf("base image %s: built in %s", tag, time.Since(began).Round(time.Second))
	return tag
}

// buildImage builds the Dockerfile offline on base and returns the image,
// removed when the test ends.
func buildImage(t *testing.T, p podman, root, base string) string {
	t.Helper()
	// The build reads modules from the host's cache only (GOPROXY=off):
	// make sure it holds every module go.mod names.
	download := exec.Command("go", "mod", "download")
	download.Dir = root
	if out, err := download.CombinedOutput(); err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	// The image compiles what the host compiles with the same flags; with
	// -trimpath the build cache does not depend on where the sources are,
	// so the host's cache serves the build inside (and the host compiles
	// it once for both).
	env := goEnv(t, "GOMODCACHE", "GOCACHE")
	modcache, gocache := env[0], env[1]
	warm := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", os.DevNull, ".")
	warm.Dir = root
	warm.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := warm.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	image := "localhost/sidecar-test:" + randomID(t)
	began := time.Now()
	out, err := p.output(buildTimeout, "build",
		"--format", "docker", // OCI images have no HEALTHCHECK
		"--network", "none", "--pull=never", "--layers=false",
		"--build-arg", "GO_IMAGE="+base, "--build-arg", "GOPROXY=off",
		"-v", modcache+":/go/pkg/mod:ro", "-v", gocache+":/root/.cache/go-build",
		"-t", image, root)
	if err != nil {
		t.Fatalf("%v\n%s", err, lastLines([]byte(out), 20))
	}
	t.Cleanup(func() {
		if _, err := p.output(commandTimeout, "rmi", image); err != nil {
			t.Errorf("remove the image: %v", err)
		}
	})
	t.Logf("image built in %s", time.Since(began).Round(100*time.Millisecond))
	return image
}

// start runs image detached, its port 8001 published on a free loopback
// port, with the extra podman run arguments args; the container is
// removed when the test ends, its log shown if the test failed.
func (p podman) start(t *testing.T, image string, args ...string) string {
	t.Helper()
	name := "sidecar-test-" + randomID(t)
	run := append([]string{"run", "-d", "--name", name, "-p", "127.0.0.1::8001"}, args...)
	if _, err := p.output(commandTimeout, append(run, image)...); err != nil {
		// A container that was created and failed to start is removed too.
		_, _ = p.output(commandTimeout, "rm", "-f", name)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(p.logs(name))
		}
		if _, err := p.output(commandTimeout, "rm", "-f", "-t", "0", name); err != nil {
			t.Errorf("remove the container: %v", err)
		}
	})
	return name
}

// waitHealthy waits until the container's /healthz answers 200.
func waitHealthy(t *testing.T, p podman, ctr, addr string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		var state struct{ State struct{ Running bool } }
		p.inspect(t, "container", ctr, &state)
		if !state.State.Running {
			t.Fatalf("the container exited before serving\n%s", p.logs(ctr))
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /healthz did not answer 200 within %s (last: %v)\n%s", startTimeout, err, p.logs(ctr))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	return resp.StatusCode, string(body)
}

// readType reads a frame and returns its type.
func readType(t *testing.T, ws *websocket.Conn) string {
	t.Helper()
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read a frame: %v", err)
	}
	var frame struct{ Type string }
	if err := json.Unmarshal(b, &frame); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return frame.Type
}

// checkMediaFile finds the one file under the mounted MEDIA_ROOT and
// checks it holds content and belongs to the image's user.
func checkMediaFile(t *testing.T, media string, content []byte) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(media, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) != 1 {
		t.Fatalf("files under the mounted MEDIA_ROOT: %q, %v; want one", files, err)
	}
	b, err := os.ReadFile(files[0])
	if err != nil || !bytes.Equal(b, content) {
		t.Errorf("%s holds %q, %v; want %q", files[0], b, err, content)
	}
	if fi, err := os.Stat(files[0]); err == nil {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != imageUser {
			t.Errorf("%s belongs to uid %d; want %d", files[0], st.Uid, imageUser)
		}
	}
}

// chownAll gives dir and everything in it to uid (and the gid alike).
func chownAll(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkUser checks that process pid runs as the image's user, real and
// effective uid and gid alike.
func checkUser(t *testing.T, pid int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("\t"+strconv.Itoa(imageUser), 4)
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, _ := strings.Cut(line, ":"); (k == "Uid" || k == "Gid") && v != want {
			t.Errorf("the sidecar's %s:%s; want %s", k, v, want)
		}
	}
}

// goEnv returns `go env` of names.
func goEnv(t *testing.T, names ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"env"}, names...)...).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", strings.Join(names, " "), err)
	}
	vals := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(vals) != len(names) {
		t.Fatalf("go env %s: %q", strings.Join(names, " "), out)
	}
	return vals
}

// lockFile holds an exclusive lock on path until the returned function is
// called.
func lockFile(t *testing.T, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", path, err)
	}
	return func() { f.Close() }
}

func randomID(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
