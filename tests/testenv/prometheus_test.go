package testenv_test

import (
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// exposition is a target's /metrics written by hand in Prometheus's text
// format (version 0.0.4): a counter and a histogram of 40 observations, 10
// at most 0.1, 20 more at most 0.5, 10 more at most 1. The median (rank 20)
// lies halfway through the (0.1, 0.5] bucket, so histogram_quantile
// interpolates it to 0.3.
const exposition = `# HELP testenv_requests_total Requests served.
# TYPE testenv_requests_total counter
testenv_requests_total{code="200"} 42
testenv_requests_total{code="500"} 3
# HELP testenv_latency_seconds Request latency.
# TYPE testenv_latency_seconds histogram
testenv_latency_seconds_bucket{le="0.1"} 10
testenv_latency_seconds_bucket{le="0.5"} 30
testenv_latency_seconds_bucket{le="1"} 40
testenv_latency_seconds_bucket{le="+Inf"} 40
testenv_latency_seconds_sum 12
testenv_latency_seconds_count 40
`

func TestPrometheusScrapesAndQueries(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(exposition))
	}))
	defer target.Close()
	hostport := strings.TrimPrefix(target.URL, "http://")

	prom := testenv.StartPrometheus(t, hostport)
	prom.WaitUp(t, hostport, 20*time.Second)

	got := prom.Query(t, `testenv_requests_total{code="200"}`)
	if len(got) != 1 || got[0].Value != 42 {
		t.Fatalf("testenv_requests_total{code=\"200\"} = %v, want one sample of 42", got)
	}
	if l := got[0].Labels; l["job"] != "testenv" || l["instance"] != hostport || l["__name__"] != "testenv_requests_total" {
		t.Errorf("labels = %v, want __name__, job=testenv, instance=%s", l, hostport)
	}

	got = prom.Query(t, `sum(testenv_requests_total)`)
	if len(got) != 1 || got[0].Value != 45 {
		t.Errorf("sum(testenv_requests_total) = %v, want 45", got)
	}

	got = prom.Query(t, `histogram_quantile(0.5, testenv_latency_seconds_bucket)`)
	if len(got) != 1 || math.Abs(got[0].Value-0.3) > 1e-9 {
		t.Errorf("median = %v, want 0.3", got)
	}
	got = prom.Query(t, `histogram_quantile(0.99, testenv_latency_seconds_bucket)`)
	if len(got) != 1 || math.Abs(got[0].Value-0.98) > 1e-9 { // rank 39.6 of (30, 40] over (0.5, 1]
		t.Errorf("99th percentile = %v, want 0.98", got)
	}

	got = prom.Query(t, `scalar(testenv_latency_seconds_sum / testenv_latency_seconds_count)`)
	if len(got) != 1 || got[0].Value != 0.3 || len(got[0].Labels) != 0 {
		t.Errorf("scalar mean = %v, want 0.3 without labels", got)
	}
}
