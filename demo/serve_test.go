package demo

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serveDemo runs the demo on a free loopback port until the test ends.
func serveDemo(t *testing.T) (*Demo, *Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Prepare(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan *Server, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, d, ServeConfig{Addr: "127.0.0.1:0", AllowedHosts: []string{"localhost", "127.0.0.1"}}, ready)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case s := <-ready:
		return d, s
	case err := <-errc:
		t.Fatalf("Serve: %v", err)
	}
	return nil, nil
}

func request(t *testing.T, method, url, host string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// The demo's endpoints hand out tokens and write blocks: they answer only
// under a Host in ALLOWED_HOSTS (a DNS-rebinding page gets 400).
func TestDemoChecksHost(t *testing.T) {
	_, s := serveDemo(t)
	for _, tc := range []struct {
		method, path, host string
		want               int
	}{
		{"GET", "/demo/config", "", http.StatusOK},
		{"GET", "/demo/config", "localhost", http.StatusOK},
		{"GET", "/demo/config", "attacker.example", http.StatusBadRequest},
		{"GET", "/demo/", "attacker.example", http.StatusBadRequest},
		{"POST", "/demo/block", "attacker.example:8001", http.StatusBadRequest},
		{"POST", "/demo/unblock", "attacker.example", http.StatusBadRequest},
		{"GET", "/healthz", "attacker.example", http.StatusOK}, // the server's own, for probes
	} {
		if got := request(t, tc.method, s.BaseURL+tc.path, tc.host).StatusCode; got != tc.want {
			t.Errorf("%s %s (Host %q): %d, want %d", tc.method, tc.path, tc.host, got, tc.want)
		}
	}
}

// Uploaded files never run as pages of the demo's origin: nosniff, a
// sandbox, and a download unless they are images.
func TestDemoMediaIsSafe(t *testing.T) {
	d, s := serveDemo(t)
	dir := filepath.Join(d.MediaRoot, "chat_files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"evil.html", "photo.png", "vector.svg"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("<script>alert(1)</script>"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, attachment := range map[string]bool{"evil.html": true, "photo.png": false, "vector.svg": true} {
		resp := request(t, "GET", s.BaseURL+"/media/chat_files/"+name, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: headers %v", name, resp.Header)
		}
		if got := strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment"); got != attachment {
			t.Errorf("%s: Content-Disposition %q, want attachment=%v", name, resp.Header.Get("Content-Disposition"), attachment)
		}
	}
}
