package djangodb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics time every call the sidecar makes to Django's database, by
// operation, so a team can tell whether the database is the bottleneck.
type metrics struct {
	seconds *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "sidecar_db_seconds",
		Help:    "Time of calls to Django's database, by operation (user, conversation, user_conversation, is_blocked, save_text, save_file, history, history_since, mark_read, inbox, pending).",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
	}, []string{"op"})}
}

// time starts timing op; call what it returns when the call is done.
func (m *metrics) time(op string) func() {
	start := time.Now()
	return func() { m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds()) }
}

// Register adds the database's series to reg.
func (d *DB) Register(reg prometheus.Registerer) error {
	return reg.Register(d.metrics.seconds)
}
