package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timing of the test's Prometheus.
const (
	// promScrapeInterval is how often every target is scraped.
	promScrapeInterval = time.Second
	// promScrapeTimeout bounds one scrape; it must stay under the interval.
	promScrapeTimeout = 500 * time.Millisecond
	// promDiscoveryReload is how long the scrape manager waits before it
	// takes the configured targets (Prometheus's default is 5 s).
	promDiscoveryReload = 100 * time.Millisecond
	// promStartTimeout bounds the wait for /-/ready after the process starts.
	promStartTimeout = 30 * time.Second
	// promPollEvery is how often WaitFor asks again.
	promPollEvery = 100 * time.Millisecond
	// promRequestTimeout bounds one HTTP request to the API.
	promRequestTimeout = 10 * time.Second
)

// promJob is the job label of the scraped targets.
const promJob = "testenv"

// Prometheus is Debian's prometheus server, run by the test on a free
// loopback port with its own configuration and storage in a temporary
// directory. It scrapes its targets at /metrics every second, as job
// "testenv" (so a target's series carry job="testenv", instance="host:port").
type Prometheus struct {
	addr   string
	cmd    *exec.Cmd
	log    *syncBuffer
	client *http.Client
}

// Sample is one element of an instant query's result: a series' labels
// (including __name__ when the expression keeps it) and its value.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// String writes the sample as Prometheus prints it: {a="1", b="2"} 3.5.
func (s Sample) String() string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + strconv.Quote(s.Labels[k])
	}
	return "{" + strings.Join(parts, ", ") + "} " + strconv.FormatFloat(s.Value, 'g', -1, 64)
}

// StartPrometheus runs `prometheus` (Debian's package) scraping the given
// host:port targets, waits until its HTTP API is ready, and stops it and
// removes its directory when the test ends. The test fails, never skips,
// when the binary is missing. Use WaitUp before querying a target's series:
// the first scrape comes 5 to 6 s after the start, because Prometheus's
// service discovery hands new targets on every 5 s (a fixed interval in
// Debian's 2.42), and the scrape then waits for its slot in the 1 s interval.
func StartPrometheus(t testing.TB, targets ...string) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("testenv: prometheus is not installed (apt-get install prometheus, Debian's package): %v", err)
	}
	dir := t.TempDir() // removed after the process is stopped: cleanups run last-in first-out
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(promConfig(targets)), 0o644); err != nil {
		t.Fatalf("testenv: write prometheus config: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: pick a port for prometheus: %v", err)
	}
	addr := l.Addr().String()
	l.Close()

	p := &Prometheus{
		addr:   addr,
		log:    &syncBuffer{},
		client: &http.Client{Timeout: promRequestTimeout},
	}
	p.cmd = exec.Command(bin,
		"--config.file="+config,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
		// A hidden flag (default 5 s): how long new targets wait before the
		// scrape manager takes them, which would delay the first scrape.
		"--scrape.discovery-reload-interval="+promDiscoveryReload.String(),
	)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testenv: start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-exited
	})

	deadline := time.Now().Add(promStartTimeout)
	for {
		resp, err := p.client.Get(p.URL() + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-exited:
			exited <- err // let the cleanup's receive finish
			t.Fatalf("testenv: prometheus exited before it was ready (%v):\n%s", err, p.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: prometheus on %s not ready within %v:\n%s", addr, promStartTimeout, p.Log())
		}
	}
}

// promConfig is the configuration file: one job scraping targets.
func promConfig(targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		promScrapeInterval, promScrapeTimeout, promScrapeInterval)
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: %s\n    metrics_path: /metrics\n    static_configs:\n      - targets: [", promJob)
	for i, target := range targets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(target))
	}
	b.WriteString("]\n")
	return b.String()
}

// URL is http://127.0.0.1:<port>, the server's web UI and API.
func (p *Prometheus) URL() string { return "http://" + p.addr }

// Log returns what the server has logged so far (warnings and errors only).
func (p *Prometheus) Log() string { return p.log.String() }

