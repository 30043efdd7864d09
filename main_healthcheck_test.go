package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// `sidecar healthcheck` asks /healthz on LISTEN_ADDR's port: 0 on 200,
// 1 on any other status or when nothing answers.
func TestHealthcheck(t *testing.T) {
	var (
		mu     sync.Mutex
		status = http.StatusOK
		paths  []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, addr := range []string{"127.0.0.1:" + port, ":" + port, "0.0.0.0:" + port} {
		t.Setenv("LISTEN_ADDR", addr)
		var stderr bytes.Buffer
		if code := runHealthcheck(nil, &stderr); code != 0 {
			t.Errorf("LISTEN_ADDR=%s: exit %d, %s", addr, code, stderr.String())
		}
	}
	mu.Lock()
	if len(paths) != 3 || paths[0] != "/healthz" {
		t.Errorf("requests %q; want three of /healthz", paths)
	}
	status = http.StatusServiceUnavailable
	mu.Unlock()
	var stderr bytes.Buffer
	if code := runHealthcheck(nil, &stderr); code != 1 || !strings.Contains(stderr.String(), "503") {
		t.Errorf("on 503: exit %d, %q; want 1 naming the status", code, stderr.String())
	}

	srv.Close()
	stderr.Reset()
	if code := runHealthcheck(nil, &stderr); code != 1 || !strings.Contains(stderr.String(), "refused") {
		t.Errorf("nothing listening: exit %d, %q; want 1", code, stderr.String())
	}
}

func TestHealthzURL(t *testing.T) {
	for in, want := range map[string]string{
		"":               "http://127.0.0.1:8001/healthz", // LISTEN_ADDR's default
		":9000":          "http://127.0.0.1:9000/healthz",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/healthz",
		"[::]:9000":      "http://[::1]:9000/healthz",
		"10.1.2.3:9000":  "http://10.1.2.3:9000/healthz",
		"localhost:9000": "http://localhost:9000/healthz",
	} {
		if got, err := healthzURL(in); got != want || err != nil {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"8001", "127.0.0.1:0", "127.0.0.1:"} {
		if got, err := healthzURL(bad); err == nil {
			t.Errorf("healthzURL(%q) = %q; want an error", bad, got)
		}
	}
}
