package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/config"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// A real Prometheus scrapes the admin listener under a little traffic, and
// the key series come back through its HTTP API with the right values.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	t.Parallel()
	w := newWorld(t, testenv.Backends[0], "active", func(c *config.Config) { c.AdminAddr = "127.0.0.1:0" })
	admin := w.app.AdminAddr()
	prom := testenv.StartPrometheus(t, admin)

	tc := w.connect(w.talker)
	lc := w.connect(w.listener)
	for i := 0; i < 3; i++ {
		tc.send(`{"type": "chat_message", "message": "counted"}`)
		tc.expectType("new_message")
		lc.expectType("new_message")
	}
	tc.send(`{"type": "nope"}`)
	tc.expectError("Unknown message type: nope")
	w.refused(w.chatPath(), "garbage", nil)
	w.refused(w.chatPath(), "", nil)

	// The profiler answers on the admin listener, and the public one has
	// neither it nor the metrics.
	for url, want := range map[string]int{
		"http://" + admin + "/debug/pprof/": http.StatusOK,
		w.url + "/metrics":                  http.StatusNotFound,
		w.url + "/debug/pprof/":             http.StatusNotFound,
	} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", url, resp.StatusCode, want)
		}
	}

	prom.WaitUp(t, admin, 30*time.Second)
	for query, want := range map[string]float64{
		`sidecar_connections{route="chat"}`:                               2,
		`sidecar_connects_total{route="chat"}`:                            2,
		`sidecar_messages_saved_total{type="text"}`:                       3,
		`sidecar_frames_received_total{route="chat",type="chat_message"}`: 3,
		`sidecar_frames_sent_total{route="chat",type="new_message"}`:      6,
		`sidecar_error_frames_total{kind="unknown_type"}`:                 1,
		`sidecar_connect_refusals_total{route="chat",reason="token"}`:     2,
		`sidecar_db_seconds_count{op="save_text"}`:                        3,
		`sidecar_group_events_total{route="chat",type="chat_message"}`:    3,
		`sidecar_group_event_lag_seconds_count{route="chat"}`:             3,
		`sum(sidecar_history_loads_total{outcome=~"ok|cache"}) > 0`:       1,
		`sidecar_memory_budget_limit_bytes`:                               float64(config.Default().MemoryLimit / 2),
		`count(go_goroutines) + count(process_resident_memory_bytes)`:     2,
	} {
		if strings.HasSuffix(query, "> 0") {
			prom.WaitFor(t, query, func(s []testenv.Sample) bool { return len(s) == 1 }, 15*time.Second)
			continue
		}
		want := want
		prom.WaitFor(t, query, func(s []testenv.Sample) bool { return len(s) == 1 && s[0].Value == want }, 15*time.Second)
	}
	// No user, group, email or token in any label.
	for _, s := range prom.Query(t, `{__name__=~"sidecar_.+"}`) {
		for k, v := range s.Labels {
			for _, id := range []string{"@", "eyJ", "chat_" + itoa(w.conv), "user_" + itoa(w.talker), "user_" + itoa(w.listener), "specific."} {
				if strings.Contains(v, id) {
					t.Errorf("label %s=%q names %q: %v", k, v, id, s.Labels)
				}
			}
		}
	}
}