// Query runs an instant query (/api/v1/query) at the current time and
// returns its result; a scalar comes back as one sample without labels.
// The test fails if the query is rejected.
func (p *Prometheus) Query(t testing.TB, promql string) []Sample {
	t.Helper()
	samples, err := p.query(promql)
	if err != nil {
		t.Fatalf("testenv: prometheus query %s: %v", promql, err)
	}
	return samples
}

// WaitFor runs the instant query until cond holds for its result, and
// returns that result. After timeout the test fails with the last result.
func (p *Prometheus) WaitFor(t testing.TB, promql string, cond func([]Sample) bool, timeout time.Duration) []Sample {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		samples := p.Query(t, promql)
		if cond(samples) {
			return samples
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: prometheus: %s did not reach the condition within %v; last result: %s%s",
				promql, timeout, formatSamples(samples), p.targetErrors())
		}
		time.Sleep(promPollEvery)
	}
}

// WaitUp waits until target (one of StartPrometheus's host:port targets)
// has been scraped successfully at least once, i.e. up{instance=target} == 1.
// On timeout the test fails with the scrape's last error.
func (p *Prometheus) WaitUp(t testing.TB, target string, timeout time.Duration) {
	t.Helper()
	q := fmt.Sprintf(`up{job=%q, instance=%q}`, promJob, target)
	p.WaitFor(t, q, func(s []Sample) bool { return len(s) == 1 && s[0].Value == 1 }, timeout)
}

// apiResponse is the envelope of every /api/v1 answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

func (p *Prometheus) get(path string, params url.Values) (json.RawMessage, error) {
	u := p.URL() + path
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	resp, err := p.client.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s answered %s: %s", path, resp.Status, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s answered %s: %s: %s", path, resp.Status, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

func (p *Prometheus) query(promql string) ([]Sample, error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {promql}})
	if err != nil {
		return nil, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode query data: %w", err)
	}
	switch d.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &vec); err != nil {
			return nil, fmt.Errorf("decode vector: %w", err)
		}
		samples := make([]Sample, len(vec))
		for i, v := range vec {
			f, err := sampleValue(v.Value)
			if err != nil {
				return nil, err
			}
			samples[i] = Sample{Labels: v.Metric, Value: f}
		}
		return samples, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, fmt.Errorf("decode scalar: %w", err)
		}
		f, err := sampleValue(v)
		if err != nil {
			return nil, err
		}
		return []Sample{{Labels: map[string]string{}, Value: f}}, nil
	default:
		return nil, fmt.Errorf("result type %q: only instant vectors and scalars are supported", d.ResultType)
	}
}

// sampleValue reads the value of a [timestamp, "value"] pair; the value is
// a string so that NaN and ±Inf survive JSON.
func sampleValue(pair [2]any) (float64, error) {
	s, ok := pair[1].(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", pair[1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("sample value %q: %w", s, err)
	}
	return f, nil
}

// targetErrors describes the targets whose last scrape failed, for a
// failure message ("" when there are none or the API does not answer).
func (p *Prometheus) targetErrors() string {
	data, err := p.get("/api/v1/targets", url.Values{"state": {"active"}})
	if err != nil {
		return ""
	}
	var d struct {
		ActiveTargets []struct {
			ScrapeURL string `json:"scrapeUrl"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"activeTargets"`
	}
	if json.Unmarshal(data, &d) != nil {
		return ""
	}
	var b strings.Builder
	for _, tg := range d.ActiveTargets {
		if tg.Health != "up" {
			fmt.Fprintf(&b, "\n  target %s: %s %s", tg.ScrapeURL, tg.Health, tg.LastError)
		}
	}
	return b.String()
}

func formatSamples(samples []Sample) string {
	if len(samples) == 0 {
		return "(empty)"
	}
	parts := make([]string, len(samples))
	for i, s := range samples {
		parts[i] = s.String()
	}
	return strings.Join(parts, "; ")
}
