package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/chatsidecar/sidecar/config"
)

// healthcheckTimeout bounds `sidecar healthcheck`'s one request.
const healthcheckTimeout = 3 * time.Second

// runHealthcheck is `sidecar healthcheck`: it asks the sidecar serving on
// LISTEN_ADDR in this container for /healthz and returns 0 on 200, 1
// otherwise. It is the Dockerfile's HEALTHCHECK, for images without curl.
func runHealthcheck(args []string, stderr io.Writer) int {
	fl := flag.NewFlagSet("sidecar healthcheck", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprintln(stderr, "Usage: sidecar healthcheck\n\nGETs /healthz on LISTEN_ADDR (its host, or 127.0.0.1); exit status 0 on 200, 1 otherwise.")
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() > 0 {
		fl.Usage()
		return 2
	}
	url, err := healthzURL(os.Getenv("LISTEN_ADDR"))
	if err != nil {
		fmt.Fprintln(stderr, "sidecar healthcheck:", err)
		return 1
	}
	// No proxy: the server is this container's own.
	client := &http.Client{Timeout: healthcheckTimeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(stderr, "sidecar healthcheck:", err)
		return 1
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "sidecar healthcheck: GET %s: %s\n", url, resp.Status)
		return 1
	}
	return 0
}

// healthzURL is the /healthz URL of a server listening on listenAddr
// (LISTEN_ADDR; empty means its default): a wildcard or empty host is
// reached on the loopback address of its family.
func healthzURL(listenAddr string) (string, error) {
	if listenAddr == "" {
		listenAddr = config.Default().ListenAddr
	}
	host, port, err := net.SplitHostPort(listenAddr)
	if err != nil {
		return "", fmt.Errorf("LISTEN_ADDR %q: %w", listenAddr, err)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("LISTEN_ADDR %q: no fixed port to ask", listenAddr)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
